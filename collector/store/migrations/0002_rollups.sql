-- Summary rollups, productivity rules and the bookkeeping that keeps rollups
-- equal to what a rebuild from raw records computes (collector/rollup.py).
--
-- Buckets are 15-minute UTC intervals (bucket = start, epoch ms, a multiple of
-- 900000). Every time zone in use today has an offset that is a multiple of
-- 15 minutes (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, Pacific/Chatham
-- +12:45), so every local hour and day boundary is a bucket boundary and any
-- zone is answered from rollups alone. Durations are integer milliseconds.

-- Window time per agent, bucket, user, app and category: the table filtered
-- summaries (one agent, one user) read. productivity is 'productive',
-- 'neutral', 'unproductive' or 'unclassified'.
CREATE TABLE rollup_window (
    agent INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    username TEXT NOT NULL,
    app TEXT NOT NULL,
    category TEXT NOT NULL,
    productivity TEXT NOT NULL,
    active_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    spans INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, username, app, category, productivity)
) WITHOUT ROWID;
CREATE INDEX rollup_window_user ON rollup_window (username, bucket);

-- The same without agent and user: what unfiltered summaries over the whole
-- fleet read (rows = buckets x apps, independent of the number of agents).
CREATE TABLE rollup_window_all (
    bucket INTEGER NOT NULL,
    app TEXT NOT NULL,
    category TEXT NOT NULL,
    productivity TEXT NOT NULL,
    active_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    spans INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, app, category, productivity)
) WITHOUT ROWID;

-- Activity states and input counts per agent, bucket and user (not window
-- based). Input counts are attributed to the bucket in which their activity
-- span starts (a span carries no timestamps for its inputs).
CREATE TABLE rollup_activity (
    agent INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    username TEXT NOT NULL,
    active_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    locked_ms INTEGER NOT NULL DEFAULT 0,
    asleep_ms INTEGER NOT NULL DEFAULT 0,
    key_presses INTEGER NOT NULL DEFAULT 0,
    clicks INTEGER NOT NULL DEFAULT 0,
    mouse_moves INTEGER NOT NULL DEFAULT 0,
    scrolls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, username)
) WITHOUT ROWID;

-- Events agents had to drop, by the bucket in which the batch was received.
CREATE TABLE rollup_dropped (
    agent INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket)
) WITHOUT ROWID;

-- Process CPU time and peak memory by the bucket of the sample's time.
CREATE TABLE rollup_process (
    agent INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    name TEXT NOT NULL,
    cpu_seconds REAL NOT NULL DEFAULT 0,
    peak_rss_bytes INTEGER NOT NULL DEFAULT 0,
    samples INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, name)
) WITHOUT ROWID;

-- How far the ingest hook has rolled up each raw table (by rowid): every row
-- at or below the cursor is counted in the rollups, every row above is not.
CREATE TABLE rollup_cursor (
    name TEXT PRIMARY KEY,
    last_rowid INTEGER NOT NULL
);
INSERT INTO rollup_cursor VALUES ('window_spans', 0), ('activity_spans', 0),
    ('process_samples', 0);

-- Per agent, the longest window span, ACTIVE/IDLE activity span and activity
-- span of any state seen: how far back an overlap search by start time must
-- look (spans are indexed by start only).
CREATE TABLE rollup_agent (
    agent INTEGER PRIMARY KEY,
    max_window_ms INTEGER NOT NULL DEFAULT 0,
    max_activity_ms INTEGER NOT NULL DEFAULT 0,
    max_state_ms INTEGER NOT NULL DEFAULT 0
);

-- Productivity rules, applied in position order; the first match wins.
-- An empty regex matches anything.
CREATE TABLE rules (
    position INTEGER PRIMARY KEY,
    app TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL,
    productivity TEXT NOT NULL
        CHECK (productivity IN ('productive', 'neutral', 'unproductive'))
);

-- Bumped on every rules change so a process notices rules written by another.
CREATE TABLE rules_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO rules_version VALUES (1, 0);
