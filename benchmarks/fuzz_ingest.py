"""Mutated batches from many streams against a real collector, with a bystander.

    python benchmarks/fuzz_ingest.py --batches 100000 --streams 8

Starts `worklens-collector serve` on a fresh SQLite store and ``--streams``
fuzzing agents (threads, each enrolled, each with its own channel). Each sends
batches on Upload streams: valid ones, and mutated ones — bit flips and
truncations of the serialized bytes, field swaps and absurd values (sequence 0,
negative or swapped times, huge counts, overlapping spans, another agent's id),
millions-of-empty-records bombs, and corrupted packed streams (a good packed
batch, then one whose DEFLATE bytes were flipped, cut or replayed). A mutated
batch is always the last of its stream, so every batch is either acked
(accepted) or is the one the stream's error refers to (rejected).

Every batch's records carry a marker of that batch (window app and process
name ``fzNNNNNNN.<tag>``, activity key_presses and system process_count = the
tag, a 32-bit hash of its number), so that after the run the store can be searched for rows of
rejected batches: there must be none.

Meanwhile a bystander agent (a process of its own) keeps one stream open and sends a valid batch
every 100 ms; its slowest ack is the figure a hostile fleet must not push
past a second. The collector's RSS (with its writer process) is measured
after a warm-up and again at the end, once it had time to settle.

Last line: {"batches": N, "accepted": ..., "rejected": ..., "rows_from_rejected": 0,
"rss_growth_mb": ..., "worst_bystander_ack_ms": ...}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import queue
import random
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _collector import collector_processes, create_token, start_collector, stop_collector
from worklens.common.packing import EXTENSIONS, Packer
from worklens.v1 import agent_pb2, agent_pb2_grpc

UPLOAD = "/worklens.v1.AgentService/Upload"
HOST = agent_pb2.HostInfo(hostname="fuzz", os="linux", os_version="6.1", user="fuzz",
                          agent_version="0.1.0")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def tag(number: int) -> int:
    """A 32-bit value only this batch number has: a bit flip in one batch's marker does
    not turn it into another batch's (as it would with the plain number)."""
    return int.from_bytes(hashlib.sha256(b"fuzz%d" % number).digest()[:4], "big")


def marker(number: int) -> str:
    return f"fz{number:07d}.{tag(number):08x}"


def valid_batch(agent_id: str, sequence: int, number: int, rng: random.Random
                ) -> agent_pb2.Batch:
    """A batch like an agent's: a few spans and process samples, all marked."""
    start = now_ms() - 600_000 + rng.randrange(0, 60_000)
    batch = agent_pb2.Batch(agent_id=agent_id, sequence=sequence, created_ms=now_ms(),
                            host=HOST)
    for i in range(rng.randrange(1, 4)):
        batch.windows.add(start_ms=start + i * 10_000, duration_ms=10_000, app=marker(number),
                          title=f"title {rng.random()}", pid=4242, exe="/usr/bin/fuzz")
        batch.activity.add(start_ms=start + i * 10_000, duration_ms=10_000,
                           state=agent_pb2.ACTIVITY_STATE_ACTIVE, key_presses=tag(number),
                           clicks=1)
    for i in range(rng.randrange(0, 3)):
        batch.processes.add(time_ms=start + 60_000, pid=100 + i, name=marker(number),
                            user="fuzz", cpu_percent=1.5, rss_bytes=4096 * 100,
                            cpu_seconds=0.9, interval_ms=60_000)
    batch.system.add(time_ms=start + 60_000, cpu_percent=10.0, mem_total_bytes=1 << 34,
                     mem_used_bytes=1 << 33, process_count=tag(number), cpu_count=8)
    return batch


# -- mutations (each returns the bytes of the stream's last message) -------------------------

def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(0, len(data))]


def swap_fields(batch: agent_pb2.Batch, rng: random.Random, other_agent: str) -> bytes:
    choice = rng.randrange(12)
    w = batch.windows[0]
    if choice == 0:
        batch.sequence = 0
    elif choice == 1:
        w.start_ms, w.duration_ms = w.duration_ms, w.start_ms
    elif choice == 2:
        w.duration_ms = -w.duration_ms
    elif choice == 3:
        w.app, w.title = w.title * 200, w.app
    elif choice == 4:
        batch.agent_id = other_agent
    elif choice == 5:
        w.start_ms = 2**63 - 1
    elif choice == 6:
        batch.activity[0].state = 9
    elif choice == 7:
        batch.system[0].cpu_percent = float("nan")
    elif choice == 8:   # overlapping copies of one span (clipped, then stored once)
        for _ in range(50):
            batch.windows.add().CopyFrom(w)
    elif choice == 9:
        batch.processes.add(time_ms=now_ms(), name=marker(0), cpu_seconds=1e300)
    elif choice == 10:
        batch.host.hostname = "h" * 1000
    else:
        batch.dropped_events = 2**64 - 1
    return batch.SerializeToString()


def bomb(agent_id: str, sequence: int, rng: random.Random) -> bytes:
    """A batch of hundreds of thousands of empty records (too many events)."""
    batch = agent_pb2.Batch(agent_id=agent_id, sequence=sequence)
    if rng.random() < 0.5:
        batch.processes.extend([agent_pb2.ProcessSample()] * 200_000)
    else:
        batch.process_snapshots.add().entries.extend([agent_pb2.ProcessEntry()] * 200_000)
    return batch.SerializeToString()


# -- one fuzzing agent ---------------------------------------------------------------------

@dataclass
class Tally:
    accepted: int = 0
    rejected: list[int] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    lost: int = 0     # sent after a rejection in the same stream: never processed


class Fuzzer:
    def __init__(self, index: int, address: str, secret: str, counter, budget: int,
                 other_agent: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.counter, self.budget, self.other_agent = counter, budget, other_agent
        self.channel = grpc.insecure_channel(address,
                                             options=[("grpc.max_send_message_length", 64 << 20)])
        reply = agent_pb2_grpc.AgentServiceStub(self.channel).Enroll(agent_pb2.EnrollRequest(
            secret=secret, install_id=f"fuzz-{index}-{seed}", host=HOST), timeout=60)
        self.agent_id = reply.agent_id
        self.metadata = (("authorization", f"Bearer {reply.credential}"),)
        self.upload = self.channel.stream_stream(UPLOAD, request_serializer=None,
                                                 response_deserializer=agent_pb2.Ack.FromString)
        self.sequence = 0
        self.tally = Tally()

    def next_batch(self) -> tuple[int, agent_pb2.Batch] | None:
        number = next(self.counter)
        if number > self.budget:
            return None
        self.sequence += 1
        return number, valid_batch(self.agent_id, self.sequence, number, self.rng)

    def stream_plan(self) -> list[tuple[int, bytes]] | None:
        """The messages of one stream: valid ones, maybe ending with a mutated one."""
        first = self.next_batch()
        if first is None:
            return None
        number, batch = first
        kind = self.rng.random()
        if kind < 0.15:       # a packed stream, maybe corrupted at its last batch
            return self.packed_plan(number, batch)
        if kind < 0.35:
            return [(number, batch.SerializeToString())]
        data = batch.SerializeToString()
        mutated = (flip_bits(data, self.rng) if kind < 0.6 else
                   truncate(data, self.rng) if kind < 0.75 else
                   bomb(self.agent_id, self.sequence, self.rng) if kind < 0.77 else
                   swap_fields(batch, self.rng, self.other_agent))
        return [(number, mutated)]

    def packed_plan(self, number: int, batch: agent_pb2.Batch) -> list[tuple[int, bytes]]:
        packer = Packer(EXTENSIONS)
        plan = [(number, packer.pack(batch).SerializeToString())]
        for _ in range(self.rng.randrange(1, 4)):
            more = self.next_batch()
            if more is None:
                break
            n, b = more
            plan.append((n, packer.pack(b).SerializeToString()))
        if len(plan) > 1 and self.rng.random() < 0.7:
            n, last = plan[-1]
            message = agent_pb2.Batch.FromString(last)
            how = self.rng.randrange(3)
            if how == 0:
                message.packed = flip_bits(message.packed, self.rng)
            elif how == 1:
                message.packed = truncate(message.packed, self.rng)
            else:   # an earlier batch's bytes again: the stream's context has moved on
                message.packed = agent_pb2.Batch.FromString(plan[0][1]).packed
            plan[-1] = (n, message.SerializeToString())
        return plan

    def run(self) -> None:
        """Send streams until the shared budget of batch numbers is used up."""
        while (plan := self.stream_plan()) is not None:
            self.send(plan)

    def send(self, plan: list[tuple[int, bytes]]) -> None:
        acks = 0
        try:
            for _ack in self.upload(iter([data for _n, data in plan]), metadata=self.metadata,
                                    timeout=120):
                acks += 1
        except grpc.RpcError as exc:
            code = exc.code().name
            self.tally.codes[code] = self.tally.codes.get(code, 0) + 1
            if acks < len(plan):
                self.tally.rejected.append(plan[acks][0])
                self.tally.lost += len(plan) - acks - 1
        self.tally.accepted += acks


# -- the bystander -------------------------------------------------------------------------

def bystander(address: str, secret: str, started, stop, results) -> None:
    """One agent with one stream, a valid batch every 100 ms, each ack's wait recorded.
    Runs in a process of its own: the fuzzing threads' protobuf work must not hold up
    its thread (the GIL) and pass for the collector's slowness."""
    channel = grpc.insecure_channel(address)
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    reply = stub.Enroll(agent_pb2.EnrollRequest(secret=secret, install_id="bystander",
                                                host=HOST), timeout=60)
    metadata = (("authorization", f"Bearer {reply.credential}"),)
    out: queue.Queue = queue.Queue()
    acks = stub.Upload(iter(out.get, None), metadata=metadata)
    started.put(reply.agent_id)
    rng = random.Random(7)
    waits: list[float] = []
    error = None
    sequence = 0
    try:
        while not stop.is_set():
            sequence += 1
            sent = time.monotonic()
            out.put(valid_batch(reply.agent_id, sequence, 0, rng))
            next(acks)
            waits.append(time.monotonic() - sent)
            time.sleep(0.1)
    except grpc.RpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"
    out.put(None)
    results.put((waits, error))
    channel.close()


def rss_mb(pid: int) -> float:
    return sum(p.memory_info().rss for p in collector_processes(pid)) / (1 << 20)


def rows_of(db: Path, numbers: list[int]) -> int:
    """Rows in the store carrying the marker of any of these batches."""
    if not numbers:
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("CREATE TEMP TABLE rejected (n INTEGER, m TEXT)")
    conn.executemany("INSERT INTO rejected VALUES (?, ?)", [(tag(n), marker(n))
                                                            for n in numbers])
    found = sum(conn.execute(sql).fetchone()[0] for sql in (
        "SELECT count(*) FROM window_spans WHERE app IN (SELECT m FROM rejected)",
        "SELECT count(*) FROM activity_spans WHERE key_presses IN (SELECT n FROM rejected)",
        "SELECT count(*) FROM system_totals WHERE process_count IN (SELECT n FROM rejected)",
    ))
    # process samples are stored in blocks: their names sit in the block's name table
    names = {marker(n) for n in numbers}
    from worklens.collector.store import blocks
    for agent, data in conn.execute("SELECT agent, data FROM process_blocks"):
        found += sum(1 for sample in blocks.unpack(agent, data) if sample[3] in names)
    conn.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=8, help="fuzzing agents (threads)")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="worklens-fuzz-"))
    collector = start_collector(data_dir)
    pid = collector.proc.pid
    try:
        secret = create_token(data_dir, "enroll")
        ctx = mp.get_context("spawn")
        started_q, results_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        watcher = ctx.Process(target=bystander, args=(collector.grpc_address, secret,
                                                      started_q, stop, results_q))
        counter = iter(range(1, 10**9))
        lock = threading.Lock()

        def numbers():
            while True:
                with lock:
                    yield next(counter)
        shared = numbers()
        warmup = max(200, args.batches // 50)
        fuzzers = [Fuzzer(i, collector.grpc_address, secret, shared, warmup,
                          "ag-bystander", args.seed * 1000 + i) for i in range(args.streams)]
        log(f"collector at {collector.grpc_address}; warm-up with {warmup} batches")
        warming = [threading.Thread(target=f.run, daemon=True) for f in fuzzers]
        for t in warming:
            t.start()
        for t in warming:
            t.join()
        accepted_in_warmup = sum(f.tally.accepted for f in fuzzers)
        time.sleep(3)
        baseline = rss_mb(pid)
        log(f"collector after warm-up: {baseline:.0f} MB; fuzzing {args.batches} batches "
            f"from {args.streams} agents, bystander streaming")
        watcher.start()
        bystander_id = started_q.get(timeout=120)
        budget = warmup + args.batches
        for f in fuzzers:
            f.budget, f.other_agent = budget, bystander_id
        runners = [threading.Thread(target=f.run, daemon=True) for f in fuzzers]
        started = time.monotonic()
        for r in runners:
            r.start()
        while any(r.is_alive() for r in runners):
            time.sleep(10)
            done = sum(f.tally.accepted + len(f.tally.rejected) + f.tally.lost
                       for f in fuzzers)
            log(f"  {time.monotonic() - started:5.0f}s: {done} batches, collector "
                f"{rss_mb(pid):.0f} MB")
        elapsed = time.monotonic() - started
        stop.set()
        waits, bystander_error = results_q.get(timeout=120)
        watcher.join(30)
        time.sleep(3)
        final = rss_mb(pid)
        # the warm-up's batches are part of neither figure
        rejected = [n for f in fuzzers for n in f.tally.rejected if n > warmup]
        accepted = sum(f.tally.accepted for f in fuzzers) - accepted_in_warmup
        for f in fuzzers:
            f.channel.close()
        codes: dict[str, int] = {}
        for f in fuzzers:
            for code, count in f.tally.codes.items():
                codes[code] = codes.get(code, 0) + count
        log(f"status codes: {codes}; bystander: {len(waits)} acks"
            + (f", ended with {bystander_error}" if bystander_error else ""))
        all_rejected = [n for f in fuzzers for n in f.tally.rejected]
        from_rejected = rows_of(data_dir / "worklens.db", all_rejected)
        traceback = any("Traceback" in line for line in collector.lines)
    finally:
        stop_collector(collector.proc, data_dir)
    figures = {
        "batches": args.batches,
        "accepted": accepted,
        "rejected": len(rejected),
        "rows_from_rejected": from_rejected,
        "rss_growth_mb": round(final - baseline, 1),
        "worst_bystander_ack_ms": round(max(waits, default=0) * 1000, 1),
        "p99_bystander_ack_ms": round(sorted(waits)[int(len(waits) * 0.99)] * 1000, 1)
        if waits else None,
        "bystander_acks": len(waits),
        "bystander_error": bystander_error,
        "traceback_in_log": traceback,
        "seconds": round(elapsed, 1),
        "streams": args.streams,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
