-- Policies, their per-host answers, live pass/fail counts, device tokens, activities.

CREATE TABLE policies (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT NOT NULL,
    query                 TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    resolution            TEXT NOT NULL DEFAULT '',
    platform              TEXT NOT NULL DEFAULT '',
    critical              BIGINT NOT NULL DEFAULT 0,
    team_id               BIGINT NULL REFERENCES teams(id) ON DELETE CASCADE,
    -- team_id, or 0 for global policies: names are unique per scope, and NULLs never collide in UNIQUE.
    scope_key             BIGINT NOT NULL,
    author_id             BIGINT NULL REFERENCES users(id) ON DELETE SET NULL,
    author_name           TEXT NOT NULL DEFAULT '',
    author_email          TEXT NOT NULL DEFAULT '',
    interval_seconds      BIGINT NULL,
    -- Bumped when query or platform change: answers to an older revision are void.
    revision              BIGINT NOT NULL DEFAULT 1,
    host_count_updated_at BIGINT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (scope_key, name)
);
CREATE INDEX policies_team ON policies(team_id);

-- Passing and failing hosts per policy and host team (team_key: the host's team id, 0 for no team),
-- maintained by delta in the transaction of every change that moves them.
CREATE TABLE policy_counts (
    policy_id BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    team_key  BIGINT NOT NULL,
    passing   BIGINT NOT NULL DEFAULT 0,
    failing   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (policy_id, team_key)
);

-- A host's latest answer to a policy: passes 1 pass, 0 fail, NULL no answer (the query errored).
CREATE TABLE policy_membership (
    policy_id  BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    host_id    BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    passes     BIGINT NULL,
    revision   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, host_id)
);
CREATE INDEX policy_membership_host ON policy_membership(host_id);

-- When the host last ran each policy ({"<policy id>": [ran_at ms, revision]}): one row written per report,
-- however many policies it answers, while membership rows change only when an answer does.
ALTER TABLE hosts ADD COLUMN policy_runs TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN policy_updated_at BIGINT NULL;

-- Device tokens: the current one and the one it replaced (valid for one more rotation).
CREATE TABLE device_tokens (
    token_hash    TEXT PRIMARY KEY,
    host_id       BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    superseded_at BIGINT NULL
);
CREATE INDEX device_tokens_host ON device_tokens(host_id);

CREATE TABLE activities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  BIGINT NOT NULL,
    actor_id    BIGINT NULL,
    actor_name  TEXT NULL,
    actor_email TEXT NULL,
    type        TEXT NOT NULL,
    details     TEXT NOT NULL
);
