-- Passive time counts in the productivity classes (docs/freshness-and-live.md,
-- "Passive time in productivity"): time a person spends watching or in a call counts
-- as the class of its window's category, or as a rule says (below).
--
-- A rule may classify the passive time of the windows it matches apart from their
-- active time: `passive` a productivity class, `passive_category` a category ('' =
-- the rule's own). The rollups keep such time in rows of that category and class.
ALTER TABLE rules ADD COLUMN passive TEXT NOT NULL DEFAULT ''
    CHECK (passive IN ('', 'productive', 'neutral', 'unproductive'));
ALTER TABLE rules ADD COLUMN passive_category TEXT NOT NULL DEFAULT '';

-- rollup_agent_day's class columns (0007, 0010) now count a rollup_window row's
-- active_ms + passive_ms by its productivity (they counted active_ms only): its
-- triggers are recreated so, and the table is recomputed from rollup_window. The
-- active time of an agent-day is sum(<class>_ms) - passive_ms.
DROP TRIGGER rollup_agent_day_insert;
DROP TRIGGER rollup_agent_day_delete;
DROP TRIGGER rollup_agent_day_update;
DROP TRIGGER rollup_agent_day_move;
DELETE FROM rollup_agent_day;
INSERT INTO rollup_agent_day (day, agent, username, productive_ms, neutral_ms, unproductive_ms,
    unclassified_ms, idle_ms, spans, passive_ms)
SELECT bucket - bucket % 86400000, agent, username,
    sum(CASE productivity WHEN 'productive' THEN active_ms + passive_ms ELSE 0 END), sum(CASE productivity WHEN 'neutral' THEN active_ms + passive_ms ELSE 0 END), sum(CASE productivity WHEN 'unproductive' THEN active_ms + passive_ms ELSE 0 END), sum(CASE productivity WHEN 'unclassified' THEN active_ms + passive_ms ELSE 0 END),
    sum(idle_ms), sum(spans), sum(passive_ms)
FROM rollup_window GROUP BY 1, 2, 3;

CREATE TRIGGER rollup_agent_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        NEW.idle_ms,
        NEW.spans,
        NEW.passive_ms)
    ON CONFLICT DO UPDATE SET productive_ms = productive_ms + excluded.productive_ms,
        neutral_ms = neutral_ms + excluded.neutral_ms,
        unproductive_ms = unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = unclassified_ms + excluded.unclassified_ms,
        idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans,
        passive_ms = passive_ms + excluded.passive_ms;
END;

CREATE TRIGGER rollup_agent_day_delete AFTER DELETE ON rollup_window BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans,
        passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
END;

CREATE TRIGGER rollup_agent_day_update AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms + (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        neutral_ms = neutral_ms + (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unproductive_ms = unproductive_ms + (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unclassified_ms = unclassified_ms + (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms,
        spans = spans + NEW.spans - OLD.spans,
        passive_ms = passive_ms + NEW.passive_ms - OLD.passive_ms
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent AND username = NEW.username;
END;

CREATE TRIGGER rollup_agent_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username) BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms + OLD.passive_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans,
        passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms + NEW.passive_ms ELSE 0 END),
        NEW.idle_ms,
        NEW.spans,
        NEW.passive_ms)
    ON CONFLICT DO UPDATE SET productive_ms = productive_ms + excluded.productive_ms,
        neutral_ms = neutral_ms + excluded.neutral_ms,
        unproductive_ms = unproductive_ms + excluded.unproductive_ms,
        unclassified_ms = unclassified_ms + excluded.unclassified_ms,
        idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans,
        passive_ms = passive_ms + excluded.passive_ms;
END;
