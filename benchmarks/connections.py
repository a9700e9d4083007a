"""Thousands of agents connected to one collector, each shipping like a real one.

    python benchmarks/connections.py --agents 2000 --duration 60

Starts `worklens-collector serve` on a fresh SQLite store (a child process) and
runs ``--agents`` simulated agents from ``--workers`` client processes. Each
agent enrolls (its own credential), opens its OWN channel (its own TCP
connection, as every real agent has) and one long-lived Upload stream, then
sends one batch every ``--interval`` seconds (an agent's flush interval; the
agents' phases are spread over it): one minute of a machine's time in the shape
an agent sends it (a window span, an activity span, the top 10 processes,
system totals: ~13 events; see ingest.py's ``agent`` mix), packed as agents
pack it (worklens.common.packing: one DEFLATE context and difference state per
stream, which the collector keeps per stream too) unless ``--plain``.

Once every agent is connected, it measures for ``--duration`` seconds: the
collector's resident memory, open file descriptors and threads, its CPU use,
and the ack latency of every batch (acks come after the durable commit).

Last line: {"agents_connected": ..., "collector_rss_mb": ..., "cpu_percent": ...,
"p99_ack_ms": ..., ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _collector import collector_processes, create_token, start_collector, stop_collector
from ingest import BatchStream, log, percentile, process_cpu_seconds
from worklens.collector.server import raise_open_files_limit
from worklens.common.packing import EXTENSIONS, Packer
from worklens.v1 import agent_pb2

ONE_MINUTE_OF_EVENTS = 13   # ingest.py's agent mix: one minute of a machine's time


async def run_agent(index: int, address: str, secret: str, opts: dict, stats: dict,
                    connected: list[int]) -> None:
    import grpc

    rng = random.Random(index)
    # like the agent's channel: its own connection, not one shared by all channels
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        enroll = channel.unary_unary("/worklens.v1.AgentService/Enroll",
                                     request_serializer=agent_pb2.EnrollRequest.SerializeToString,
                                     response_deserializer=agent_pb2.EnrollResponse.FromString)
        async with opts["enroll_slots"]:
            reply = await enroll(agent_pb2.EnrollRequest(
                secret=secret, install_id=f"conn-{index}-{os.getpid()}-{time.time()}",
                host=agent_pb2.HostInfo(hostname=f"ws-{index}", os="linux")), timeout=300)
        stream = BatchStream(reply.agent_id, ONE_MINUTE_OF_EVENTS, rng, False, "agent")
        # what agents send once Hello says so
        packer = None if opts["plain"] else Packer(EXTENSIONS)

        def body(seq: int) -> bytes:
            if packer is None:
                return stream.body(seq)
            return packer.pack(agent_pb2.Batch.FromString(stream.body(seq))).SerializeToString()
        upload = channel.stream_stream("/worklens.v1.AgentService/Upload",
                                       request_serializer=None,
                                       response_deserializer=agent_pb2.Ack.FromString)
        call = upload(metadata=(("authorization", f"Bearer {reply.credential}"),))
        sent: dict[int, float] = {}

        async def send() -> None:
            seq = 0
            await asyncio.sleep(rng.random() * opts["interval"])   # spread the phases
            while time.time() < opts["stop_at"]:
                seq += 1
                sent[seq] = time.perf_counter()
                await call.write(body(seq))
                if seq == 1:
                    connected[0] += 1
                await asyncio.sleep(opts["interval"])
            await call.done_writing()

        async def receive() -> None:
            async for ack in call:
                latency = time.perf_counter() - sent.pop(ack.sequence)
                if opts["measure_from"] <= time.time() <= opts["stop_at"]:
                    stats["latencies"].append(latency)
                    stats["events"] += stream.events(ack.sequence)

        await asyncio.gather(send(), receive())


def worker(indices: list[int], address: str, secret: str, interval: float, plain: bool,
           ready: mp.Queue, go: mp.Queue, results: mp.Queue) -> None:
    """Runs its agents until told the measured window (from, until) on ``go``."""
    raise_open_files_limit()
    stats = {"latencies": [], "events": 0, "errors": 0}
    connected = [0]

    async def main() -> None:
        opts = {"interval": interval, "stop_at": float("inf"), "measure_from": float("inf"),
                "enroll_slots": asyncio.Semaphore(20), "plain": plain}
        agents = [asyncio.create_task(run_agent(i, address, secret, opts, stats, connected))
                  for i in indices]
        while connected[0] < len(indices) and not all(a.done() for a in agents):
            await asyncio.sleep(0.5)
        ready.put(connected[0])
        opts["measure_from"], opts["stop_at"] = await asyncio.to_thread(go.get)
        for outcome in await asyncio.gather(*agents, return_exceptions=True):
            if isinstance(outcome, BaseException):
                stats["errors"] += 1
                if stats["errors"] <= 3:
                    print(f"agent error: {outcome!r}", file=sys.stderr, flush=True)

    asyncio.run(main())
    stats["cpu_s"] = time.process_time()
    results.put(stats)


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory (MB, with the store's writer process and any other child),
    threads and open descriptors of the running collector."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": (int(fields["VmRSS"].split()[0]) + _children_rss_kb(pid)) / 1024,
            "threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _children_rss_kb(pid: int) -> int:
    import psutil

    total = 0
    for child in collector_processes(pid)[1:]:
        try:
            total += child.memory_info().rss // 1024
        except psutil.Error:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--interval", type=float, default=30.0,
                        help="seconds between an agent's batches (its flush interval)")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--plain", action="store_true",
                        help="send plain batches; default: packed, as agents do once the "
                             "collector's Hello accepts it (a DEFLATE context per stream)")
    args = parser.parse_args()
    raise_open_files_limit()

    data_dir = Path(tempfile.mkdtemp(prefix="worklens-conn-"))
    collector = start_collector(data_dir)
    proc = collector.proc
    try:
        secret = create_token(data_dir, "enroll")
        idle = proc_status(proc.pid)
        log(f"collector at {collector.grpc_address}: {idle['rss_mb']:.0f} MB, "
            f"{idle['fds']} fds before any agent; connecting {args.agents} agents from "
            f"{args.workers} processes")
        ctx = mp.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        gos = [ctx.Queue() for _ in range(args.workers)]
        started = time.monotonic()
        workers = [ctx.Process(target=worker, args=(list(range(w, args.agents, args.workers)),
                                                    collector.grpc_address, secret,
                                                    args.interval, args.plain, ready, gos[w],
                                                    results))
                   for w in range(args.workers)]
        for w in workers:
            w.start()
        connected = sum(ready.get(timeout=900) for _ in workers)
        log(f"{connected} agents connected and shipping after "
            f"{time.monotonic() - started:.0f}s; measuring for {args.duration:g}s")
        measure_from = time.time() + args.interval   # one interval to settle
        for go in gos:
            go.put((measure_from, measure_from + args.duration))
        time.sleep(max(0.0, measure_from - time.time()))
        cpu_before, wall_before = process_cpu_seconds(proc.pid), time.monotonic()
        peak = proc_status(proc.pid)
        while time.monotonic() - wall_before < args.duration:
            time.sleep(min(5.0, args.duration))
            now = proc_status(proc.pid)
            peak = {k: max(peak[k], now[k]) for k in peak}
            log(f"  {time.monotonic() - wall_before:4.0f}s: {now['rss_mb']:.0f} MB, "
                f"{now['fds']} fds, {now['threads']} threads")
        cpu_s = process_cpu_seconds(proc.pid) - cpu_before
        wall_s = time.monotonic() - wall_before
        stats = [results.get(timeout=300) for _ in workers]
        for w in workers:
            w.join(60)
    finally:
        stop_collector(proc, data_dir)
    latencies = [x for s in stats for x in s["latencies"]]
    figures = {
        "agents_connected": connected,
        "collector_rss_mb": round(peak["rss_mb"], 1),
        "collector_rss_mb_idle": round(idle["rss_mb"], 1),
        "kb_per_agent": round((peak["rss_mb"] - idle["rss_mb"]) * 1024 / max(connected, 1), 1),
        "fds": peak["fds"],
        "threads": peak["threads"],
        "cpu_percent": round(100 * cpu_s / wall_s, 1),
        "batches": len(latencies),
        "events_per_s": round(sum(s["events"] for s in stats) / wall_s),
        "p50_ack_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ack_ms": round(percentile(latencies, 99) * 1000, 1),
        "agent_errors": sum(s["errors"] for s in stats),
        "interval_s": args.interval,
        "packed": not args.plain,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
