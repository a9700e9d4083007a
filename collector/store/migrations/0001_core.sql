-- Core schema: agents, tokens, the idempotency ledger of batches and the raw
-- records. Column names are the contract in notes/store-contract.md.
-- Times are UTC epoch milliseconds.

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL UNIQUE,
    install_id TEXT UNIQUE,
    credential_hash TEXT NOT NULL,
    hostname TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    os_version TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    enrolled_ms INTEGER NOT NULL,
    last_seen_ms INTEGER,
    last_sequence INTEGER NOT NULL DEFAULT 0,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    revoked_ms INTEGER
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('enroll', 'viewer', 'exporter', 'admin')),
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER,
    last_used_ms INTEGER
);

-- (agent, sequence) is the idempotency key: a batch delivered twice is stored once.
CREATE TABLE batches (
    agent INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    events INTEGER NOT NULL,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, sequence)
) WITHOUT ROWID;

CREATE TABLE window_spans (
    agent INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    app TEXT NOT NULL,
    title TEXT NOT NULL,
    pid INTEGER NOT NULL,
    exe TEXT NOT NULL,
    excluded INTEGER NOT NULL,
    username TEXT NOT NULL
);
CREATE INDEX window_spans_agent_start ON window_spans (agent, start_ms);
CREATE INDEX window_spans_start ON window_spans (start_ms);

CREATE TABLE activity_spans (
    agent INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    key_presses INTEGER NOT NULL,
    clicks INTEGER NOT NULL,
    mouse_moves INTEGER NOT NULL,
    scrolls INTEGER NOT NULL,
    username TEXT NOT NULL
);
CREATE INDEX activity_spans_agent_start ON activity_spans (agent, start_ms);
CREATE INDEX activity_spans_start ON activity_spans (start_ms);

CREATE TABLE process_samples (
    agent INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    name TEXT NOT NULL,
    username TEXT NOT NULL,
    cpu_percent REAL NOT NULL,
    rss_bytes INTEGER NOT NULL,
    cpu_seconds REAL NOT NULL,
    interval_ms INTEGER NOT NULL
);
CREATE INDEX process_samples_agent_time ON process_samples (agent, time_ms);
CREATE INDEX process_samples_time ON process_samples (time_ms);

CREATE TABLE system_totals (
    agent INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    cpu_percent REAL NOT NULL,
    mem_total_bytes INTEGER NOT NULL,
    mem_used_bytes INTEGER NOT NULL,
    process_count INTEGER NOT NULL,
    cpu_count INTEGER NOT NULL
);
CREATE INDEX system_totals_agent_time ON system_totals (agent, time_ms);
