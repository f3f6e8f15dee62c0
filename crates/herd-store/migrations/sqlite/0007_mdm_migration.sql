-- Migration from a previous management system (seed 002).
-- What the host last reported: 1 managed by the other system, 0 not, NULL unknown.
ALTER TABLE hosts ADD COLUMN managed_by_other BIGINT NULL;
-- '' none, 'started' (a user started it; the critical window is open), 'migrated', 'timed_out'.
ALTER TABLE hosts ADD COLUMN migration_state TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN migration_started_at BIGINT NULL;
-- While now < this, check-ins carry only the management status, accelerated.
ALTER TABLE hosts ADD COLUMN migration_window_until BIGINT NULL;
