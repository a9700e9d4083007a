-- Raw records keep ONE time index: (agent, start_ms) / (agent, time_ms).
--
-- The global (start_ms) / (time_ms) indexes made every ingested row touch a
-- third B-tree inside the group commit, for readers that do not need them:
-- CSV exports and retention walk the raw tables agent by agent through the
-- (agent, time) index (collector/csvexport.py, collector/retention.py), which
-- also reads a day's rows with better locality than the global time order;
-- rollups, summaries and timelines are per agent already.
DROP INDEX IF EXISTS window_spans_start;
DROP INDEX IF EXISTS activity_spans_start;
DROP INDEX IF EXISTS process_samples_time;
