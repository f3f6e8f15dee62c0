-- What a finished run's missing exit code means, recorded instead of guessed:
-- timed_out: killed at its time limit on the host (Fleet's `host_timeout`);
-- refused:   never run, because the host's agent (or the server) had scripts disabled. A refused run is not an
--            attempt of a policy automation: turning scripts on lets the automation run, its retries intact.
ALTER TABLE script_executions ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE script_executions ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
