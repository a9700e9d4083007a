"""Ingest throughput and ack latency of a real collector.

    python benchmarks/ingest.py --agents 200 --duration 20 --store sqlite

Starts `worklens-collector serve` on a fresh SQLite store (a child process),
creates an enrollment secret with `worklens-collector token create`, then runs
the simulated agents from ``--workers`` separate processes. Each agent enrolls
(its own credential), opens its own channel and one Upload stream, and keeps
``--in-flight`` batches outstanding. A batch is ~``--batch-events`` records
(window spans with real-looking titles, activity spans with input counts,
process samples, system totals) in one of two mixes:

* ``agent`` (default): what a real agent sends — per minute of a machine's
  time about one window span, one activity span, the top 10 processes and the
  system totals (the mix benchmarks/wire_bytes.py gets from the real agent
  pipeline; ~80 % of the events are process rows). A 250-event batch is the
  backlog of ~19 minutes.
* ``spans``: 40 % window spans and 40 % activity spans, the rollups' worst
  case (windows pair with activity); a batch covers ~77 minutes.

Load model (changed; ``--repeat-ranges`` keeps the old one for comparison):
like a real agent, each batch covers the stretch of time AFTER the previous
one (agents' histories start 90 days back and move forward; see BatchStream).
The old model re-sent the same 8 pre-serialised time ranges over and over, so
each batch's spans met every earlier copy of their time range in the rollup
hook (which pairs new windows with stored activity and vice versa) — work that
grew with the run's length and that no real agent causes. The forward model
costs ~70 us of CPU per batch to move the times on; each agent makes its first
``--prepack`` batch bodies before the run (serialising, like packing, is the
agents' work, done on their machines, not the collector's), and more as it
sends them if the run outlasts those (clients_cpu_s counts the clients' CPU from
the start of the run; clients share this machine with the collector; enrolling
and preparing before it is clients_setup_cpu_s).

``--packed``: batches travel as real agents send them (deflate-stream-v2:
process snapshots, times and memory as differences, one DEFLATE context per
stream), so the collector also inflates and expands them.

Two figures, both honest, neither the other:

* default (closed loop): every agent sends its next batch as soon as the one
  before is acknowledged (``--in-flight 1``), so the collector always has a
  batch from every agent to work on. This measures the highest throughput, and
  the ack latency of a collector that is never short of work: by Little's law
  the mean is the events in flight over the throughput (200 agents x 250 events
  = 50,000 events, i.e. 167 ms at 300,000 events/s), and the p99 is what the
  collector adds on top (stalls, uneven groups). More batches in flight per agent
  (a real agent allows 8) add no throughput here, only queue: ``--in-flight 2``
  doubles the events in flight and so the latency, by construction.
* ``--rate R`` (open loop): agents together offer R events/s (each one batch
  per interval, still at most ``--in-flight`` outstanding), like a fleet whose
  agents ship on their own schedule. This measures ack latency below
  saturation: what an agent sees when the collector keeps up.

Ack latency is measured per batch from just before it is written to the
stream until its ack arrives (acks are sent only after the group commit).
Only acks inside the measured window (after ``--warmup``) count.

Last line: {"events_per_s": ..., "p50_ack_ms": ..., "p99_ack_ms": ..., "agents": N, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _collector import (
    WITHOUT_ROLLUPS,
    Collector,
    collector_processes,
    create_token,
    start_collector,
    stop_collector,
)
from _postgres import postgres_bytes, postgres_for

APPS = [("code", "/usr/bin/code", "{} - worklens - Visual Studio Code"),
        ("firefox", "/usr/lib/firefox/firefox", "{} — Mozilla Firefox"),
        ("slack", "/usr/bin/slack", "Slack | #{} | Example Corp"),
        ("libreoffice", "/usr/bin/soffice", "{}.ods - LibreOffice Calc"),
        ("gnome-terminal", "/usr/bin/gnome-terminal", "alice@ws: ~/src/{}"),
        ("thunderbird", "/usr/bin/thunderbird", "Inbox - {} - Mozilla Thunderbird")]
WORDS = ["quarterly-report", "ingest.py", "release-planning", "Pull Request #4121",
         "budget 2027", "design review notes", "incident-342", "onboarding"]


def log(message: str) -> None:
    print(message, flush=True)


# -- the collector -------------------------------------------------------------------------

def start(data_dir: Path, without_rollups: bool, db_url: str | None = None) -> Collector:
    return start_collector(data_dir, prelude=WITHOUT_ROLLUPS if without_rollups else "",
                           db_url=db_url)


# -- the simulated agents (run in worker processes) ----------------------------------------

# Agents' history starts this far back and moves forward batch by batch.
HISTORY_MS = 90 * 86_400_000
TEMPLATES = 8   # distinct batches per agent, re-used with their times moved on


# What one minute of a real agent's time holds (see benchmarks/wire_bytes.py, which
# drives the real agent pipeline: focus changes every 20-90 s, an activity span
# per state change, the top 10 processes and the system totals every 60 s).
AGENT_EVENTS_PER_MINUTE = 1.1 + 1.0 + 10 + 1
MIXES = ("agent", "spans")


def stride(batch_events: int, mix: str) -> int:
    """ms between the starts of two successive batches (their spans never overlap)."""
    if mix == "agent":
        return minutes_per_batch(batch_events) * 60_000
    return max(batch_events * 2 // 5, 1) * 91_000


def minutes_per_batch(batch_events: int) -> int:
    return max(1, round(batch_events / AGENT_EVENTS_PER_MINUTE))


def _new_batch(agent_id: str, now: int):
    from worklens.v1 import agent_pb2

    return agent_pb2.Batch(agent_id=agent_id, created_ms=now, host=agent_pb2.HostInfo(
        hostname=f"ws-{agent_id[-4:]}", os="linux", os_version="6.1.0-18-amd64",
        user=f"user{agent_id[-3:]}", agent_version="0.1.0"))


def _window(batch, rng: random.Random, start: int, duration: int) -> None:
    app, exe, title = rng.choice(APPS)
    batch.windows.add(start_ms=start, duration_ms=duration, app=app, exe=exe,
                      title=title.format(rng.choice(WORDS)), pid=rng.randint(300, 60000))


def _activity(batch, rng: random.Random, start: int, duration: int) -> None:
    batch.activity.add(start_ms=start, duration_ms=duration, state=rng.choice((1, 1, 1, 2)),
                       key_presses=rng.randint(0, 400), clicks=rng.randint(0, 40),
                       mouse_moves=rng.randint(0, 3000), scrolls=rng.randint(0, 90))


def _process(batch, rng: random.Random, time_ms: int, pid: int) -> None:
    batch.processes.add(time_ms=time_ms, pid=pid,
                        name=rng.choice(("firefox", "code", "slack", "Xorg", "python3")),
                        user="alice", cpu_percent=rng.random() * 100,
                        rss_bytes=rng.randint(10 << 20, 2 << 30),
                        cpu_seconds=rng.random() * 60, interval_ms=60_000)


def _system(batch, rng: random.Random, time_ms: int) -> None:
    batch.system.add(time_ms=time_ms, cpu_percent=rng.random() * 100,
                     mem_total_bytes=16 << 30, mem_used_bytes=rng.randint(2 << 30, 15 << 30),
                     process_count=rng.randint(200, 400), cpu_count=8)


def _tile(start: int, end: int, low: int, high: int, rng: random.Random):
    """(start, duration) of spans following each other over [start, end)."""
    t = start
    while t < end:
        duration = min(rng.randint(low, high), end - t)
        yield t, duration
        t += duration


def _agent_mix(batch, rng: random.Random, start: int, batch_events: int) -> None:
    """A real agent's backlog: per minute ~1 window span, ~1 activity span, the top
    10 processes and the system totals (~80 % of the events are process rows)."""
    minutes = minutes_per_batch(batch_events)
    end = start + minutes * 60_000
    for t, duration in _tile(start, end, 20_000, 90_000, rng):
        _window(batch, rng, t, duration)
    for t, duration in _tile(start, end, 15_000, 105_000, rng):
        _activity(batch, rng, t, duration)
    for minute in range(minutes):
        at = start + minute * 60_000 + 30_000
        for i in range(10):
            _process(batch, rng, at, 1000 + i)
        _system(batch, rng, at)


def _spans_mix(batch, rng: random.Random, start: int, batch_events: int) -> None:
    """Span-heavy batches (40 % windows, 40 % activity): the rollups' worst case."""
    windows = activity = batch_events * 2 // 5
    system = max(1, batch_events // 100)
    t = start
    for _ in range(windows):
        duration = rng.randint(2_000, 90_000)
        _window(batch, rng, t, duration)
        t += duration  # one focused window at a time: spans follow each other
    t = start
    for _ in range(activity):
        duration = rng.randint(1_000, 60_000)
        _activity(batch, rng, t, duration)
        t += duration
    for i in range(batch_events - windows - activity - system):
        _process(batch, rng, start + (i // 10) * 1000, 1000 + i % 10)
    for i in range(system):
        _system(batch, rng, start + i * 1000)


def batch_templates(agent_id: str, batch_events: int, count: int, rng: random.Random,
                    origin_ms: int, mix: str) -> list:
    """``count`` batches covering successive stretches of time from ``origin_ms``."""
    fill = _agent_mix if mix == "agent" else _spans_mix
    now = int(time.time() * 1000)
    batches = []
    for n in range(count):
        batch = _new_batch(agent_id, now)
        fill(batch, rng, origin_ms + n * stride(batch_events, mix), batch_events)
        batches.append(batch)
    return batches


def events_in(batch) -> int:
    return len(batch.windows) + len(batch.activity) + len(batch.processes) + len(batch.system)


def _shift(batch, delta_ms: int) -> None:
    for w in batch.windows:
        w.start_ms += delta_ms
    for a in batch.activity:
        a.start_ms += delta_ms
    for p in batch.processes:
        p.time_ms += delta_ms
    for s in batch.system:
        s.time_ms += delta_ms


class BatchStream:
    """One agent's serialized batches, ``seq`` = 1, 2, ...

    Forward (default): like a real agent's, each batch covers the stretch of time
    after the previous one — the templates are re-used with their times moved on by
    a whole cycle (~70 us of client CPU per batch). Should a run outlast the history,
    times start over (ranges repeat). ``repeat_ranges``: the old load model — the same
    TEMPLATES time ranges re-sent over and over (cheapest for the clients, but every
    re-sent window meets all earlier copies of its time range in the rollups, which a
    real agent never makes the collector do)."""

    def __init__(self, agent_id: str, batch_events: int, rng: random.Random,
                 repeat_ranges: bool, mix: str, packed: bool = False) -> None:
        now = int(time.time() * 1000)
        self.cycle_ms = stride(batch_events, mix) * TEMPLATES
        origin = now - (self.cycle_ms if repeat_ranges
                        else max(HISTORY_MS, self.cycle_ms + 3_600_000))
        self.templates = batch_templates(agent_id, batch_events, TEMPLATES, rng, origin, mix)
        self.counts = [events_in(b) for b in self.templates]
        self.cycles = max(1, (now - 3_600_000 - origin) // self.cycle_ms)   # stay in the past
        self.repeat = repeat_ranges
        self.fixed = [b.SerializeToString() for b in self.templates] if repeat_ranges else None
        self.packer = None
        self.ready: list[bytes] = []   # bodies made before the run, seq 1, 2, ...
        if packed:
            from worklens.common.packing import EXTENSIONS, Packer

            self.packer = Packer(EXTENSIONS)   # as agents pack for this collector

    def prepack(self, count: int) -> None:
        """Make the first ``count`` bodies now (in order: times move on, and a packed
        stream's DEFLATE context and differences carry from batch to batch), so that
        this agent work — on the agents' machines — does not take the collector's CPU
        during the run."""
        make = self._next_packed if self.packer is not None else self._plain
        while len(self.ready) < count and (self.packer is not None or not self.repeat):
            self.ready.append(make(len(self.ready) + 1))

    def events(self, seq: int) -> int:
        return self.counts[(seq - 1) % TEMPLATES]

    def body(self, seq: int) -> bytes:
        if seq <= len(self.ready):
            return self.ready[seq - 1]
        return self._next_packed(seq) if self.packer is not None else self._plain(seq)

    def _next_packed(self, seq: int) -> bytes:
        from worklens.v1 import agent_pb2

        batch = agent_pb2.Batch()
        batch.ParseFromString(self._plain(seq))
        return self.packer.pack(batch).SerializeToString()

    def _plain(self, seq: int) -> bytes:
        index, cycle = (seq - 1) % TEMPLATES, (seq - 1) // TEMPLATES
        if self.repeat:
            return b"\x10" + varint(seq) + self.fixed[index]
        batch = self.templates[index]
        if cycle:
            # back to the start after the last cycle of the history, else one cycle on
            _shift(batch, -self.cycle_ms * (self.cycles - 1) if cycle % self.cycles == 0
                   else self.cycle_ms)
        batch.sequence = seq
        return batch.SerializeToString()


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def run_agent(index: int, addresses: list[str], secret: str, opts: dict,
                    prepared: asyncio.Queue,
                    clock: asyncio.Future, stats: dict) -> None:
    import grpc
    from worklens.v1 import agent_pb2

    rng = random.Random(index)
    # several collectors: the agents spread over them, as behind a connection balancer
    async with grpc.aio.insecure_channel(addresses[index % len(addresses)]) as channel:
        enroll = channel.unary_unary("/worklens.v1.AgentService/Enroll",
                                     request_serializer=agent_pb2.EnrollRequest.SerializeToString,
                                     response_deserializer=agent_pb2.EnrollResponse.FromString)
        reply = await enroll(agent_pb2.EnrollRequest(
            secret=secret, install_id=f"bench-{index}-{os.getpid()}-{time.time()}",
            host=agent_pb2.HostInfo(hostname=f"ws-{index}", os="linux")), timeout=120)
        stream = BatchStream(reply.agent_id, opts["batch_events"], rng, opts["repeat_ranges"],
                             opts["mix"], opts["packed"])
        stream.prepack(opts["prepack"])
        upload = channel.stream_stream("/worklens.v1.AgentService/Upload",
                                       request_serializer=None,
                                       response_deserializer=agent_pb2.Ack.FromString)
        # Connected before the run, as agents are (one long-lived stream each): gRPC's
        # server accepts new calls one per turn of its event loop, so 200 streams
        # opened at the start of a loaded run starved some agents for ~3 s.
        call = upload(metadata=(("authorization", f"Bearer {reply.credential}"),))
        await call.initial_metadata()   # sent by the collector once it accepted the stream
        prepared.put_nowait(index)
        stats["prepared"].add(index)
        start_at, stop_at = await clock   # once every agent of every process is prepared
        await asyncio.sleep(max(0.0, start_at - time.time()))
        slots = asyncio.Semaphore(opts["in_flight"])
        sent: dict[int, float] = {}

        interval = opts["interval_s"]
        next_at = start_at + rng.random() * interval  # spread agents over the interval

        async def send() -> None:
            nonlocal next_at
            seq = 0
            while time.time() < stop_at:
                if interval:  # open loop: one batch per interval, like a real fleet
                    await asyncio.sleep(max(0.0, next_at - time.time()))
                    next_at += interval
                await slots.acquire()
                seq += 1
                sent[seq] = time.perf_counter()
                await call.write(stream.body(seq))
            await call.done_writing()

        async def receive() -> None:
            async for ack in call:
                now = time.perf_counter()
                slots.release()
                wall = time.time()
                if start_at + opts["warmup"] <= wall <= stop_at:
                    stats["latencies"].append(now - sent.pop(ack.sequence))
                    stats["events"] += stream.events(ack.sequence)
                else:
                    sent.pop(ack.sequence, None)

        await asyncio.gather(send(), receive())


def worker(indices: list[int], addresses: list[str], secret: str, opts: dict, ready: mp.Queue,
           start: mp.Queue, results: mp.Queue) -> None:
    """Run ``indices``' agents: enroll, prepare and connect them all (each one's Upload
    stream accepted), say so on ``ready``, then
    run from the (start, stop) times that come on ``start`` — a preparation that
    outlasted a start time fixed in advance would hold up the acks of the agents
    already running in this process, and be measured as ack latency."""
    stats = {"latencies": [], "events": 0, "errors": 0, "prepared": set()}

    async def agent(index: int, prepared: asyncio.Queue, clock: asyncio.Future) -> None:
        try:
            await run_agent(index, addresses, secret, opts, prepared, clock, stats)
        finally:
            if index not in stats["prepared"]:   # failed before: do not hold up the start
                prepared.put_nowait(index)

    async def clock_from_main(prepared: asyncio.Queue, clock: asyncio.Future) -> None:
        for _ in indices:
            await prepared.get()
        stats["setup_cpu_s"] = time.process_time()   # enrolling, templates, pre-packing
        ready.put(len(indices))
        clock.set_result(await asyncio.to_thread(start.get))

    async def main() -> None:
        prepared: asyncio.Queue = asyncio.Queue()
        clock = asyncio.get_running_loop().create_future()
        outcomes = await asyncio.gather(clock_from_main(prepared, clock), *(
            agent(i, prepared, clock) for i in indices), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                stats["errors"] += 1
                print(f"agent error: {outcome!r}", file=sys.stderr, flush=True)

    asyncio.run(main())
    stats["cpu_s"] = time.process_time() - stats.get("setup_cpu_s", 0.0)
    del stats["prepared"]
    results.put(stats)


# -- main -------------------------------------------------------------------------------

PREPARE_TIMEOUT_S = 600.0

def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the running collector and its writer process."""
    import psutil

    procs = collector_processes(pid)
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total if procs else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(args: argparse.Namespace, data_dir: Path, collectors: list[Collector],
        db_url: str | None) -> list[dict]:
    """Enroll, prepare and run the agents against ``collectors``; each worker's stats."""
    addresses = [c.grpc_address for c in collectors]
    secret = create_token(data_dir / "c0", "enroll", db_url=db_url)
    log(f"collectors at {', '.join(addresses)}, store {db_url or data_dir / 'c0'}; "
        f"{args.agents} agents in {args.workers} processes, {args.batch_events} events per "
        f"batch, {args.in_flight} in flight each")
    opts = {"batch_events": args.batch_events, "in_flight": args.in_flight,
            "repeat_ranges": args.repeat_ranges, "mix": args.mix,
            "warmup": args.warmup, "packed": args.packed, "prepack": args.prepack,
            "interval_s": args.agents * args.batch_events / args.rate if args.rate else 0}
    ctx = mp.get_context("spawn")
    ready, start_q, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    groups = [list(range(w, args.agents, args.workers)) for w in range(args.workers)]
    workers = [ctx.Process(target=worker, args=(g, addresses, secret, opts, ready, start_q,
                                                results)) for g in groups if g]
    for w in workers:
        w.start()
    prepared = sum(ready.get(timeout=PREPARE_TIMEOUT_S) for _ in workers)
    start_at = time.time() + 1.0
    stop_at = start_at + args.warmup + args.duration
    log(f"{prepared} agents enrolled, prepared and connected; running")
    for _ in workers:
        start_q.put((start_at, stop_at))
    while time.time() < stop_at:
        time.sleep(min(5.0, max(0.1, stop_at - time.time())))
        phase = "warming up" if time.time() < start_at + args.warmup else "measuring"
        if time.time() >= start_at:
            log(f"  {phase}: {time.time() - start_at:5.1f}s elapsed")
    stats = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(60)
    return stats


def cpu_of(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def store_bytes(data_dir: Path, db_url: str | None) -> int:
    if db_url is None:
        return sum(p.stat().st_size for p in (data_dir / "c0").glob("worklens.db*"))
    return postgres_bytes(db_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not measured")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a throwaway PostgreSQL server started for the run "
                             "(or --pg-url)")
    parser.add_argument("--collectors", type=int, default=1,
                        help="collector processes sharing the store (postgresql only); the "
                             "agents spread over them")
    parser.add_argument("--pg-url", default="",
                        help="use this (empty) PostgreSQL database instead of starting one")
    parser.add_argument("--workers", type=int, default=3, help="client processes")
    parser.add_argument("--batch-events", type=int, default=250)
    parser.add_argument("--mix", choices=MIXES, default="agent",
                        help="what batches hold: 'agent' = what a real agent sends per "
                             "minute (1 window, 1 activity span, top 10 processes, system "
                             "totals); 'spans' = 40%% windows + 40%% activity, the rollups' "
                             "worst case")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="unacknowledged batches per agent (default 1: the next batch "
                             "goes out when the previous one is acknowledged)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in events/s over all agents (open loop); default 0 "
                             "= every agent sends as fast as acks allow (saturation)")
    parser.add_argument("--repeat-ranges", action="store_true",
                        help="the old load model: each agent re-sends the same 8 time ranges "
                             "(see BatchStream); default: every batch covers new time")
    parser.add_argument("--packed", action="store_true",
                        help="send batches as real agents do: packed (deflate-stream-v2, "
                             "process snapshots, differences), made before the run")
    parser.add_argument("--prepack", type=int, default=200,
                        help="batch bodies each agent makes (serialises, or packs with "
                             "--packed) before the run; more are made as they are sent, on "
                             "the clients' CPU")
    parser.add_argument("--without-rollups", action="store_true",
                        help="measure the ingest path alone: the collector runs with the "
                             "summaries' rollup ingest hook disabled")
    args = parser.parse_args()
    if args.collectors > 1 and args.store == "sqlite":
        parser.error("--collectors > 1 needs --store postgresql (SQLite has one writer)")

    data_dir = Path(tempfile.mkdtemp(prefix="worklens-bench-"))
    with postgres_for(args.store, args.pg_url) as (db_url, database_pids):
        collectors = [start(data_dir / f"c{i}", args.without_rollups, db_url)
                      for i in range(args.collectors)]
        try:
            stats = run(args, data_dir, collectors, db_url)
            server_cpu_s = sum(process_cpu_seconds(c.proc.pid) for c in collectors)
            database_cpu_s = sum(cpu_of(pid) for pid in database_pids())
            db_bytes = store_bytes(data_dir, db_url)
        finally:
            for c in collectors:
                stop_collector(c.proc, data_dir / "unused")
            shutil.rmtree(data_dir, ignore_errors=True)
    latencies = [x for s in stats for x in s["latencies"]]
    events = sum(s["events"] for s in stats)
    errors = sum(s["errors"] for s in stats)
    figures = {
        "events_per_s": round(events / args.duration),
        "p50_ack_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ack_ms": round(percentile(latencies, 99) * 1000, 1),
        "agents": args.agents,
        "batches": len(latencies),
        "batch_events": args.batch_events,
        "mix": args.mix,
        "packed": args.packed,
        "in_flight": args.in_flight,
        "offered_events_per_s": args.rate or None,
        "agent_errors": errors,
        "db_mb": round(db_bytes / 1e6, 1),
        "store": args.store,
        "collectors": args.collectors,
        "database_cpu_s": round(database_cpu_s, 1) if database_cpu_s else None,
        "cpus": os.cpu_count(),
        "rollups": not args.without_rollups,
        "time_ranges": "repeated" if args.repeat_ranges else "forward",
        "collector_cpu_s": round(server_cpu_s, 1),
        "clients_cpu_s": round(sum(s["cpu_s"] for s in stats), 1),
        "clients_setup_cpu_s": round(sum(s.get("setup_cpu_s", 0.0) for s in stats), 1),
    }
    log(f"acked {events} events in {len(latencies)} batches over {args.duration:g}s")
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
