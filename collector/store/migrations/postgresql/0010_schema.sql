-- The PostgreSQL schema, equal to the SQLite store's after its migration 0010 (same
-- tables, columns and meaning; see collector/store/STORE.md). Later versions add a
-- file here with the same number as SQLite's. Differences, all on purpose:
-- * integers are bigint, REAL is double precision, BLOB is bytea;
-- * record tables (window_spans, activity_spans, process_blocks, system_totals) are
--   partitioned by UTC day on their time column (collector/store/partitions.py creates
--   the partitions ahead; retention drops whole ones) and carry an `id` (insertion
--   order, what SQLite's rowid is to the rollups); every record table leads with
--   `agent`, so it can be distributed by agent (Citus: docs/scaling-out.md);
-- * the per-day rollups are kept by one plpgsql trigger instead of SQLite's four.

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
CREATE TABLE process_blocks_default PARTITION OF process_blocks DEFAULT;
CREATE INDEX process_blocks_agent_bucket ON process_blocks (agent, bucket);

CREATE TABLE system_totals (
    id bigserial NOT NULL,
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
-- this trigger whatever changes rollup_window (ingest upserts, rebuild deletes, rules
-- re-labelling updates): the old row's share is taken out, the new row's put in.
CREATE FUNCTION rollup_day_apply(r rollup_window, sign bigint, tidy boolean) RETURNS void AS $$
DECLARE
    d bigint := r.bucket - r.bucket % 86400000;
BEGIN
    INSERT INTO rollup_agent_day AS t VALUES (d, r.agent, r.username,
        sign * (CASE r.productivity WHEN 'productive' THEN r.active_ms ELSE 0 END),
        sign * (CASE r.productivity WHEN 'neutral' THEN r.active_ms ELSE 0 END),
        sign * (CASE r.productivity WHEN 'unproductive' THEN r.active_ms ELSE 0 END),
        sign * (CASE r.productivity WHEN 'unclassified' THEN r.active_ms ELSE 0 END),
        sign * r.idle_ms, sign * r.spans, sign * r.passive_ms)
    ON CONFLICT (day, agent, username) DO UPDATE SET
        productive_ms = t.productive_ms + excluded.productive_ms,
        neutral_ms = t.neutral_ms + excluded.neutral_ms,
        unproductive_ms = t.unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = t.unclassified_ms + excluded.unclassified_ms,
        idle_ms = t.idle_ms + excluded.idle_ms,
        spans = t.spans + excluded.spans,
        passive_ms = t.passive_ms + excluded.passive_ms;
    INSERT INTO rollup_app_day AS t VALUES (d, r.agent, r.app, r.category, r.productivity,
        sign * r.active_ms, sign * r.idle_ms, sign * r.spans, sign * r.passive_ms)
    ON CONFLICT (agent, day, app, category, productivity) DO UPDATE SET
        active_ms = t.active_ms + excluded.active_ms,
        idle_ms = t.idle_ms + excluded.idle_ms,
        spans = t.spans + excluded.spans,
        passive_ms = t.passive_ms + excluded.passive_ms;
    IF tidy THEN
        DELETE FROM rollup_agent_day WHERE day = d AND agent = r.agent
            AND username = r.username AND productive_ms = 0 AND neutral_ms = 0
            AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0
            AND passive_ms = 0;
        DELETE FROM rollup_app_day WHERE day = d AND agent = r.agent AND app = r.app
            AND category = r.category AND productivity = r.productivity AND active_ms = 0
            AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION rollup_day_trigger() RETURNS trigger AS $$
DECLARE
    delta rollup_window;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.agent = NEW.agent AND OLD.bucket / 86400000 = NEW.bucket / 86400000
            AND OLD.username = NEW.username AND OLD.app = NEW.app
            AND OLD.category = NEW.category AND OLD.productivity = NEW.productivity THEN
        -- the common case (an ingest upsert adding time): one pass with the difference
        delta := NEW;
        delta.active_ms := NEW.active_ms - OLD.active_ms;
        delta.idle_ms := NEW.idle_ms - OLD.idle_ms;
        delta.spans := NEW.spans - OLD.spans;
        delta.passive_ms := NEW.passive_ms - OLD.passive_ms;
        PERFORM rollup_day_apply(delta, 1, delta.active_ms < 0 OR delta.idle_ms < 0
                                 OR delta.spans < 0 OR delta.passive_ms < 0);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM rollup_day_apply(OLD, -1, true);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM rollup_day_apply(NEW, 1, false);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER rollup_day AFTER INSERT OR UPDATE OR DELETE ON rollup_window
    FOR EACH ROW EXECUTE FUNCTION rollup_day_trigger();
