"""Summary latency and CSV export throughput of a real collector over months of history.

    python benchmarks/query.py --agents 1000 --days 30
    python benchmarks/query.py --agents 20 --days 3            # a quick run

1. Fill a fresh SQLite store with synthetic history: ``--agents`` agents x
   ``--days`` days x ``--spans`` window spans per agent-day (a ~10 hour working
   day of 5-70 s focus spans over 20 apps with varied titles), plus one
   matching activity span per window span (mostly ACTIVE, some IDLE, with
   input counts). Each agent-day is one batch handed to ``Store.ingest`` with
   its rows (exactly what ``records.extract`` makes of a Batch), so it goes
   through the production write path: group commit, and the rollup ingest
   hook in the same transaction. Agents are enrolled with
   ``collector.enrollment.enroll``.
2. Start ``worklens-collector serve`` on that store (a child process) and
   time over HTTP, ``--repeat`` times each after a warm-up: the summary by app
   for all agents over all days, by day for one user over all days, by
   category for one day, and one agent's timeline for one day (users, agents
   and days vary between repetitions).
3. Export one full day of spans (every agent) as CSV through the HTTP API,
   reading it as a client would, while sampling the collector's RSS (psutil).

``--data-dir DIR`` keeps the filled store and reuses it when it was filled
with the same parameters (to re-time queries without refilling).

Last line: {"summary_p95_ms": ..., "export_rows_per_s": ..., "export_peak_rss_mb": ...,
"stored_spans": ..., ...}; summary_p95_ms is the WORST of the four queries' p95s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import requests
from _collector import start_collector
from _postgres import postgres_bytes, postgres_for

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]

APPS = [("code", "{} - worklens - Visual Studio Code"), ("firefox", "{} — Mozilla Firefox"),
        ("slack", "Slack | #{} | Example Corp"), ("libreoffice", "{}.ods - LibreOffice Calc"),
        ("gnome-terminal", "alice@ws: ~/src/{}"), ("thunderbird", "Inbox - {} - Thunderbird"),
        ("chromium", "{} - Chromium"), ("zoom", "Zoom Meeting - {}"),
        ("evince", "{}.pdf"), ("gimp", "[{}] (imported)-1.0 (RGB color 8-bit gamma)"),
        ("nautilus", "{} - Files"), ("teams", "{} | Microsoft Teams"),
        ("jetbrains-idea", "worklens - {}"), ("obsidian", "{} - Obsidian Vault"),
        ("spotify", "Spotify Premium - {}"), ("keepassxc", "Passwords.kdbx [{}] - KeePassXC"),
        ("inkscape", "{}.svg - Inkscape"), ("dbeaver", "DBeaver - {}"),
        ("postman", "Postman - {}"), ("steam", "Steam - {}")]
WORDS = ["quarterly-report", "ingest.py", "release-planning", "Pull Request #4121",
         "budget 2027", "design review notes", "incident-342", "onboarding", "roadmap",
         "standup", "customer-escalation", "benchmarks", "retention policy", "hiring plan",
         "invoice 2291", "summary.py", "travel", "architecture", "1:1 notes", "OKRs"]
RULES = [{"app": "code|jetbrains|gnome-terminal|dbeaver|postman", "category": "Development",
          "productivity": "productive"},
         {"app": "libreoffice|evince|obsidian|inkscape|gimp", "category": "Office",
          "productivity": "productive"},
         {"app": "slack|teams|zoom|thunderbird", "category": "Communication",
          "productivity": "neutral"},
         {"app": "spotify|steam", "category": "Leisure", "productivity": "unproductive"},
         {"app": "firefox|chromium", "title": "Pull Request|incident|roadmap",
          "category": "Development", "productivity": "productive"}]
PATTERN = 4096            # per-agent pattern of spans; each day reads a rotated slice
IN_FLIGHT = 96            # agent-day batches queued to the store at once (~200k events)


def log(message: str) -> None:
    print(message, flush=True)


# -- 1. fill --------------------------------------------------------------------------------

class AgentPattern:
    """A reproducible per-agent stream of (duration, app, title, state, counts)."""

    def __init__(self, n: int, rng: random.Random):
        self.user = f"user{n:04d}"
        self.start_offset_ms = rng.randint(0, 90) * 60_000        # starts 08:00-09:30 UTC
        titles = [[t.format(w) for w in WORDS] for _a, t in APPS]
        self.rows = []
        for _ in range(PATTERN):
            a = min(int(rng.paretovariate(1.2)) - 1, len(APPS) - 1)   # a few apps dominate
            app = APPS[a][0]
            title = titles[a][rng.randrange(len(WORDS))]
            duration = rng.randint(5_000, 70_000)
            idle = rng.random() < 0.12
            keys = 0 if idle else rng.randint(0, 120)
            counts = (0, 0, 0) if idle else (rng.randint(0, 15), rng.randint(0, 900),
                                             rng.randint(0, 30))
            self.rows.append((duration, app, title, 2 if idle else 1, keys, *counts))

    def day(self, key: int, day_start_ms: int, day_index: int, spans: int
            ) -> tuple[list[tuple], list[tuple]]:
        """Window and activity rows in the column order of records.INSERT_*."""
        first = (day_index * 997) % PATTERN
        t = day_start_ms + 8 * 3_600_000 + self.start_offset_ms
        windows, activity = [], []
        user, rows = self.user, self.rows
        for i in range(spans):
            duration, app, title, state, keys, clicks, moves, scrolls = rows[(first + i) % PATTERN]
            # rows as collector/store/records.py lays them out: not continued, no reason
            windows.append((key, t, duration, app, title, 4000 + i % 50, f"/usr/bin/{app}", 0,
                            user, False))
            activity.append((key, t, duration, state, keys, clicks, moves, scrolls, user,
                             False, 0))
            t += duration
        return windows, activity


async def _enroll_all(store, count: int) -> list:
    from worklens.collector.access.enrollment import enroll
    from worklens.collector.access.tokens import create_token
    from worklens.v1 import agent_pb2

    _info, secret = create_token(store, "enroll", "benchmark")
    agents = []
    for n in range(count):
        host = agent_pb2.HostInfo(hostname=f"ws-{n:04d}", os="linux", os_version="6.1",
                                  user=f"user{n:04d}", agent_version="0.1.0")
        agents.append((await enroll(store, secret, uuid.uuid4().hex, host)).agent)
    return agents


async def _fill(store, args, first_day: date) -> int:
    from worklens.collector.store.records import Records
    from worklens.v1 import agent_pb2

    rng = random.Random(42)
    t0 = time.monotonic()
    agents = await _enroll_all(store, args.agents)
    log(f"enrolled {len(agents)} agents in {time.monotonic() - t0:.1f}s")
    patterns = [AgentPattern(n, rng) for n in range(args.agents)]
    slots = asyncio.Semaphore(IN_FLIGHT)
    pending: set[asyncio.Task] = set()
    done_batches = 0
    total = args.agents * args.days
    t0 = last = time.monotonic()

    async def one(agent, records, seq) -> None:
        nonlocal done_batches
        try:
            header = agent_pb2.Batch(agent_id=agent.agent_id, sequence=seq,
                                     host=agent_pb2.HostInfo(user=patterns_user[agent.key]))
            result = await store.ingest(agent, header, records=records)
            assert not result.duplicate
            done_batches += 1
        finally:
            slots.release()

    patterns_user = {a.key: p.user for a, p in zip(agents, patterns, strict=True)}
    for d in range(args.days):
        day_start = int(datetime(first_day.year, first_day.month, first_day.day,
                                 tzinfo=UTC).timestamp() * 1000) + d * 86_400_000
        for agent, pattern in zip(agents, patterns, strict=True):
            windows, activity = pattern.day(agent.key, day_start, d, args.spans)
            await slots.acquire()
            task = asyncio.create_task(one(agent, Records(windows, activity, [], []), d + 1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            now = time.monotonic()
            if now - last >= 10:
                last = now
                rate = done_batches * args.spans / (now - t0)
                eta = (total - done_batches) * args.spans / rate if rate else 0
                log(f"  filled {done_batches}/{total} agent-days, {rate:,.0f} window spans/s "
                    f"(+ as many activity spans), ETA {eta / 60:.1f} min")
    await asyncio.gather(*pending)
    elapsed = time.monotonic() - t0
    log(f"filled {total} agent-days ({total * args.spans:,} window + as many activity spans) "
        f"in {elapsed:.0f}s: {total * args.spans * 2 / elapsed:,.0f} rows/s")
    return total * args.spans


def fill(db_url: str, args, first_day: date) -> None:
    from worklens.collector.rollup import open_with_rollups, set_rules

    store = open_with_rollups(db_url)
    try:
        if db_url.startswith("postgresql"):
            # the day partitions a collector would have made while those days went by
            from worklens.collector.store import partitions

            first_ms = int(datetime(first_day.year, first_day.month, first_day.day,
                                    tzinfo=UTC).timestamp() * 1000)
            store.write(lambda conn: partitions.ensure(conn, first_ms, None))
        set_rules(store, RULES)
        asyncio.run(_fill(store, args, first_day))
    finally:
        store.close()


# -- 2. the collector -----------------------------------------------------------------------

def make_token(db_url: str, role: str) -> str:
    from worklens.collector.access.tokens import create_token
    from worklens.collector.rollup import open_with_rollups

    store = open_with_rollups(db_url)
    try:
        return create_token(store, role, f"benchmark-{role}")[1]
    finally:
        store.close()


def agent_ids(db_url: str) -> list[str]:
    from worklens.collector.rollup import open_with_rollups

    store = open_with_rollups(db_url)
    try:
        with store.reader() as conn:
            return [r[0] for r in conn.execute("SELECT agent_id FROM agents ORDER BY id")]
    finally:
        store.close()


def stored_spans(db_url: str) -> int:
    from worklens.collector.store import open_store

    store = open_store(db_url)
    try:
        with store.reader() as conn:   # SQLite: the top rowid, far cheaper than count(*)
            sql = ("SELECT max(rowid) FROM window_spans" if db_url.startswith("sqlite")
                   else "SELECT count(*) FROM window_spans")
            return conn.execute(sql).fetchone()[0] or 0
    finally:
        store.close()


# -- 3. timing ------------------------------------------------------------------------------

def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def time_queries(url: str, token: str, args, days: list[date], agents: list[str]
                 ) -> dict[str, dict[str, float]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    rng = random.Random(7)
    span = {"from": days[0].isoformat(), "to": days[-1].isoformat(), "tz": "UTC"}
    queries = {
        "by_app_all_agents_all_days": lambda: ("/api/v1/summary", {**span, "by": "app"}),
        "by_day_one_user_all_days": lambda: ("/api/v1/summary", {
            **span, "by": "day", "user": f"user{rng.randrange(args.agents):04d}"}),
        "by_category_one_day": lambda: ("/api/v1/summary", {
            "from": (d := rng.choice(days).isoformat()), "to": d, "by": "category",
            "tz": "UTC"}),
        "timeline_one_agent_day": lambda: ("/api/v1/timeline", {
            "agent": rng.choice(agents), "date": rng.choice(days).isoformat(), "tz": "UTC"}),
    }
    results = {}
    for name, make in queries.items():
        samples, size = [], 0
        for i in range(args.repeat + 2):
            path, params = make()
            t = time.perf_counter()
            resp = session.get(url + path, params=params, timeout=300)
            elapsed = (time.perf_counter() - t) * 1000
            if resp.status_code != 200:
                raise SystemExit(f"{name}: HTTP {resp.status_code}: {resp.text[:300]}")
            size = len(resp.content)
            if i >= 2:   # two warm-ups
                samples.append(elapsed)
        results[name] = {"p50_ms": round(statistics.median(samples), 1),
                         "p95_ms": round(p95(samples), 1), "max_ms": round(max(samples), 1),
                         "response_kb": round(size / 1024, 1)}
        log(f"  {name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms, "
            f"max {results[name]['max_ms']} ms ({results[name]['response_kb']} KB)")
    return results


def time_export(url: str, token: str, day: date, pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    baseline = proc.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = size = 0
    t = time.perf_counter()
    try:
        with requests.get(f"{url}/api/v1/export/spans.csv", stream=True, timeout=600,
                          headers={"Authorization": f"Bearer {token}"},
                          params={"from": day.isoformat(), "to": day.isoformat(), "tz": "UTC"}
                          ) as resp:
            if resp.status_code != 200:
                raise SystemExit(f"export: HTTP {resp.status_code}: {resp.text[:300]}")
            for chunk in resp.iter_content(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\r\n")
    finally:
        elapsed = time.perf_counter() - t
        stop.set()
        sampler.join()
    rows = lines - 1
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed),
            "mb": round(size / 1e6, 1), "baseline_rss_mb": round(baseline / 2**20, 1),
            "peak_rss_mb": round(peak[0] / 2**20, 1)}


# -- main -----------------------------------------------------------------------------------

def filled_store(data_dir: Path, db_url: str, args) -> tuple[date, int | None]:
    """The store in ``data_dir`` filled for ``args`` (agents, days, spans): reused
    when an earlier run filled it alike, else filled now. Returns the first day
    and the seconds the fill took (None when reused)."""
    marker = data_dir / "benchmark-fill.json"
    wanted = {"agents": args.agents, "days": args.days, "spans": args.spans}
    if marker.exists() and json.loads(marker.read_text())["params"] == wanted:
        log(f"reusing the store filled earlier in {data_dir}")
        return date.fromisoformat(json.loads(marker.read_text())["first_day"]), None
    if db_url.startswith("sqlite") and (data_dir / "worklens.db").exists():
        raise SystemExit(f"{data_dir} holds another store; give an empty --data-dir")
    first_day = datetime.now(UTC).date() - timedelta(days=args.days)
    log(f"filling {data_dir}: {args.agents} agents x {args.days} days x {args.spans} "
        f"spans ({args.agents * args.days * args.spans:,} window spans)")
    started = time.monotonic()
    fill(db_url, args, first_day)
    fill_s = round(time.monotonic() - started)
    marker.write_text(json.dumps({"params": wanted, "first_day": first_day.isoformat()}))
    return first_day, fill_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--spans", type=int, default=1000, help="window spans per agent-day")
    parser.add_argument("--repeat", type=int, default=40, help="timed runs of each query")
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the filled store here")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a throwaway PostgreSQL server (or --pg-url)")
    parser.add_argument("--pg-url", default="", help="use this PostgreSQL database")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="worklens-query-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    with postgres_for(args.store, args.pg_url) as (pg_url, _pids):
        run(args, data_dir, pg_url or f"sqlite:///{data_dir / 'worklens.db'}")


def run(args: argparse.Namespace, data_dir: Path, db_url: str) -> None:
    """Fill (or reuse) the store at ``db_url``, time the queries and the export, print."""
    sqlite = db_url.startswith("sqlite")
    try:
        first_day, fill_s = filled_store(data_dir, db_url, args)
        days = [first_day + timedelta(days=d) for d in range(args.days)]
        db_mb = (sum(p.stat().st_size for p in data_dir.glob("worklens.db*")) if sqlite
                 else postgres_bytes(db_url)) / 1e6
        log(f"store size {db_mb:,.0f} MB")

        collector = start_collector(data_dir, db_url=None if sqlite else db_url)
        proc, url = collector.proc, collector.http_url
        try:
            viewer, exporter = make_token(db_url, "viewer"), make_token(db_url, "exporter")
            agents = agent_ids(db_url)
            log(f"collector at {url} (pid {proc.pid}); timing summaries, {args.repeat} runs each")
            queries = time_queries(url, viewer, args, days, agents)
            export_day = days[len(days) // 2]
            log(f"exporting all spans of {export_day} as CSV")
            export = time_export(url, exporter, export_day, proc.pid)
            log(f"  {export['rows']:,} rows, {export['mb']} MB in {export['seconds']}s: "
                f"{export['rows_per_s']:,} rows/s; collector RSS {export['baseline_rss_mb']} MB "
                f"-> peak {export['peak_rss_mb']} MB")
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        stored = stored_spans(db_url)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({
        "store": "sqlite" if sqlite else "postgresql",
        "summary_p95_ms": max(q["p95_ms"] for q in queries.values()),
        "export_rows_per_s": export["rows_per_s"],
        "export_peak_rss_mb": export["peak_rss_mb"],
        "stored_spans": stored,
        "agents": args.agents, "days": args.days, "spans_per_agent_day": args.spans,
        "fill_s": fill_s, "store_mb": round(db_mb), "queries": queries,
        "export_rows": export["rows"], "export_mb": export["mb"],
    }))


if __name__ == "__main__":
    main()
