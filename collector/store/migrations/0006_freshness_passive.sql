-- Fresh data, the live view and PASSIVE time (docs/freshness-and-live.md).
--
-- continued: the span continues the agent's previous span of its kind (the agent
-- cuts every open span at each flush); the parts add up, so summaries just add
-- them, and span counts leave continued parts out.
ALTER TABLE window_spans ADD COLUMN continued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE activity_spans ADD COLUMN continued INTEGER NOT NULL DEFAULT 0;
-- PASSIVE spans (state 5): the reason class (1 media, 2 call, 3 inhibitor, 4 rule).
ALTER TABLE activity_spans ADD COLUMN reason INTEGER NOT NULL DEFAULT 0;
-- Window time during PASSIVE activity, and PASSIVE time per agent.
ALTER TABLE rollup_window ADD COLUMN passive_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_window_all ADD COLUMN passive_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_activity ADD COLUMN passive_ms INTEGER NOT NULL DEFAULT 0;

-- What the live view needs beyond the spans: from each agent's latest batch.
CREATE TABLE agent_live (
    agent INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,       -- when the latest batch was stored
    flush_interval_ms INTEGER NOT NULL DEFAULT 0,   -- as the agent last said
    spool_batches INTEGER NOT NULL DEFAULT 0,       -- its backlog besides that batch
    spool_bytes INTEGER NOT NULL DEFAULT 0
);
