-- Scripts (a library, global or per team) and their runs on hosts.

CREATE TABLE scripts (
    id         BIGSERIAL PRIMARY KEY,
    team_id    BIGINT NULL REFERENCES teams(id) ON DELETE CASCADE,
    -- team_id, or 0 for global scripts: names are unique per scope.
    scope_key  BIGINT NOT NULL,
    name       TEXT NOT NULL,
    contents   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (scope_key, name)
);

CREATE TABLE script_executions (
    id             BIGSERIAL PRIMARY KEY,
    -- What clients and agents see; random, so ids cannot be guessed or enumerated.
    execution_id   TEXT NOT NULL UNIQUE,
    host_id        BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    script_id      BIGINT NULL REFERENCES scripts(id) ON DELETE SET NULL,
    script_name    TEXT NOT NULL,
    contents       TEXT NOT NULL,
    -- pending (queued for the host) → ran (exit code 0 or not) | error (could not run, timed out)
    status         TEXT NOT NULL,
    exit_code      BIGINT NULL,
    output         TEXT NOT NULL DEFAULT '',
    runtime_ms     BIGINT NULL,
    timeout_s      BIGINT NOT NULL,
    policy_id      BIGINT NULL,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT NULL
);
CREATE INDEX script_executions_host ON script_executions(host_id, status, id);

-- Whether the host's agent runs scripts (it says so when it asks for pending ones); NULL: never said.
ALTER TABLE hosts ADD COLUMN scripts_enabled BIGINT NULL;
