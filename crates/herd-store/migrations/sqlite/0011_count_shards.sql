-- No hot rows under a burst of answers (issue 17); see the PostgreSQL migration for why. SQLite cannot drop
-- a constraint, so both tables are rebuilt.
CREATE TABLE policy_counts_sharded (
    policy_id  BIGINT NOT NULL,
    revision   BIGINT NOT NULL,
    team_key   BIGINT NOT NULL,
    shard      BIGINT NOT NULL,
    passing    BIGINT NOT NULL DEFAULT 0,
    failing    BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (policy_id, revision, team_key, shard)
);
INSERT INTO policy_counts_sharded (policy_id, revision, team_key, shard, passing, failing, updated_at)
    SELECT c.policy_id, p.revision, c.team_key, 0, c.passing, c.failing, COALESCE(p.host_count_updated_at, 0)
    FROM policy_counts c JOIN policies p ON p.id = c.policy_id;
DROP TABLE policy_counts;
ALTER TABLE policy_counts_sharded RENAME TO policy_counts;

CREATE TABLE policy_membership_unbound (
    policy_id  BIGINT NOT NULL,
    host_id    BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    passes     BIGINT NULL,
    revision   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, host_id)
);
INSERT INTO policy_membership_unbound SELECT policy_id, host_id, passes, revision, updated_at FROM policy_membership;
DROP TABLE policy_membership;
ALTER TABLE policy_membership_unbound RENAME TO policy_membership;
CREATE INDEX policy_membership_host ON policy_membership(host_id);
