-- No hot rows under a burst of answers (issue 17):
-- * policy_counts is keyed by the policy's revision and a shard of the host id (readers sum the shards of the
--   current revision), so concurrent reports of different hosts rarely update the same row, and a report that
--   raced a policy edit adds to a revision nobody reads instead of to the live counts;
-- * each count row carries when it last moved (the policy's host_count_updated_at is the latest of them), so a
--   report no longer writes the policies row;
-- * answers and counts no longer reference policies by foreign key: every answer row inserted took a share
--   lock on its policies row. Deleting a policy deletes its answers and counts in the same transaction.
ALTER TABLE policy_counts DROP CONSTRAINT policy_counts_policy_id_fkey;
ALTER TABLE policy_counts ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE policy_counts ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE policy_counts ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE policy_counts c SET revision = p.revision, updated_at = COALESCE(p.host_count_updated_at, 0)
    FROM policies p WHERE p.id = c.policy_id;
ALTER TABLE policy_counts DROP CONSTRAINT policy_counts_pkey;
ALTER TABLE policy_counts ADD PRIMARY KEY (policy_id, revision, team_key, shard);
ALTER TABLE policy_membership DROP CONSTRAINT policy_membership_policy_id_fkey;
