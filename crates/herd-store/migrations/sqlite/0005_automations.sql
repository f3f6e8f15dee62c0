-- Policy automations: a policy may run a script on a host that newly fails it (retried while it keeps failing).
ALTER TABLE policies ADD COLUMN script_id BIGINT NULL REFERENCES scripts(id) ON DELETE SET NULL;
CREATE INDEX script_executions_policy ON script_executions(host_id, policy_id, status);
-- POST /automations/reset: failures older than this count as new at the host's next answer.
ALTER TABLE policies ADD COLUMN automations_reset_at BIGINT NULL;
