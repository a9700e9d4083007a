-- Re-enrollment of an existing install needs the agent's current credential or
-- an admin's approval (collector.enrollment): reenroll_until_ms is that approval's
-- deadline (UTC epoch ms; NULL = none). Install ids are stored hashed from now on
-- ("sha256:<hex>"); rows written before keep theirs until the agent next enrolls.
-- When the user an agent reports changes (agents.username follows the batches), the
-- one before and when it changed are kept here, and the change is audited
-- (collector.ingest.userchange).
ALTER TABLE agents ADD COLUMN reenroll_until_ms INTEGER;
ALTER TABLE agents ADD COLUMN previous_user TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN user_changed_ms INTEGER;
-- Overlapping spans across batches (collector.rollup, collector.store.overlaps): where each
-- agent's stored window and activity spans end (NULL: not known yet, found on the
-- next batch), and whether they ever overlapped (bit 1 windows, bit 2 activity):
-- such an agent's rollups count each instant once, for the span stored first.
ALTER TABLE rollup_agent ADD COLUMN window_end_ms INTEGER;
ALTER TABLE rollup_agent ADD COLUMN activity_end_ms INTEGER;
ALTER TABLE rollup_agent ADD COLUMN overlaps INTEGER NOT NULL DEFAULT 0;
