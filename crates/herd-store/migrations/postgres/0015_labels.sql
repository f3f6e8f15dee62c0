-- Labels (issue 19): named groups of hosts that scope policies, profiles and views. `membership_type` is
-- Fleet's `label_membership_type`: dynamic (osquery SQL the hosts run), manual (a host list) or host_vitals
-- (herd's criteria, evaluated on the server from what it stores). Built-in labels have `label_type`
-- 'builtin' and are never edited or deleted.
CREATE TABLE labels (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    query           TEXT NOT NULL DEFAULT '',
    platform        TEXT NOT NULL DEFAULT '',
    label_type      TEXT NOT NULL,
    membership_type TEXT NOT NULL,
    -- A criteria label's condition (JSON, `herd_core::labels::Criterion`).
    criteria        TEXT NULL,
    -- Why a criteria label has no members: an input it names (policy, team, label) was deleted.
    broken_reason   TEXT NULL,
    author_id       BIGINT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- The policies each criteria label names (kept with its criteria): a report learns from the policies it
-- already reads whether one of its answers can move a label, without reading every label.
CREATE TABLE label_policy_inputs (
    label_id  BIGINT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    policy_id BIGINT NOT NULL,
    PRIMARY KEY (policy_id, label_id)
);

-- A row per member; for a dynamic label whose query failed on the host, a row with member = 0 and the error.
CREATE TABLE label_membership (
    label_id   BIGINT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    host_id    BIGINT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    member     BIGINT NOT NULL,
    error      TEXT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (label_id, host_id)
);
CREATE INDEX label_membership_host ON label_membership(host_id);

-- Scopes: `mode` is include_any, include_all or exclude_any.
CREATE TABLE policy_labels (
    policy_id BIGINT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    label_id  BIGINT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    mode      TEXT NOT NULL,
    PRIMARY KEY (policy_id, label_id)
);
CREATE INDEX policy_labels_label ON policy_labels(label_id);

CREATE TABLE profile_labels (
    profile_id BIGINT NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    label_id   BIGINT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    mode       TEXT NOT NULL,
    PRIMARY KEY (profile_id, label_id)
);
CREATE INDEX profile_labels_label ON profile_labels(label_id);

-- The labels a host is a member of (sorted ids, comma-separated): a copy of its label_membership rows with
-- member = 1, written in the same transaction, so a check-in plans policies from the host's row alone.
ALTER TABLE hosts ADD COLUMN label_ids TEXT NOT NULL DEFAULT '';
-- When the host last answered its dynamic labels' queries.
ALTER TABLE hosts ADD COLUMN label_updated_at BIGINT NULL;
