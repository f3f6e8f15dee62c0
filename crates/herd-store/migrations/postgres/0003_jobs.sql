-- The durable job table: everything that must happen once even when several servers run or one crashes
-- (webhooks to deliver, automations to dispatch). Delivery is at least once; the idempotency key travels with
-- the side effect so receivers can drop duplicates, and enqueueing the same key twice enqueues once.

CREATE TABLE jobs (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    -- pending → running (leased) → done | failed; a running job whose lease ran out is pending again.
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    run_at          BIGINT NOT NULL,
    lease_owner     TEXT NULL,
    lease_until     BIGINT NULL,
    last_error      TEXT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT NULL
);
CREATE INDEX jobs_due ON jobs(kind, state, run_at);
