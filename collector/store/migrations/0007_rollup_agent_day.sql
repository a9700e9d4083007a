-- Window time per UTC day, agent and user, with the active time split by
-- productivity class in columns: what summaries grouped by agent, user or group
-- (and by day for some agents) read for the whole UTC days of their range; the
-- edges of a range in another time zone still come from rollup_window. Without
-- it, "by user over 30 days for 1,000 agents" summed every 15-minute row of
-- every app: seconds instead of tens of milliseconds (benchmarks/dashboard.py).
--
-- Kept equal to rollup_window by triggers, in the same transaction as every
-- change to it (ingest, rebuild, rules re-applied, retention): the code that
-- writes rollup_window does not need to know this table exists.
-- day = the bucket's UTC midnight (epoch ms; a bucket never straddles one).

CREATE TABLE rollup_agent_day (
    day INTEGER NOT NULL,
    agent INTEGER NOT NULL,
    username TEXT NOT NULL,
    productive_ms INTEGER NOT NULL DEFAULT 0,
    neutral_ms INTEGER NOT NULL DEFAULT 0,
    unproductive_ms INTEGER NOT NULL DEFAULT 0,
    unclassified_ms INTEGER NOT NULL DEFAULT 0,
    idle_ms INTEGER NOT NULL DEFAULT 0,
    spans INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent, username)
) WITHOUT ROWID;

INSERT INTO rollup_agent_day (day, agent, username, productive_ms, neutral_ms, unproductive_ms, unclassified_ms, idle_ms, spans)
SELECT bucket - bucket % 86400000, agent, username,
    sum(CASE productivity WHEN 'productive' THEN active_ms ELSE 0 END), sum(CASE productivity WHEN 'neutral' THEN active_ms ELSE 0 END), sum(CASE productivity WHEN 'unproductive' THEN active_ms ELSE 0 END), sum(CASE productivity WHEN 'unclassified' THEN active_ms ELSE 0 END),
    sum(idle_ms), sum(spans)
FROM rollup_window GROUP BY 1, 2, 3;

CREATE TRIGGER rollup_agent_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END),
        NEW.idle_ms,
        NEW.spans)
    ON CONFLICT DO UPDATE SET productive_ms = productive_ms + excluded.productive_ms,
        neutral_ms = neutral_ms + excluded.neutral_ms,
        unproductive_ms = unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = unclassified_ms + excluded.unclassified_ms,
        idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans;
END;

CREATE TRIGGER rollup_agent_day_delete AFTER DELETE ON rollup_window BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0;
END;

-- The ingest hot path (an upsert adding to a row's sums) and a rules change
-- moving a row to another class: one UPDATE of the same day row.
CREATE TRIGGER rollup_agent_day_update AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms + (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms + (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms + (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms + (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms,
        spans = spans + NEW.spans - OLD.spans
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent AND username = NEW.username;
END;

-- A row moved to another day, agent or user (nothing does this today; kept exact).
CREATE TRIGGER rollup_agent_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username) BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0;
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END),
        NEW.idle_ms,
        NEW.spans)
    ON CONFLICT DO UPDATE SET productive_ms = productive_ms + excluded.productive_ms,
        neutral_ms = neutral_ms + excluded.neutral_ms,
        unproductive_ms = unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = unclassified_ms + excluded.unclassified_ms,
        idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans;
END;
