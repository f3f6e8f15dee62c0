-- Daily compliance history for the console's chart: per UTC day, each policy's passing and failing host
-- counts as last seen that day (policy_id 0: all policies together). Kept by the compliance_recorder worker.
CREATE TABLE compliance_daily (
    day        TEXT NOT NULL,
    policy_id  BIGINT NOT NULL,
    passing    BIGINT NOT NULL,
    failing    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (day, policy_id)
);
