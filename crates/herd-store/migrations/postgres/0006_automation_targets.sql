-- Per-policy automations beyond a script: a webhook of the policy's own, and continuous mode (fire on every
-- scheduled failing result instead of only on a new failure).
ALTER TABLE policies ADD COLUMN webhook_url TEXT NULL;
ALTER TABLE policies ADD COLUMN continuous_automation BIGINT NOT NULL DEFAULT 0;
-- Fleet's team webhook settings (failing_policies_webhook for the team's policies); NULL: none.
ALTER TABLE teams ADD COLUMN webhook_settings TEXT NULL;
-- Set when a host's automation scripts finished and the server must re-run the policies they fixed (hosts
-- whose agent does not re-check by itself): the next distributed/read carries them, with accelerate.
ALTER TABLE hosts ADD COLUMN recheck_requested_at BIGINT NULL;
