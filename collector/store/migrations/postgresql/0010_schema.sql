-- The PostgreSQL schema, equal to the SQLite store's after its migration 0010 (same
-- tables, columns and meaning; see collector/store/STORE.md). Later versions add a
-- file here with the same number as SQLite's. Differences, all on purpose:
-- * integers are bigint, REAL is double precision, BLOB is bytea;
-- * record tables (window_spans, activity_spans, process_blocks, system_totals) are
--   partitioned by UTC day on their time column (collector/store/partitions.py creates
--   the partitions ahead; retention drops whole ones) and carry an `id` (insertion
--   order, what SQLite's rowid is to the rollups); every record table leads with
--   `agent`, so it can be distributed by agent (Citus: docs/scaling-out.md);
-- * the per-day rollups are kept by statement-level plpgsql triggers (SQLite: row triggers).

CREATE TABLE agents (
    id bigserial PRIMARY KEY,
    agent_id text NOT NULL UNIQUE,
    install_id text UNIQUE,
    credential_hash text NOT NULL,
    hostname text NOT NULL DEFAULT '',
    os text NOT NULL DEFAULT '',
    os_version text NOT NULL DEFAULT '',
    username text NOT NULL DEFAULT '',
    agent_version text NOT NULL DEFAULT '',
    enrolled_ms bigint NOT NULL,
    last_seen_ms bigint,
    last_sequence bigint NOT NULL DEFAULT 0,
    dropped_events bigint NOT NULL DEFAULT 0,
    revoked_ms bigint,
    reenroll_until_ms bigint,
    previous_user text NOT NULL DEFAULT '',
    user_changed_ms bigint
);
CREATE INDEX agents_revoked ON agents (revoked_ms) WHERE revoked_ms IS NOT NULL;

CREATE TABLE tokens (
    id text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('enroll', 'viewer', 'exporter', 'admin')),
    name text NOT NULL DEFAULT '',
    secret_hash text NOT NULL,
    created_ms bigint NOT NULL,
    expires_ms bigint,
    revoked_ms bigint,
    last_used_ms bigint
);

CREATE TABLE batches (
    agent bigint NOT NULL,
    sequence bigint NOT NULL,
    received_ms bigint NOT NULL,
    events bigint NOT NULL,
    dropped_events bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, sequence)
);

CREATE TABLE window_spans (
    id bigserial NOT NULL,
    agent bigint NOT NULL,
    start_ms bigint NOT NULL,
    duration_ms bigint NOT NULL,
    app text NOT NULL,
    title text NOT NULL,
    pid bigint NOT NULL,
    exe text NOT NULL,
    excluded bigint NOT NULL,
    username text NOT NULL,
    continued bigint NOT NULL DEFAULT 0
) PARTITION BY RANGE (start_ms);
CREATE TABLE window_spans_default PARTITION OF window_spans DEFAULT;
CREATE INDEX window_spans_agent_start ON window_spans (agent, start_ms);

CREATE TABLE activity_spans (
    id bigserial NOT NULL,
    agent bigint NOT NULL,
    start_ms bigint NOT NULL,
    duration_ms bigint NOT NULL,
    state bigint NOT NULL,
    key_presses bigint NOT NULL,
    clicks bigint NOT NULL,
    mouse_moves bigint NOT NULL,
    scrolls bigint NOT NULL,
    username text NOT NULL,
    continued bigint NOT NULL DEFAULT 0,
    reason bigint NOT NULL DEFAULT 0
) PARTITION BY RANGE (start_ms);
CREATE TABLE activity_spans_default PARTITION OF activity_spans DEFAULT;
CREATE INDEX activity_spans_agent_start ON activity_spans (agent, start_ms);

CREATE TABLE process_blocks (
    id bigserial NOT NULL,
    agent bigint NOT NULL,
    bucket bigint NOT NULL,
    samples bigint NOT NULL,
    data bytea NOT NULL
) PARTITION BY RANGE (bucket);
-- Blocks are a few KB of protobuf each: lz4 compresses them at a fraction of the CPU of
-- the default pglz (where the server was built with it).
DO $$ BEGIN
    ALTER TABLE process_blocks ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
END $$;
CREATE TABLE process_blocks_default PARTITION OF process_blocks DEFAULT;
CREATE INDEX process_blocks_agent_bucket ON process_blocks (agent, bucket);

CREATE TABLE system_totals (
    agent bigint NOT NULL,
    time_ms bigint NOT NULL,
    cpu_percent double precision NOT NULL,
    mem_total_bytes bigint NOT NULL,
    mem_used_bytes bigint NOT NULL,
    process_count bigint NOT NULL,
    cpu_count bigint NOT NULL
) PARTITION BY RANGE (time_ms);
CREATE TABLE system_totals_default PARTITION OF system_totals DEFAULT;
CREATE INDEX system_totals_agent_time ON system_totals (agent, time_ms);

CREATE TABLE rollup_window (
    agent bigint NOT NULL,
    bucket bigint NOT NULL,
    username text NOT NULL,
    app text NOT NULL,
    category text NOT NULL,
    productivity text NOT NULL,
    active_ms bigint NOT NULL DEFAULT 0,
    idle_ms bigint NOT NULL DEFAULT 0,
    spans bigint NOT NULL DEFAULT 0,
    passive_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, username, app, category, productivity)
);
CREATE INDEX rollup_window_user ON rollup_window (username, bucket);

CREATE TABLE rollup_window_all (
    bucket bigint NOT NULL,
    app text NOT NULL,
    category text NOT NULL,
    productivity text NOT NULL,
    active_ms bigint NOT NULL DEFAULT 0,
    idle_ms bigint NOT NULL DEFAULT 0,
    spans bigint NOT NULL DEFAULT 0,
    passive_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, app, category, productivity)
);

CREATE TABLE rollup_activity (
    agent bigint NOT NULL,
    bucket bigint NOT NULL,
    username text NOT NULL,
    active_ms bigint NOT NULL DEFAULT 0,
    idle_ms bigint NOT NULL DEFAULT 0,
    locked_ms bigint NOT NULL DEFAULT 0,
    asleep_ms bigint NOT NULL DEFAULT 0,
    key_presses bigint NOT NULL DEFAULT 0,
    clicks bigint NOT NULL DEFAULT 0,
    mouse_moves bigint NOT NULL DEFAULT 0,
    scrolls bigint NOT NULL DEFAULT 0,
    passive_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, username)
);

CREATE TABLE rollup_dropped (
    agent bigint NOT NULL,
    bucket bigint NOT NULL,
    dropped_events bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket)
);

CREATE TABLE rollup_process (
    agent bigint NOT NULL,
    bucket bigint NOT NULL,
    name text NOT NULL,
    cpu_seconds double precision NOT NULL DEFAULT 0,
    peak_rss_bytes bigint NOT NULL DEFAULT 0,
    samples bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, bucket, name)
);

-- Kept for the shared rollup code; on PostgreSQL every stored row is rolled up in its
-- own transaction, so the cursors stay at 0 and mean nothing.
CREATE TABLE rollup_cursor (
    name text PRIMARY KEY,
    last_rowid bigint NOT NULL
);
INSERT INTO rollup_cursor VALUES ('window_spans', 0), ('activity_spans', 0),
    ('process_blocks', 0);

CREATE TABLE rollup_agent (
    agent bigint PRIMARY KEY,
    max_window_ms bigint NOT NULL DEFAULT 0,
    max_activity_ms bigint NOT NULL DEFAULT 0,
    max_state_ms bigint NOT NULL DEFAULT 0,
    window_end_ms bigint,
    activity_end_ms bigint,
    "overlaps" bigint NOT NULL DEFAULT 0
);

CREATE TABLE rules (
    position bigint PRIMARY KEY,
    app text NOT NULL DEFAULT '',
    title text NOT NULL DEFAULT '',
    category text NOT NULL,
    productivity text NOT NULL
        CHECK (productivity IN ('productive', 'neutral', 'unproductive'))
);

CREATE TABLE rules_version (
    id bigint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO rules_version VALUES (1, 0);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    time_ms bigint NOT NULL,
    token_id text NOT NULL DEFAULT '',
    token_name text NOT NULL DEFAULT '',
    role text NOT NULL DEFAULT '',
    action text NOT NULL,
    params text NOT NULL DEFAULT '{}',
    client text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_time ON audit_log (time_ms);

CREATE TABLE agent_groups (
    agent bigint NOT NULL,
    grp text NOT NULL,
    PRIMARY KEY (agent, grp)
);
CREATE INDEX agent_groups_grp ON agent_groups (grp, agent);

CREATE TABLE token_groups (
    token_id text NOT NULL,
    grp text NOT NULL,
    PRIMARY KEY (token_id, grp)
);

CREATE TABLE rollup_agent_day (
    day bigint NOT NULL,
    agent bigint NOT NULL,
    username text NOT NULL,
    productive_ms bigint NOT NULL DEFAULT 0,
    neutral_ms bigint NOT NULL DEFAULT 0,
    unproductive_ms bigint NOT NULL DEFAULT 0,
    unclassified_ms bigint NOT NULL DEFAULT 0,
    idle_ms bigint NOT NULL DEFAULT 0,
    spans bigint NOT NULL DEFAULT 0,
    passive_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent, username)
);

CREATE TABLE rollup_app_day (
    day bigint NOT NULL,
    agent bigint NOT NULL,
    app text NOT NULL,
    category text NOT NULL,
    productivity text NOT NULL,
    active_ms bigint NOT NULL DEFAULT 0,
    idle_ms bigint NOT NULL DEFAULT 0,
    spans bigint NOT NULL DEFAULT 0,
    passive_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, day, app, category, productivity)
);

CREATE TABLE agent_live (
    agent bigint PRIMARY KEY,
    received_ms bigint NOT NULL,
    flush_interval_ms bigint NOT NULL DEFAULT 0,
    spool_batches bigint NOT NULL DEFAULT 0,
    spool_bytes bigint NOT NULL DEFAULT 0
);

-- rollup_agent_day and rollup_app_day: the per-UTC-day sums of rollup_window, kept by
-- statement-level triggers whatever changes rollup_window (ingest upserts, rebuild
-- deletes, rules re-labelling updates): each statement's new rows are added and its old
-- rows taken out, grouped by day first (one upsert per statement, not one per row as
-- SQLite's row triggers do), then rows that fell to zero are deleted.
CREATE FUNCTION rollup_day_changes() RETURNS trigger AS $$
DECLARE
    taken_out text := 'SELECT agent, bucket, username, app, category, productivity, '
        '-active_ms AS active_ms, -idle_ms AS idle_ms, -spans AS spans, '
        '-passive_ms AS passive_ms FROM old_rows';
    changes text;
BEGIN
    -- the transition tables that exist for this event, old rows counted negative
    changes := CASE TG_OP WHEN 'INSERT' THEN 'SELECT * FROM new_rows'
                          WHEN 'DELETE' THEN taken_out
                          ELSE 'SELECT * FROM new_rows UNION ALL ' || taken_out END;
    EXECUTE 'WITH c AS (' || changes || ') INSERT INTO rollup_agent_day AS t
        SELECT bucket - bucket % 86400000, agent, username,
            sum(CASE productivity WHEN ''productive'' THEN active_ms ELSE 0 END),
            sum(CASE productivity WHEN ''neutral'' THEN active_ms ELSE 0 END),
            sum(CASE productivity WHEN ''unproductive'' THEN active_ms ELSE 0 END),
            sum(CASE productivity WHEN ''unclassified'' THEN active_ms ELSE 0 END),
            sum(idle_ms), sum(spans), sum(passive_ms)
        FROM c GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, agent, username) DO UPDATE SET
        productive_ms = t.productive_ms + excluded.productive_ms,
        neutral_ms = t.neutral_ms + excluded.neutral_ms,
        unproductive_ms = t.unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = t.unclassified_ms + excluded.unclassified_ms,
        idle_ms = t.idle_ms + excluded.idle_ms,
        spans = t.spans + excluded.spans,
        passive_ms = t.passive_ms + excluded.passive_ms';
    EXECUTE 'WITH c AS (' || changes || ') INSERT INTO rollup_app_day AS t
        SELECT bucket - bucket % 86400000, agent, app, category, productivity,
            sum(active_ms), sum(idle_ms), sum(spans), sum(passive_ms)
        FROM c GROUP BY 1, 2, 3, 4, 5 ORDER BY 2, 1, 3, 4, 5
    ON CONFLICT (agent, day, app, category, productivity) DO UPDATE SET
        active_ms = t.active_ms + excluded.active_ms,
        idle_ms = t.idle_ms + excluded.idle_ms,
        spans = t.spans + excluded.spans,
        passive_ms = t.passive_ms + excluded.passive_ms';
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM rollup_agent_day t USING (SELECT DISTINCT bucket - bucket % 86400000 AS day,
                agent, username FROM old_rows) o
            WHERE t.day = o.day AND t.agent = o.agent AND t.username = o.username
            AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0
            AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
        DELETE FROM rollup_app_day t USING (SELECT DISTINCT bucket - bucket % 86400000 AS day,
                agent, app, category, productivity FROM old_rows) o
            WHERE t.day = o.day AND t.agent = o.agent AND t.app = o.app
            AND t.category = o.category AND t.productivity = o.productivity
            AND active_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER rollup_day_insert AFTER INSERT ON rollup_window
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_day_changes();
CREATE TRIGGER rollup_day_update AFTER UPDATE ON rollup_window
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_day_changes();
CREATE TRIGGER rollup_day_delete AFTER DELETE ON rollup_window
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_day_changes();
