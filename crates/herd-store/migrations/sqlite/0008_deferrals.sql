-- User deferral of disruptive remediations.
-- A policy's deferral settings (JSON, checked by the server); NULL: its script runs without asking.
ALTER TABLE policies ADD COLUMN deferral TEXT NULL;

-- script_executions.status gains 'deferred' (the run waits for the user's choice or the scheduled time; the
-- agent holds it) and 'cancelled' (the policy passed again before it ran).

-- One row per host and policy whose remediation was deferrable: the state of the current failure, kept while
-- the host fails the policy (retries share it), closed when the policy passes again.
CREATE TABLE deferrals (
    host_id          BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    policy_id        BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    -- 1 while the host fails the policy; 0 once it passes (state kept for display until the next failure).
    open             BIGINT NOT NULL DEFAULT 1,
    -- The run waiting on the user (status 'deferred'), or the last one.
    execution_id     TEXT NULL,
    first_prompt_at  BIGINT NULL,
    deferrals_used   BIGINT NOT NULL DEFAULT 0,
    scheduled_at     BIGINT NULL,
    -- The agent is showing the prompt now (choices are accepted only then).
    prompt_open      BIGINT NOT NULL DEFAULT 0,
    -- Why the agent is not prompting (a blocking process, nobody logged in, the deadline notice).
    waiting_reason   TEXT NULL,
    -- The host's IANA time zone, as the agent reported it ("tomorrow 09:00" is its local time).
    time_zone        TEXT NULL,
    last_choice      TEXT NULL,
    chosen_by        TEXT NULL,
    chosen_at        BIGINT NULL,
    -- 0: changed since the agent last fetched its scripts (its next check-in is told to fetch).
    agent_synced     BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (host_id, policy_id)
);
CREATE INDEX deferrals_unsynced ON deferrals(host_id) WHERE agent_synced = 0;
