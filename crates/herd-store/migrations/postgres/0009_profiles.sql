-- Configuration profiles (seed 004): what hosts should have, and each host's copy with its status.
CREATE TABLE profiles (
    id            BIGSERIAL PRIMARY KEY,
    -- What clients see: "h" + 32 hex digits for herd profiles, "a" + 32 for Apple .mobileconfig files.
    uuid          TEXT NOT NULL UNIQUE,
    team_id       BIGINT NULL REFERENCES teams(id) ON DELETE CASCADE,
    -- team_id, or 0 for the no-team set: identifiers and names are unique per set.
    scope_key     BIGINT NOT NULL,
    identifier    TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- 'linux' (herd profiles, applied by herd-agent) or 'darwin' (.mobileconfig, stored and shown only).
    platform      TEXT NOT NULL,
    -- 'herd' or 'mobileconfig'.
    format        TEXT NOT NULL,
    -- Payload types, comma-separated (file,sysctl / com.apple.wifi.managed,...).
    payload_types TEXT NOT NULL,
    -- The document as uploaded (herd profiles: normalized JSON).
    contents      TEXT NOT NULL,
    -- herd profiles: the checksum of the desired state (herd_core::profiles); Apple: SHA-256 of the file.
    checksum      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    uploaded_at   BIGINT NOT NULL,
    UNIQUE (scope_key, identifier),
    UNIQUE (scope_key, name)
);

-- One row per host and profile identifier the host has or should have (herd profiles on hosts whose agent
-- applies them). status NULL: a command must be sent; pending: sent, not answered; verifying: acknowledged;
-- verified: the host's report matches; failed: retries ran out.
CREATE TABLE host_profiles (
    host_id             BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    identifier          TEXT NOT NULL,
    -- The profile installed or to install; NULL once deleted (a remove keeps the row until acknowledged).
    profile_uuid        TEXT NULL,
    name                TEXT NOT NULL,
    checksum            TEXT NOT NULL,
    operation           TEXT NOT NULL,
    status              TEXT NULL,
    detail              TEXT NULL,
    retries             BIGINT NOT NULL DEFAULT 0,
    -- The command the host must answer; a new one for every send.
    command_uuid        TEXT NULL,
    -- Commands apply in this order on the host.
    command_seq         BIGINT NULL,
    sent_at             BIGINT NULL,
    acked_at            BIGINT NULL,
    earliest_install_at BIGINT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (host_id, identifier)
);
CREATE INDEX host_profiles_status ON host_profiles(host_id, status);
CREATE INDEX host_profiles_profile ON host_profiles(profile_uuid);

-- The host's agent applies herd profiles (it said so when it asked for commands); NULL: never said.
ALTER TABLE hosts ADD COLUMN profiles_enabled BIGINT NULL;

-- Grace period and retry limit are in the configuration document (host_settings).
