-- Passive time counts in the productivity classes: the same as SQLite's migration
-- 0011_passive_productivity.sql (which says why), for the PostgreSQL schema.
--
-- A rule may classify the passive time of the windows it matches apart from their
-- active time: `passive` a productivity class, `passive_category` a category ('' =
-- the rule's own).
ALTER TABLE rules ADD COLUMN passive text NOT NULL DEFAULT ''
    CHECK (passive IN ('', 'productive', 'neutral', 'unproductive'));
ALTER TABLE rules ADD COLUMN passive_category text NOT NULL DEFAULT '';

-- rollup_agent_day's class columns now count a rollup_window row's active_ms +
-- passive_ms by its productivity (they counted active_ms only): the statement-level
-- trigger function is replaced so, and the table recomputed from rollup_window.
CREATE OR REPLACE FUNCTION rollup_day_changes() RETURNS trigger AS $$
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
            sum(CASE productivity WHEN ''productive'' THEN active_ms + passive_ms ELSE 0 END),
            sum(CASE productivity WHEN ''neutral'' THEN active_ms + passive_ms ELSE 0 END),
            sum(CASE productivity WHEN ''unproductive'' THEN active_ms + passive_ms ELSE 0 END),
            sum(CASE productivity WHEN ''unclassified'' THEN active_ms + passive_ms ELSE 0 END),
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

DELETE FROM rollup_agent_day;
INSERT INTO rollup_agent_day (day, agent, username, productive_ms, neutral_ms, unproductive_ms,
    unclassified_ms, idle_ms, spans, passive_ms)
SELECT bucket - bucket % 86400000, agent, username,
    sum(CASE productivity WHEN 'productive' THEN active_ms + passive_ms ELSE 0 END),
    sum(CASE productivity WHEN 'neutral' THEN active_ms + passive_ms ELSE 0 END),
    sum(CASE productivity WHEN 'unproductive' THEN active_ms + passive_ms ELSE 0 END),
    sum(CASE productivity WHEN 'unclassified' THEN active_ms + passive_ms ELSE 0 END),
    sum(idle_ms), sum(spans), sum(passive_ms)
FROM rollup_window GROUP BY 1, 2, 3;
