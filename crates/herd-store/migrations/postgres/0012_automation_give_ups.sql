-- Issue 18: herd giving up on a failing host's policy script is the host's state, not a marker job. A row per
-- host and policy: the failure (its failing_since) herd gave up on; a later failure replaces it.
CREATE TABLE policy_automation_give_ups (
    host_id       BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    policy_id     BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    failing_since BIGINT NOT NULL,
    gave_up_at    BIGINT NOT NULL,
    PRIMARY KEY (host_id, policy_id)
);
CREATE INDEX policy_automation_give_ups_policy ON policy_automation_give_ups(policy_id);
-- The markers of earlier releases ('automation-gave-up:POLICY:HOST:FAILING_SINCE' done jobs) carried over.
INSERT INTO policy_automation_give_ups (host_id, policy_id, failing_since, gave_up_at)
    SELECT host_id, policy_id, MAX(failing_since), MAX(created_at) FROM (
        SELECT split_part(idempotency_key, ':', 3)::BIGINT AS host_id,
               split_part(idempotency_key, ':', 2)::BIGINT AS policy_id,
               split_part(idempotency_key, ':', 4)::BIGINT AS failing_since, created_at
        FROM jobs WHERE kind = 'automation_gave_up'
    ) m
    WHERE EXISTS (SELECT 1 FROM hosts h WHERE h.id = m.host_id)
      AND EXISTS (SELECT 1 FROM policies p WHERE p.id = m.policy_id)
    GROUP BY host_id, policy_id;
DELETE FROM jobs WHERE kind = 'automation_gave_up';
