"""A fixed synthetic dataset with hand-computed summaries (importable by any test).

Two agents, stored through the real ingest path (``store.ingest``), in three
and two batches so that activity arrives both with and after its windows.
All times below are UTC; the named zone is Europe/Berlin, whose 2026 spring
DST change is at 2026-03-29T01:00Z (local 02:00 CET -> 03:00 CEST; that local
day has 23 hours, [03-28T23:00Z, 03-29T22:00Z)) and autumn change at
2026-10-25T01:00Z (local 03:00 CEST -> 02:00 CET; the hour 02:00 happens
twice and the day has 25 hours).

alice (agent ag-alice) around the spring change::

    W1 code    "main.py"                22:50-23:20  crosses local midnight
    W2 firefox "YouTube - cats"          23:20-23:40  title rule beats app rule
    W3 firefox "Docs"                    23:40-00:10
    W4 slack   "general"                 00:50-01:20  crosses the DST change
    W5 (excluded app)                    01:20-01:30
    W6 code    '=HYPERLINK("http://x")'  01:30-02:00  a hostile title

    A1 ACTIVE 22:50-23:10   A2 IDLE 23:10-23:15 (idle inside W1)
    A3 ACTIVE 23:15-23:50   A4 LOCKED 23:50-00:50 (neither active nor idle)
    A5 ACTIVE 00:50-02:00

    batch 1: W1 W2 W3 A1 A2   batch 2: A3 A4 A5 W4 (late activity for W2, W3)
    batch 3: W5 W6 (windows after their activity)

bob (agent ag-bob) around the autumn change, one batch, 7 dropped events::

    W7 code    "lib.rs"   00:30-01:30 with A6 ACTIVE 00:30-01:30
    W8 firefox "YouTube"  01:30-01:45 with A7 IDLE   01:30-01:45
    processes at 01:00 code 30 s 500 MB, firefox 10 s 900 MB;
              at 01:15 code 20 s 600 MB, firefox  5 s 800 MB

Rules: YouTube titles -> Video/unproductive, then firefox -> Browsing/neutral,
then code -> Development/productive; slack and (excluded) are unclassified.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from worklens.v1 import agent_pb2

ZONE = "Europe/Berlin"
SPRING_DAY = date(2026, 3, 29)
AUTUMN_DAY = date(2026, 10, 25)
HOSTILE_TITLE = '=HYPERLINK("http://x")'
MB = 1_000_000

RULES = [
    {"title": "YouTube", "category": "Video", "productivity": "unproductive"},
    {"app": "^firefox$", "category": "Browsing", "productivity": "neutral"},
    {"app": "^code$", "category": "Development", "productivity": "productive"},
]

ALICE, BOB = "ag-alice", "ag-bob"
ACTIVE, IDLE, LOCKED = (agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
                        agent_pb2.ACTIVITY_STATE_LOCKED)


def ms(text: str) -> int:
    """'2026-03-28T22:50' (UTC) -> epoch ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def window(start: str, end: str, app: str, title: str, excluded: bool = False
           ) -> agent_pb2.WindowSpan:
    s, e = ms(start), ms(end)
    return agent_pb2.WindowSpan(start_ms=s, duration_ms=e - s, app="" if excluded else app,
                                title="" if excluded else title, pid=4242,
                                exe="" if excluded else f"/usr/bin/{app}", excluded=excluded)


def activity(start: str, end: str, state: int, keys: int = 0, clicks: int = 0
             ) -> agent_pb2.ActivitySpan:
    s, e = ms(start), ms(end)
    return agent_pb2.ActivitySpan(start_ms=s, duration_ms=e - s, state=state, key_presses=keys,
                                  clicks=clicks, mouse_moves=3 * clicks, scrolls=clicks // 2)


def process(at: str, name: str, cpu_s: float, rss_mb: int) -> agent_pb2.ProcessSample:
    return agent_pb2.ProcessSample(time_ms=ms(at), pid=hash(name) % 30000, name=name, user="bob",
                                   cpu_percent=cpu_s / 9.0, rss_bytes=rss_mb * MB,
                                   cpu_seconds=cpu_s, interval_ms=900_000)


def _batch(agent_id: str, user: str, sequence: int, **records) -> agent_pb2.Batch:
    return agent_pb2.Batch(agent_id=agent_id, sequence=sequence,
                           host=agent_pb2.HostInfo(hostname=f"{user}-pc", os="linux", user=user,
                                                   agent_version="test"), **records)


def alice_batches() -> list[agent_pb2.Batch]:
    d = "2026-03-28T"
    n = "2026-03-29T"
    return [
        _batch(ALICE, "alice", 1, windows=[
            window(d + "22:50", d + "23:20", "code", "main.py"),
            window(d + "23:20", d + "23:40", "firefox", "YouTube - cats"),
            window(d + "23:40", n + "00:10", "firefox", "Docs"),
        ], activity=[
            activity(d + "22:50", d + "23:10", ACTIVE, keys=100, clicks=10),
            activity(d + "23:10", d + "23:15", IDLE),
        ]),
        _batch(ALICE, "alice", 2, activity=[
            activity(d + "23:15", d + "23:50", ACTIVE, keys=200, clicks=20),
            activity(d + "23:50", n + "00:50", LOCKED),
            activity(n + "00:50", n + "02:00", ACTIVE, keys=700, clicks=70),
        ], windows=[window(n + "00:50", n + "01:20", "slack", "general")]),
        _batch(ALICE, "alice", 3, windows=[
            window(n + "01:20", n + "01:30", "secret-app", "hidden", excluded=True),
            window(n + "01:30", n + "02:00", "code", HOSTILE_TITLE),
        ]),
    ]


def bob_batches() -> list[agent_pb2.Batch]:
    d = "2026-10-25T"
    batch = _batch(BOB, "bob", 1, windows=[
        window(d + "00:30", d + "01:30", "code", "lib.rs"),
        window(d + "01:30", d + "01:45", "firefox", "YouTube"),
    ], activity=[
        activity(d + "00:30", d + "01:30", ACTIVE, keys=600, clicks=60),
        activity(d + "01:30", d + "01:45", IDLE),
    ], processes=[
        process(d + "01:00", "code", 30, 500), process(d + "01:00", "firefox", 10, 900),
        process(d + "01:15", "code", 20, 600), process(d + "01:15", "firefox", 5, 800),
    ])
    batch.dropped_events = 7
    return [batch]


def add_agent(store, agent_id: str, user: str) -> int:
    """An enrolled agent row (enrollment itself is tested by its owner)."""
    def insert(conn):
        return conn.execute(
            "INSERT INTO agents (agent_id, install_id, credential_hash, hostname, username, "
            "enrolled_ms) VALUES (?, ?, 'x', ?, ?, ?) RETURNING id",
            (agent_id, f"install-{agent_id}", f"{user}-pc", user, ms("2026-01-01T00:00"))
        ).fetchone()[0]
    return store.write(insert)


def ingest(store, key: int, batches: list[agent_pb2.Batch]) -> None:
    async def run() -> None:
        for batch in batches:
            result = await store.ingest(key, batch)
            assert not result.duplicate
    asyncio.run(run())


def open_store(where):
    """A store as the collector serves it (the rollup hook on): a store URL (the
    ``store_url`` fixture), or a directory for the SQLite file ``worklens.db`` in it."""
    from worklens.collector.rollup import open_with_rollups
    url = str(where)
    if not url.startswith(("sqlite:", "postgresql:", "postgres:")):
        url = f"sqlite:///{where}/worklens.db"
    return open_with_rollups(url)


def load(store, rules: bool = True) -> dict[str, int]:
    """Rules first (so ingest categorises), then both agents' batches. Returns the
    internal agent keys by public id."""
    from worklens.collector.rollup import set_rules
    if rules:
        set_rules(store, RULES)
    keys = {ALICE: add_agent(store, ALICE, "alice"), BOB: add_agent(store, BOB, "bob")}
    ingest(store, keys[ALICE], alice_batches())
    ingest(store, keys[BOB], bob_batches())
    return keys


MIN = 60.0  # seconds

# Hand-computed answers (see the module docstring for the spans).
# alice, Berlin day 2026-03-29 = [03-28T23:00Z, 03-29T22:00Z):
#   W1 23:00-23:20 active 10 (A1) + 5 (A3), idle 5 (A2)      Development
#   W2 active 20 (A3)                                        Video
#   W3 active 10 (A3 to 23:50), then locked                  Browsing
#   W4 active 30, W5 active 10, W6 active 30 (A5)            (unclassified) x2, Development
ALICE_SPRING_DAY = {"active": 115 * MIN, "idle": 5 * MIN, "spans": 5,
                    "productive": 45 * MIN, "neutral": 10 * MIN, "unproductive": 20 * MIN,
                    "unclassified": 40 * MIN}
# alice, Berlin day 2026-03-28: W1 22:50-23:00 active (A1).
ALICE_DAY_BEFORE = {"active": 10 * MIN, "idle": 0.0, "spans": 1}
# alice by local hour on 2026-03-29 (the 02:00 hour does not exist).
ALICE_SPRING_HOURS = {
    "2026-03-29T00:00:00+01:00": {"active": 45 * MIN, "idle": 5 * MIN, "spans": 2},
    "2026-03-29T01:00:00+01:00": {"active": 10 * MIN, "idle": 0.0, "spans": 1},
    "2026-03-29T03:00:00+02:00": {"active": 60 * MIN, "idle": 0.0, "spans": 2},
}
# alice by category over both days.
ALICE_CATEGORIES = {"Development": 55 * MIN, "(unclassified)": 40 * MIN, "Video": 20 * MIN,
                    "Browsing": 10 * MIN}
# alice by app over both days: (active, idle, spans).
ALICE_APPS = {"code": (55 * MIN, 5 * MIN, 2), "slack": (30 * MIN, 0.0, 1),
              "firefox": (30 * MIN, 0.0, 2), "(excluded)": (10 * MIN, 0.0, 1)}
# alice in Asia/Kolkata (+05:30): everything falls on local 2026-03-29.
ALICE_KOLKATA_HOURS = {
    "2026-03-29T04:00:00+05:30": {"active": 35 * MIN, "idle": 5 * MIN, "spans": 2},
    "2026-03-29T05:00:00+05:30": {"active": 20 * MIN, "idle": 0.0, "spans": 1},
    "2026-03-29T06:00:00+05:30": {"active": 40 * MIN, "idle": 0.0, "spans": 2},
    "2026-03-29T07:00:00+05:30": {"active": 30 * MIN, "idle": 0.0, "spans": 1},
}
# alice activity states (not window based), both Berlin days together.
ALICE_STATES = {"active": 125 * MIN, "idle": 5 * MIN, "locked": 60 * MIN, "asleep": 0.0,
                "key_presses": 1000, "clicks": 100}
# bob, Berlin day 2026-10-25 (25 hours): the 02:00 hour twice.
BOB_AUTUMN_HOURS = {
    "2026-10-25T02:00:00+02:00": {"active": 30 * MIN, "idle": 0.0, "spans": 1},
    "2026-10-25T02:00:00+01:00": {"active": 30 * MIN, "idle": 15 * MIN, "spans": 1},
}
BOB_AUTUMN_DAY = {"active": 60 * MIN, "idle": 15 * MIN, "spans": 2, "productive": 60 * MIN,
                  "unproductive": 0.0}
# Dropped events count on the day the collector RECEIVED the batch (today, in tests).
BOB_DROPPED = 7
BOB_TOP_CPU = [("code", 50.0), ("firefox", 15.0)]
BOB_TOP_MEMORY = [("firefox", 900 * MB), ("code", 600 * MB)]
