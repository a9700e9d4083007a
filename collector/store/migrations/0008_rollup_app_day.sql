-- Window time per UTC day, agent, app, category and class: what summaries by app
-- or category read for a token scoped to some agents (or a group filter), for
-- the whole UTC days of the range; the fleet-wide answer has rollup_window_all.
-- Without it a team of 100 agents over 30 days summed every 15-minute row
-- (~0.2 s); the edges of a range in another time zone still come from
-- rollup_window. Kept equal to rollup_window by triggers, like rollup_agent_day.

CREATE TABLE rollup_app_day (
    day INTEGER NOT NULL,
    agent INTEGER NOT NULL,
    app TEXT NOT NULL,
    category TEXT NOT NULL,
    productivity TEXT NOT NULL,
    active_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    spans INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, day, app, category, productivity)   -- read for some agents: agent first
) WITHOUT ROWID;

INSERT INTO rollup_app_day (day, agent, app, category, productivity, active_ms, idle_ms, spans)
SELECT bucket - bucket % 86400000, agent, app, category, productivity, sum(active_ms),
       sum(idle_ms), sum(spans)
FROM rollup_window GROUP BY 1, 2, 3, 4, 5;

CREATE TRIGGER rollup_app_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_app_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent, NEW.app, NEW.category, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms, idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans;
END;

CREATE TRIGGER rollup_app_day_delete AFTER DELETE ON rollup_window BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms - OLD.active_ms, idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity;
    DELETE FROM rollup_app_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity AND active_ms = 0 AND idle_ms = 0 AND spans = 0;
END;

-- The ingest hot path: an upsert adding to a row's sums.
CREATE TRIGGER rollup_app_day_update AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.app = NEW.app AND OLD.category = NEW.category AND OLD.productivity = NEW.productivity BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms + NEW.active_ms - OLD.active_ms,
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms, spans = spans + NEW.spans - OLD.spans
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent AND app = NEW.app AND category = NEW.category AND productivity = NEW.productivity;
END;

-- A row moved to another category or class (rules re-applied): out of one, into another.
CREATE TRIGGER rollup_app_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.app = NEW.app AND OLD.category = NEW.category AND OLD.productivity = NEW.productivity) BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms - OLD.active_ms, idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity;
    DELETE FROM rollup_app_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity AND active_ms = 0 AND idle_ms = 0 AND spans = 0;
    INSERT INTO rollup_app_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent, NEW.app, NEW.category, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms, idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans;
END;
