-- Window time per UTC day, agent, user and productivity class: what summaries
-- grouped by agent, user or group read for the whole UTC days of their range
-- (the edges of a range in another time zone still come from rollup_window).
-- Without it, "by user over 30 days for 1,000 agents" summed every 15-minute
-- row of every app: seconds instead of milliseconds (benchmarks/dashboard.py).
--
-- Kept equal to rollup_window by triggers, in the same transaction as every
-- change to it (ingest, rebuild, rules re-applied, retention): the code that
-- writes rollup_window does not need to know this table exists.
-- day = the bucket's UTC midnight (epoch ms; a bucket never straddles one).

CREATE TABLE rollup_agent_day (
    day INTEGER NOT NULL,
    agent INTEGER NOT NULL,
    username TEXT NOT NULL,
    productivity TEXT NOT NULL,
    active_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    spans INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent, username, productivity)
) WITHOUT ROWID;

INSERT INTO rollup_agent_day (day, agent, username, productivity, active_ms, idle_ms, spans)
SELECT bucket - bucket % 86400000, agent, username, productivity, sum(active_ms), sum(idle_ms),
       sum(spans)
FROM rollup_window GROUP BY 1, 2, 3, 4;

CREATE TRIGGER rollup_agent_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent,
        NEW.username, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms,
        idle_ms = idle_ms + excluded.idle_ms, spans = spans + excluded.spans;
END;

CREATE TRIGGER rollup_agent_day_delete AFTER DELETE ON rollup_window BEGIN
    UPDATE rollup_agent_day SET active_ms = active_ms - OLD.active_ms,
        idle_ms = idle_ms - OLD.idle_ms, spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent
        AND username = OLD.username AND productivity = OLD.productivity;
    DELETE FROM rollup_agent_day
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent
        AND username = OLD.username AND productivity = OLD.productivity
        AND active_ms = 0 AND idle_ms = 0 AND spans = 0;
END;

-- The ingest hot path: an upsert adding to a row's sums (one UPDATE here).
CREATE TRIGGER rollup_agent_day_add AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username
    AND OLD.productivity = NEW.productivity BEGIN
    UPDATE rollup_agent_day SET active_ms = active_ms + NEW.active_ms - OLD.active_ms,
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms, spans = spans + NEW.spans - OLD.spans
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent
        AND username = NEW.username AND productivity = NEW.productivity;
END;

-- A row moved to another class (rules re-applied) or key: out of one, into another.
CREATE TRIGGER rollup_agent_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username
    AND OLD.productivity = NEW.productivity) BEGIN
    UPDATE rollup_agent_day SET active_ms = active_ms - OLD.active_ms,
        idle_ms = idle_ms - OLD.idle_ms, spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent
        AND username = OLD.username AND productivity = OLD.productivity;
    DELETE FROM rollup_agent_day
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent
        AND username = OLD.username AND productivity = OLD.productivity
        AND active_ms = 0 AND idle_ms = 0 AND spans = 0;
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent,
        NEW.username, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms,
        idle_ms = idle_ms + excluded.idle_ms, spans = spans + excluded.spans;
END;
