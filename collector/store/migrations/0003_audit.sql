-- Audit log of operator actions over the HTTP API: every CSV export and every
-- token, agent or rules change. Who did it (token id, name and role at the
-- time: a token may be renamed or revoked later), what, when, from where, and
-- the query/parameters as JSON so an export can be reproduced.
-- Times are UTC epoch milliseconds.

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    token_id TEXT NOT NULL DEFAULT '',
    token_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    client TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_time ON audit_log (time_ms);
