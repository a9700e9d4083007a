"""`worklens-collector migrate --to postgresql://...` as an operator runs it: a SQLite
store filled by a real collector (agents over gRPC, tokens, groups, rules, audit) is
moved into a real PostgreSQL; both stores then give the same counts, summaries and
CSV exports, the agents carry on against a collector serving PostgreSQL without
enrolling again, and the SQLite file is exactly as it was. The refusals (a non-empty
target, a collector still serving the source, an old schema, a target that is not
there) leave everything as it was too."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dataset as ds
import grpc
import psycopg
import pytest
from collector_harness import AgentCredentials, CollectorProcess, make_batch, now_ms
from test_progress import _on_a_terminal
from worklens.collector.access.tokens import verify_token
from worklens.collector.reports import csvexport, summary
from worklens.collector.rollup.rules import to_toml, validate
from worklens.collector.store import migrate, open_store, transfer
from worklens.v1 import agent_pb2

DAY_MS = 86_400_000
AGENTS = 4
BATCHES = 4            # per agent, a day apart: records over several day partitions
STEP_MS = 120_000
APPS = (("code", "main.py - VS Code"), ("firefox", "YouTube - cats"), ("firefox", "Docs"),
        ("slack", "general"), ("code", '=HYPERLINK("http://x")'), ("", ""))
STATES = (agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
          agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_PASSIVE,
          agent_pb2.ACTIVITY_STATE_LOCKED, agent_pb2.ACTIVITY_STATE_ACTIVE)


@dataclass
class Source:
    """The SQLite store a collector filled, and what its agents and tokens know."""

    data_dir: Path
    agents: list[AgentCredentials]
    revoked: AgentCredentials
    enroll_secret: str
    viewer_secret: str

    @property
    def db(self) -> Path:
        return self.data_dir / "worklens.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"


def _batch(agent_id: str, sequence: int, start_ms: int, user: str) -> agent_pb2.Batch:
    """Windows of several apps (rules tell them apart, one excluded, one hostile title),
    activity in every state that counts, processes, system totals, dropped events."""
    batch = make_batch(agent_id, sequence, windows=0, activity=0, processes=3, system=2,
                       user=user, start_ms=start_ms, dropped_events=sequence % 2)
    for i, (app, title) in enumerate(APPS):
        batch.windows.add(start_ms=start_ms + i * STEP_MS, duration_ms=STEP_MS, app=app,
                          title=title, pid=100 + i, exe=f"/usr/bin/{app}" if app else "",
                          excluded=not app)
    for i, state in enumerate(STATES):
        passive = state == agent_pb2.ACTIVITY_STATE_PASSIVE
        batch.activity.add(start_ms=start_ms + i * STEP_MS + 30_000, duration_ms=STEP_MS,
                           state=state, key_presses=10 * i, clicks=i, mouse_moves=7 * i,
                           scrolls=i // 2, reason=agent_pb2.PASSIVE_REASON_MEDIA if passive
                           else agent_pb2.PASSIVE_REASON_UNSPECIFIED)
    return batch


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mtime_ns


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Source:
    """A `serve` on SQLite, filled as in real use, then stopped (SIGTERM)."""
    data_dir = tmp_path_factory.mktemp("sqlite-store")
    rules = data_dir.parent / "rules.toml"
    # and one that classifies passive time apart (its own rules columns and rollup rows)
    rules.write_text(to_toml(validate([*ds.RULES, {
        "app": "^slack$", "category": "Chat", "productivity": "neutral",
        "passive": "productive", "passive_category": "Calls"}])))
    proc = CollectorProcess(data_dir)
    proc.start()
    try:
        assert proc.cli("rules", "load", str(rules)).returncode == 0
        enroll = proc.create_token("enroll", "laptops")
        viewer = proc.cli("token", "create", "--role", "viewer", "--name", "eng lead",
                          "--group", "eng", check=True).stdout.split()[0]
        old = proc.cli("token", "create", "--role", "exporter", check=True).stdout.split()[0]
        assert proc.cli("token", "revoke", old.split("_")[1]).returncode == 0
        agents = [proc.enroll_agent(enroll, hostname=f"ws-{i}") for i in range(AGENTS)]
        first = now_ms() - (BATCHES - 1) * DAY_MS - 3 * 3_600_000
        for i, agent in enumerate(agents):
            acks = proc.upload(agent, [_batch(agent.agent_id, seq, first + (seq - 1) * DAY_MS
                                              + i * 60_000, f"user{i % 3}")
                                       for seq in range(1, BATCHES + 1)])
            assert [a.duplicate for a in acks] == [False] * BATCHES
        assert proc.cli("agents", "set-group", agents[0].agent_id, "eng/backend").returncode == 0
        assert proc.cli("agents", "set-group", agents[1].agent_id, "eng", "ops").returncode == 0
        assert proc.cli("agents", "revoke", agents[3].agent_id).returncode == 0
    finally:
        assert proc.terminate() == 0, proc.output
    return Source(data_dir, agents[:3], agents[3], enroll, viewer)


def _migrate(source: Source, to: str) -> subprocess.CompletedProcess:
    return _cli("migrate", "--db", source.url, "--to", to)


@pytest.fixture(scope="module")
def migrated(source, postgres_server):
    """The source moved into a fresh database: (its URL, the command's result, the
    SQLite file's fingerprint before and after)."""
    name = "migrated_" + os.urandom(4).hex()
    postgres_server.create_database(name)
    url = postgres_server.url_with_password(name)    # a plain role, as a deployment has
    before = _fingerprint(source.db)
    done = _migrate(source, url)
    after = _fingerprint(source.db)
    yield url, done, before, after
    postgres_server.drop_database(name)


def _pg_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _sqlite_count(db: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- the move ---------------------------------------------------------------------------------

def test_every_table_arrives_with_the_same_row_count_and_the_sqlite_file_is_untouched(
        source, migrated):
    url, done, before, after = migrated
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert after == before                                  # bytes, size and mtime
    printed = {}
    for line in done.stdout.splitlines():
        match = re.fullmatch(r"(\w+)\s+([\d,]+)\s+([\d,]+)", line)
        if match:
            printed[match[1]] = (int(match[2].replace(",", "")), int(match[3].replace(",", "")))
    assert set(printed) == set(transfer.TABLES)
    for table in transfer.TABLES:
        expected = _sqlite_count(source.db, table)
        assert printed[table] == (expected, expected), table
        assert _pg_count(url, table) == expected, table
    assert _sqlite_count(source.db, "agents") == AGENTS
    assert _sqlite_count(source.db, "window_spans") == AGENTS * BATCHES * len(APPS)
    assert re.search(r"moved [\d,]+ rows from .*worklens\.db to "
                     r"postgresql://worklens_pw:\*\*\*@", done.stdout)   # no password
    assert "note:" not in done.stdout                       # the rollups were complete


def test_records_keep_their_keys_and_land_in_day_partitions(source, migrated):
    url = migrated[0]
    with sqlite3.connect(f"file:{source.db}?mode=ro", uri=True) as lite:
        agents = lite.execute("SELECT * FROM agents ORDER BY id").fetchall()
        spans = lite.execute("SELECT rowid, agent, start_ms, app, title FROM window_spans "
                             "ORDER BY rowid").fetchall()
        audit = lite.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        rules = lite.execute("SELECT * FROM rules ORDER BY position").fetchall()
    assert rules[-1][-2:] == ("productive", "Calls")      # passive class and category
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT * FROM rules ORDER BY position").fetchall() == rules
        assert pg.execute("SELECT * FROM agents ORDER BY id").fetchall() == agents
        assert pg.execute("SELECT id, agent, start_ms, app, title FROM window_spans "
                          "ORDER BY id").fetchall() == spans
        assert pg.execute("SELECT * FROM audit_log ORDER BY id").fetchall() == audit
        assert pg.execute("SELECT count(*) FROM window_spans_default").fetchone()[0] == 0
        days = pg.execute("SELECT count(DISTINCT tableoid) FROM window_spans").fetchone()[0]
    assert days >= BATCHES
    assert {row[-3] for row in audit} >= {"rules.load", "token.create", "token.revoke",
                                          "agent.groups", "agent.revoke"}


@pytest.fixture(scope="module")
def both(source, migrated):
    assert migrated[1].returncode == 0, migrated[1].stderr
    lite, pg = open_store(source.url), open_store(migrated[0])
    yield lite, pg
    lite.close()
    pg.close()


def _days() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    return today - timedelta(days=BATCHES + 1), today


@pytest.mark.parametrize("by", summary.BY)
def test_the_same_summaries_come_out_of_both_stores(both, source, by):
    lite, pg = both
    first, last = _days()
    for tz in ("UTC", ds.ZONE):
        expected = summary.summarize(lite, first, last, by, tz)
        assert expected.total.active_seconds > 0
        assert summary.summarize(pg, first, last, by, tz) == expected
    agent = source.agents[0].agent_id
    assert summary.summarize(pg, first, last, by, "UTC", agent=agent) \
        == summary.summarize(lite, first, last, by, "UTC", agent=agent)


def test_the_same_agents_processes_and_timeline_come_out_of_both_stores(both, source):
    lite, pg = both
    first, last = _days()
    assert summary.list_agents(pg) == summary.list_agents(lite)
    assert summary.top_processes(pg, first, last, "UTC") == \
        summary.top_processes(lite, first, last, "UTC")
    agent = source.agents[1].agent_id
    assert summary.timeline(pg, agent, last, "UTC") == summary.timeline(lite, agent, last, "UTC")


@pytest.mark.parametrize("kind", csvexport.KINDS)
def test_the_same_csv_comes_out_of_both_stores_byte_for_byte(both, kind):
    lite, pg = both
    first, last = _days()
    expected = b"".join(csvexport.export(lite, kind, first, last, "UTC"))
    assert expected.count(b"\r\n") > 2
    assert b"".join(csvexport.export(pg, kind, first, last, "UTC")) \
        == expected


def test_tokens_and_their_groups_still_work(both, source):
    _lite, pg = both
    viewer = verify_token(pg, source.viewer_secret)
    assert viewer is not None and viewer.role == "viewer" and viewer.groups == ("eng",)


# -- agents carry on ----------------------------------------------------------------------------

def test_agents_carry_on_against_a_collector_serving_postgresql(
        source, postgres_url, collector_proc_factory):
    assert _migrate(source, postgres_url).returncode == 0
    proc = collector_proc_factory(["--db", postgres_url])
    proc.start()
    agent = source.agents[2]
    start = now_ms() - 600_000
    acks = proc.upload(agent, [_batch(agent.agent_id, BATCHES + 1, start, "user2"),
                               _batch(agent.agent_id, BATCHES, start, "user2")])
    assert [(a.sequence, a.duplicate) for a in acks] == [(BATCHES + 1, False),
                                                         (BATCHES, True)]
    with pytest.raises(grpc.RpcError) as refused:      # revoked in SQLite: still revoked
        proc.upload(source.revoked, [_batch(source.revoked.agent_id, BATCHES + 1, start, "x")])
    assert refused.value.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.PERMISSION_DENIED)
    newcomer = proc.enroll_agent(source.enroll_secret, hostname="ws-new")   # the old token
    with psycopg.connect(postgres_url) as pg:
        keys = dict(pg.execute("SELECT agent_id, id FROM agents").fetchall())
        stored = pg.execute("SELECT count(*) FROM batches WHERE agent = %s",
                            (keys[agent.agent_id],)).fetchone()[0]
    assert keys[newcomer.agent_id] == AGENTS + 1        # the sequence went past the keys
    assert stored == BATCHES + 1
    assert proc.terminate() == 0, proc.output


# -- refusals ---------------------------------------------------------------------------------

def test_a_target_that_holds_data_is_refused_and_left_alone(source, migrated):
    url = migrated[0]
    counts = {t: _pg_count(url, t) for t in transfer.TABLES}
    before = _fingerprint(source.db)
    done = _migrate(source, url)
    assert done.returncode == 1
    assert re.fullmatch(r"worklens-collector: error: PostgreSQL at postgresql://\S+ already "
                        r"holds data \(4 agents, .*\): migrate moves a store into an empty "
                        r"database only .*\n", done.stderr.splitlines(keepends=True)[-1])
    assert "Traceback" not in done.stderr
    assert {t: _pg_count(url, t) for t in transfer.TABLES} == counts
    assert _fingerprint(source.db) == before


def _small_store(data_dir: Path) -> Path:
    """A SQLite store with one agent and its records, through the store's own ingest."""
    store = ds.open_store(data_dir)
    ds.load(store)
    store.close()
    return data_dir / "worklens.db"


def _target_is_empty(url: str) -> bool:
    return all(_pg_count(url, t) == 0 for t in transfer.TABLES if t not in transfer.PREFILLED)


def test_a_store_a_collector_is_serving_is_refused(tmp_path, postgres_url,
                                                    collector_proc_factory):
    proc = collector_proc_factory(data_dir=tmp_path / "serving")
    proc.start()
    agent = proc.enroll_agent()
    proc.upload(agent, [make_batch(agent.agent_id, 1)])
    done = _cli("migrate", "--data-dir", str(proc.data_dir), "--to", postgres_url)
    assert done.returncode == 1
    pid = proc.proc.pid
    assert done.stderr == (f"worklens-collector: error: a collector (pid {pid}) is serving "
                           f"{proc.db_path}: stop it first, then migrate (what it stored "
                           "meanwhile would be left behind)\n")
    assert proc.terminate() == 0
    assert _cli("migrate", "--data-dir", str(proc.data_dir), "--to", postgres_url
                ).returncode == 0                           # stopped: it moves
    assert _pg_count(postgres_url, "batches") == 1


def test_a_store_at_an_older_schema_is_refused_untouched(tmp_path, postgres_url):
    old = tmp_path / "old-migrations"
    old.mkdir()
    for m in migrate.available()[:-1]:
        (old / m.path.name).write_text(m.path.read_text())
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate.apply(conn, old)
    conn.close()
    before = _fingerprint(db)
    done = _cli("migrate", "--db", f"sqlite:///{db}", "--to", postgres_url)
    latest = migrate.available()[-1].version
    assert done.returncode == 1
    assert done.stderr == (f"worklens-collector: error: {db} is at schema version {latest - 1}"
                           f", this collector's is {latest}: upgrade it first with any store "
                           f"command (e.g. worklens-collector token list --db sqlite:///{db})"
                           ", then migrate\n")
    assert _fingerprint(db) == before


def test_an_unreachable_target_is_one_line(tmp_path, postgres_server):
    db = _small_store(tmp_path)
    before = _fingerprint(db)
    nobody = postgres_server.url("worklens").replace(f":{postgres_server.port}/", ":1/")
    done = _cli("migrate", "--db", f"sqlite:///{db}", "--to", nobody)
    assert done.returncode == 1
    assert done.stderr.startswith("worklens-collector: error: PostgreSQL at postgresql://")
    assert done.stderr.count("\n") == 1 and "Connection refused" in done.stderr
    assert _fingerprint(db) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "postgresql://u@h/db", "--to", "postgresql://u@h/db2"],
     "the store to move must be SQLite (--db sqlite:///PATH); got postgresql://u@h/db"),
    (["--to", "sqlite:///elsewhere.db"],
     "--to: expected a postgresql:// URL, got sqlite:///elsewhere.db"),
])
def test_urls_the_wrong_way_round_are_one_line(tmp_path, args, message):
    done = _cli("migrate", "--data-dir", str(tmp_path), *args)
    assert (done.returncode, done.stderr) == (1, f"worklens-collector: error: {message}\n")


def test_a_terminal_sees_the_copy_progress_and_a_pipe_does_not(tmp_path, postgres_server):
    db = _small_store(tmp_path)
    total = sum(_sqlite_count(db, t) for t in transfer.TABLES)
    url = postgres_server.create_database()
    code, stdout, screen = _on_a_terminal("migrate", "--db", f"sqlite:///{db}", "--to", url)
    assert code == 0, screen
    assert f"copying to PostgreSQL: {total:,} of {total:,} rows (100%)" in screen, screen
    piped = _cli("migrate", "--db", f"sqlite:///{db}", "--to", postgres_server.create_database())
    assert piped.returncode == 0 and "copying to PostgreSQL" not in piped.stderr
    assert "rules_version" in stdout


def test_rows_the_sqlite_rollups_had_not_counted_yet_are_pointed_out(tmp_path, postgres_url):
    store = open_store(f"sqlite:///{tmp_path}/worklens.db")   # no rollup hook: no rollups
    ds.ingest(store, ds.add_agent(store, ds.ALICE, "alice"), ds.alice_batches()[:1])
    store.close()
    done = _cli("migrate", "--data-dir", str(tmp_path), "--to", postgres_url)
    assert done.returncode == 0, done.stderr
    assert f"run worklens-collector rollups rebuild --db {postgres_url}" in done.stdout


def test_a_copy_that_does_not_add_up_commits_nothing(tmp_path, postgres_url):
    db = _small_store(tmp_path)
    with sqlite3.connect(db) as conn:     # a day rollup off from its 15-minute rows
        conn.execute("UPDATE rollup_app_day SET idle_ms = idle_ms + 1000 WHERE day = "
                     "(SELECT min(day) FROM rollup_app_day)")
    done = _cli("migrate", "--db", f"sqlite:///{db}", "--to", postgres_url)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "worklens-collector: error: the day rollups disagree with rollup_window on ")
    assert done.stderr.rstrip().endswith("nothing was committed")
    assert re.search(r"^window_spans\s+[\d,]+\s+[\d,]+$", done.stdout, re.MULTILINE)
    assert _target_is_empty(postgres_url)
