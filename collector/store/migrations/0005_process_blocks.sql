-- Process samples are stored in blocks: one row per agent, 15-minute bucket and
-- batch, holding that stretch's samples as the protobuf bytes of a
-- worklens.v1.Batch with only `processes` set (collector/store/blocks.py says
-- why: a row and an index entry per sample were most of the ingest writer's work).
--
-- After these statements, in the same transaction, migrate.py runs the data step
-- of this version (blocks.convert_samples): it moves every process_samples row
-- into blocks (rows already rolled up first, so that the rollup cursor can say
-- where they end) and drops process_samples.
CREATE TABLE process_blocks (
    agent INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX process_blocks_agent_bucket ON process_blocks (agent, bucket);
