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

-- The day tables (0007, 0008) carry passive window time too: their triggers are
-- recreated with passive_ms (every row of rollup_window has passive_ms 0 so far).
ALTER TABLE rollup_agent_day ADD COLUMN passive_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_app_day ADD COLUMN passive_ms INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER rollup_agent_day_insert;
DROP TRIGGER rollup_agent_day_delete;
DROP TRIGGER rollup_agent_day_update;
DROP TRIGGER rollup_agent_day_move;
DROP TRIGGER rollup_app_day_insert;
DROP TRIGGER rollup_app_day_delete;
DROP TRIGGER rollup_app_day_update;
DROP TRIGGER rollup_app_day_move;

CREATE TRIGGER rollup_agent_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END),
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
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans,
        passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
END;

CREATE TRIGGER rollup_agent_day_update AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms + (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms + (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms + (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms + (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END) - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms,
        spans = spans + NEW.spans - OLD.spans,
        passive_ms = passive_ms + NEW.passive_ms - OLD.passive_ms
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent AND username = NEW.username;
END;

CREATE TRIGGER rollup_agent_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.username = NEW.username) BEGIN
    UPDATE rollup_agent_day SET productive_ms = productive_ms - (CASE OLD.productivity WHEN 'productive' THEN OLD.active_ms ELSE 0 END),
        neutral_ms = neutral_ms - (CASE OLD.productivity WHEN 'neutral' THEN OLD.active_ms ELSE 0 END),
        unproductive_ms = unproductive_ms - (CASE OLD.productivity WHEN 'unproductive' THEN OLD.active_ms ELSE 0 END),
        unclassified_ms = unclassified_ms - (CASE OLD.productivity WHEN 'unclassified' THEN OLD.active_ms ELSE 0 END),
        idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans,
        passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username;
    DELETE FROM rollup_agent_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND username = OLD.username
        AND productive_ms = 0 AND neutral_ms = 0 AND unproductive_ms = 0 AND unclassified_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
    INSERT INTO rollup_agent_day VALUES (NEW.bucket - NEW.bucket % 86400000,
        NEW.agent,
        NEW.username,
        (CASE NEW.productivity WHEN 'productive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'neutral' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unproductive' THEN NEW.active_ms ELSE 0 END),
        (CASE NEW.productivity WHEN 'unclassified' THEN NEW.active_ms ELSE 0 END),
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

CREATE TRIGGER rollup_app_day_insert AFTER INSERT ON rollup_window BEGIN
    INSERT INTO rollup_app_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent, NEW.app, NEW.category, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans, NEW.passive_ms)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms, idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans, passive_ms = passive_ms + excluded.passive_ms;
END;

CREATE TRIGGER rollup_app_day_delete AFTER DELETE ON rollup_window BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms - OLD.active_ms, idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans, passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity;
    DELETE FROM rollup_app_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity AND active_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
END;

CREATE TRIGGER rollup_app_day_update AFTER UPDATE ON rollup_window
WHEN OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.app = NEW.app AND OLD.category = NEW.category AND OLD.productivity = NEW.productivity BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms + NEW.active_ms - OLD.active_ms,
        idle_ms = idle_ms + NEW.idle_ms - OLD.idle_ms, spans = spans + NEW.spans - OLD.spans,
        passive_ms = passive_ms + NEW.passive_ms - OLD.passive_ms
    WHERE day = NEW.bucket - NEW.bucket % 86400000 AND agent = NEW.agent AND app = NEW.app AND category = NEW.category AND productivity = NEW.productivity;
END;

CREATE TRIGGER rollup_app_day_move AFTER UPDATE ON rollup_window
WHEN NOT (OLD.bucket = NEW.bucket AND OLD.agent = NEW.agent AND OLD.app = NEW.app AND OLD.category = NEW.category AND OLD.productivity = NEW.productivity) BEGIN
    UPDATE rollup_app_day SET active_ms = active_ms - OLD.active_ms, idle_ms = idle_ms - OLD.idle_ms,
        spans = spans - OLD.spans, passive_ms = passive_ms - OLD.passive_ms
    WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity;
    DELETE FROM rollup_app_day WHERE day = OLD.bucket - OLD.bucket % 86400000 AND agent = OLD.agent AND app = OLD.app AND category = OLD.category AND productivity = OLD.productivity AND active_ms = 0 AND idle_ms = 0 AND spans = 0 AND passive_ms = 0;
    INSERT INTO rollup_app_day VALUES (NEW.bucket - NEW.bucket % 86400000, NEW.agent, NEW.app, NEW.category, NEW.productivity, NEW.active_ms, NEW.idle_ms, NEW.spans, NEW.passive_ms)
    ON CONFLICT DO UPDATE SET active_ms = active_ms + excluded.active_ms, idle_ms = idle_ms + excluded.idle_ms,
        spans = spans + excluded.spans, passive_ms = passive_ms + excluded.passive_ms;
END;
