-- herd schema, SQLite. Instants are INTEGER milliseconds since the Unix epoch; booleans are 0/1 (the same
-- representation as on PostgreSQL, so one query text serves both backends). AUTOINCREMENT: ids are never reused.

CREATE TABLE teams (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    description   TEXT NOT NULL DEFAULT '',
    agent_options TEXT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE enroll_secrets (
    secret     TEXT PRIMARY KEY,
    team_id    BIGINT NULL REFERENCES teams(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX enroll_secrets_team ON enroll_secrets(team_id);

CREATE TABLE hosts (
    id                           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                         TEXT NOT NULL UNIQUE,
    osquery_host_id              TEXT NOT NULL,
    node_key_hash                TEXT NULL UNIQUE,
    team_id                      BIGINT NULL REFERENCES teams(id) ON DELETE SET NULL,
    hostname                     TEXT NOT NULL DEFAULT '',
    computer_name                TEXT NOT NULL DEFAULT '',
    platform                     TEXT NOT NULL DEFAULT '',
    platform_like                TEXT NOT NULL DEFAULT '',
    os_version                   TEXT NOT NULL DEFAULT '',
    os_build                     TEXT NOT NULL DEFAULT '',
    osquery_version              TEXT NOT NULL DEFAULT '',
    hardware_serial              TEXT NOT NULL DEFAULT '',
    hardware_model               TEXT NOT NULL DEFAULT '',
    hardware_vendor              TEXT NOT NULL DEFAULT '',
    cpu_brand                    TEXT NOT NULL DEFAULT '',
    cpu_type                     TEXT NOT NULL DEFAULT '',
    cpu_physical_cores           BIGINT NULL,
    cpu_logical_cores            BIGINT NULL,
    memory                       BIGINT NULL,
    uptime_seconds               BIGINT NULL,
    primary_ip                   TEXT NOT NULL DEFAULT '',
    primary_mac                  TEXT NOT NULL DEFAULT '',
    percent_disk_space_available REAL NULL,
    gigs_disk_space_available    REAL NULL,
    gigs_total_disk_space        REAL NULL,
    distributed_interval         BIGINT NULL,
    config_tls_refresh           BIGINT NULL,
    logger_tls_period            BIGINT NULL,
    seen_time                    BIGINT NULL,
    created_at                   BIGINT NOT NULL,
    last_enrolled_at             BIGINT NOT NULL,
    detail_updated_at            BIGINT NULL,
    refetch_requested_at         BIGINT NULL
);
CREATE INDEX hosts_team ON hosts(team_id);
CREATE INDEX hosts_hostname ON hosts(hostname);
CREATE INDEX hosts_serial ON hosts(hardware_serial);

-- Change feed for the servers' in-memory host caches: a row per host whose cached check-in state went stale.
CREATE TABLE host_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id    BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX host_changes_time ON host_changes(changed_at);

CREATE TABLE host_status_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id     BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    received_at BIGINT NOT NULL,
    unix_time   BIGINT NULL,
    severity    BIGINT NOT NULL,
    filename    TEXT NOT NULL,
    line        BIGINT NOT NULL,
    message     TEXT NOT NULL,
    version     TEXT NOT NULL
);
CREATE INDEX host_status_logs_host ON host_status_logs(host_id, id);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT NOT NULL,
    email                TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    global_role          TEXT NULL,
    api_only             BIGINT NOT NULL DEFAULT 0,
    force_password_reset BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE user_teams (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX user_teams_team ON user_teams(team_id);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE app_config (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
