"""The PostgreSQL store's own promises, on a real PostgreSQL server (``postgres_url``):
what two collectors sharing one database rely on (a batch stored through one and resent
through the other is a duplicate; concurrent groups add to shared rollup rows without
losing an increment or deadlocking; migrations run once), the day partitions, and the
SQL translation the other layers' statements go through."""

from __future__ import annotations

import asyncio
import threading
import time

import pgserver
import psycopg
import pytest
from certs import make_pki
from worklens.collector.rollup import open_with_rollups
from worklens.collector.store import StoreError, migrate, open_store, partitions
from worklens.collector.store.pgsql import translate
from worklens.v1 import agent_pb2

DAY_MS = 86_400_000


def add_agents(store, count: int) -> list[int]:
    def insert(conn):
        return [conn.execute("INSERT INTO agents (agent_id, credential_hash, enrolled_ms) "
                             "VALUES (?, 'x', 0) RETURNING id", (f"ag-{i}-{time.time_ns()}",)
                             ).fetchone()[0] for i in range(count)]
    return store.write(insert)


def batch(seq: int, start_ms: int, app: str = "firefox", user: str = "alice",
          minutes: int = 3) -> agent_pb2.Batch:
    b = agent_pb2.Batch(sequence=seq, host=agent_pb2.HostInfo(user=user, hostname="ws"))
    for m in range(minutes):
        t = start_ms + m * 60_000
        b.windows.add(start_ms=t, duration_ms=60_000, app=app, title=f"tab {m}", pid=7,
                      exe="/usr/bin/" + app)
        b.activity.add(start_ms=t, duration_ms=60_000,
                       state=agent_pb2.ACTIVITY_STATE_ACTIVE, key_presses=m)
    b.system.add(time_ms=start_ms, cpu_percent=12.5, mem_total_bytes=8 << 30,
                 mem_used_bytes=2 << 30, process_count=200, cpu_count=4)
    return b


def ingest(store, pairs) -> list:
    async def go():
        return await asyncio.gather(*(store.ingest(key, b) for key, b in pairs))
    return asyncio.run(go())


def scalar(url: str, sql: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def two_collectors(postgres_url):
    """Two stores on one database, as two `serve` processes would open it."""
    a = open_with_rollups(postgres_url, serving=True)
    b = open_with_rollups(postgres_url, serving=True)
    yield a, b
    a.close()
    b.close()


def test_a_batch_resent_through_another_collector_is_a_duplicate_stored_once(two_collectors,
                                                                               postgres_url):
    a, b = two_collectors
    (key,) = add_agents(a, 1)
    now = int(time.time() * 1000) // 60_000 * 60_000 - 3_600_000
    first = ingest(a, [(key, batch(1, now))])
    again = ingest(b, [(key, batch(1, now))])
    assert [r.duplicate for r in first + again] == [False, True]
    assert scalar(postgres_url, "SELECT count(*) FROM window_spans") == 3
    assert scalar(postgres_url, "SELECT sum(active_ms) FROM rollup_window") == 3 * 60_000
    assert scalar(postgres_url, "SELECT last_sequence FROM agents") == 1


def test_concurrent_groups_from_two_collectors_lose_no_increment(two_collectors, postgres_url):
    """Both collectors add to the same fleet-wide rollup rows (same bucket, same app) at
    once, many times: every minute must be counted, and neither may deadlock."""
    a, b = two_collectors
    keys = add_agents(a, 40)
    start = int(time.time() * 1000) // 900_000 * 900_000 - 2 * 3_600_000
    rounds = 6
    errors: list[BaseException] = []

    def run(store, mine):
        try:
            for r in range(rounds):
                ingest(store, [(k, batch(r + 1, start + r * 180_000)) for k in mine])
        except BaseException as exc:   # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s, keys[i::2]))
               for i, s in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    expected = len(keys) * rounds * 3 * 60_000
    assert scalar(postgres_url, "SELECT sum(active_ms) FROM rollup_window_all") == expected
    assert scalar(postgres_url, "SELECT sum(active_ms) FROM rollup_window") == expected
    assert scalar(postgres_url, "SELECT sum(unclassified_ms) FROM rollup_agent_day") == expected
    assert scalar(postgres_url, "SELECT sum(active_ms) FROM rollup_app_day") == expected
    assert scalar(postgres_url, "SELECT count(*) FROM batches") == len(keys) * rounds


def test_two_stores_opening_an_empty_database_at_once_migrate_it_once(postgres_url):
    opened, errors = [], []

    def open_one():
        try:
            opened.append(open_store(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for store in opened:
        store.close()
    assert not errors and len(opened) == 3
    assert scalar(postgres_url, "SELECT count(*) FROM schema_migrations") == \
        len(migrate.available(migrate.POSTGRESQL_DIR))   # each version once


def test_rows_land_in_day_partitions_made_ahead(postgres_url):
    with open_store(postgres_url) as store:
        (key,) = add_agents(store, 1)
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        ingest(store, [(key, batch(1, today + 60_000))])
        with store.reader() as conn:
            have = partitions.existing(conn)["window_spans"]
    made = sorted(lo for lo, _hi in have.values())
    assert made[0] <= today - DAY_MS and made[-1] >= today + 6 * DAY_MS
    name = partitions.name("window_spans", today)
    assert scalar(postgres_url, f"SELECT count(*) FROM {name}") == 3
    assert scalar(postgres_url, "SELECT count(*) FROM window_spans_default") == 0


def test_dropping_old_partitions_counts_their_rows(postgres_url):
    with open_store(postgres_url) as store:
        (key,) = add_agents(store, 1)
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        ingest(store, [(key, batch(1, today - DAY_MS + 60_000)),
                       (key, batch(2, today + 60_000))])
        dropped = store.write(lambda conn: partitions.drop_before(conn, today))
    # yesterday's 3 windows + 3 activity spans + 1 system row went with their partitions
    assert dropped == {"window_spans": 3, "activity_spans": 3, "process_blocks": 0,
                       "system_totals": 1}
    assert scalar(postgres_url, "SELECT count(*) FROM window_spans") == 3


def test_text_postgresql_cannot_hold_is_stored_visibly_not_refused(postgres_url):
    with open_with_rollups(postgres_url) as store:
        (key,) = add_agents(store, 1)
        b = batch(1, int(time.time() * 1000) - 3_600_000, minutes=1)
        b.windows[0].title = "bad\x00title"
        b.windows[0].app = "odd\x00app"     # reaches the rollups too
        assert not ingest(store, [(key, b)])[0].duplicate
    assert scalar(postgres_url, "SELECT title FROM window_spans") == "bad\ufffdtitle"
    assert scalar(postgres_url, "SELECT app FROM window_spans") == "odd\ufffdapp"
    assert scalar(postgres_url, "SELECT app FROM rollup_window") == "odd\ufffdapp"


def test_an_unreachable_database_is_one_line_naming_it_without_its_password():
    with pytest.raises(Exception) as error:
        open_store("postgresql://who:secret@127.0.0.1:1/worklens")
    text = str(error.value)
    assert "\n" not in text and "secret" not in text and "127.0.0.1:1/worklens" in text


@pytest.mark.parametrize("sqlite, postgresql", [
    ("SELECT a FROM t WHERE b = ? AND c LIKE 'x%'",
     "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'"),
    ("INSERT OR IGNORE INTO g (a, b) VALUES (?, ?)",
     "INSERT INTO g (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
    ("SELECT rowid, 'rowid ?' FROM t ORDER BY rowid",
     "SELECT id, 'rowid ?' FROM t ORDER BY id"),
    ("SELECT \"overlaps\" FROM rollup_agent", "SELECT \"overlaps\" FROM rollup_agent"),
])
def test_sqlite_spelling_is_translated_outside_quoted_text(sqlite, postgresql):
    assert translate(sqlite) == postgresql


def test_the_password_may_come_from_the_url_pgpassword_or_a_passfile(postgres_server,
                                                                      monkeypatch, tmp_path):
    url = postgres_server.create_database()
    db = pgserver.dbname_of(url)
    with open_store(postgres_server.url_with_password(db)) as store:
        assert store.size_bytes() > 0
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    with open_store(postgres_server.password_url(db)) as store:
        assert store.agent(1) is None
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", str(postgres_server.passfile(tmp_path / "pgpass")))
    with open_store(postgres_server.password_url(db)) as store:
        assert store.agent(1) is None
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.pgpass either
    with pytest.raises(StoreError, match="password") as error:
        open_store(postgres_server.password_url(db))
    assert postgres_server.password not in str(error.value)


def test_tls_to_the_database_is_the_urls_sslmode(postgres_server_factory, tmp_path):
    pki = make_pki(tmp_path)
    server = postgres_server_factory(tls=(pki.server_cert, pki.server_key))
    url = server.create_database()
    with open_store(f"{url}?sslmode=verify-full&sslrootcert={pki.ca_cert}") as store, \
            store.reader() as conn:
        assert conn.raw.pgconn.ssl_in_use
    with pytest.raises(StoreError, match="certificate verify failed"):
        open_store(f"{url}?sslmode=verify-full&sslrootcert={pki.other_ca_cert}")
