"""A stand-in for the agent's sensor side, run as its own process by the
delivery fault tests: it drives the REAL delivery pipeline (open_delivery ->
spool -> shipper -> collector) the way agent/runner.py does — closed window
spans written as they close, the open span checkpointed every flush interval —
but with span titles the tests can account for one by one.

    python agent_driver.py --data-dir D --prefix run1 --span 0.05 --count 300

stdout (flushed line by line, so a test that SIGKILLs this process knows
exactly what had been handed to the spool):
    closed N START_MS DURATION_MS   span "<prefix> N" was written (committed)
    checkpoint N START_MS DURATION_MS   the open span was checkpointed
    drained / undrained REMAINING   after the last span, before exit
SIGTERM: the open span is closed and written, the checkpoint cleared, exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from worklens.agent import config as agent_config
from worklens.agent.delivery import open_delivery
from worklens.agent.shipper import Backoff
from worklens.common.cli import setup_logging
from worklens.v1 import agent_pb2


def now_ms() -> int:
    return int(time.time() * 1000)


def span(prefix: str, n: int, start_ms: int, end_ms: int, title_pad: int
         ) -> agent_pb2.WindowSpan:
    return agent_pb2.WindowSpan(start_ms=start_ms, duration_ms=end_ms - start_ms, app="driver",
                                title=f"{prefix} {n}" + "." * title_pad, pid=n,
                                exe="/usr/bin/driver")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--prefix", default="span")
    parser.add_argument("--span", type=float, default=0.05, help="seconds per closed span")
    parser.add_argument("--count", type=int, default=0, help="stop after N spans (0: never)")
    parser.add_argument("--backoff", type=float, default=0.1, help="initial retry delay")
    parser.add_argument("--drain", type=float, default=60.0, help="wait this long at the end")
    parser.add_argument("--failback", type=float, default=0.0,
                        help="seconds on a fallback address before asking the preferred "
                             "one again (0: the agent's default)")
    parser.add_argument("--title-pad", type=int, default=0)
    parser.add_argument("--poison", type=int, default=-1,
                        help="give span N a title the collector rejects (over 2048 chars)")
    args = parser.parse_args()
    cfg = agent_config.load(None)            # WORKLENS_* from the test's environment
    setup_logging(cfg.log.level)
    sink = open_delivery(cfg, args.data_dir,
                         backoff=Backoff(initial=args.backoff, maximum=args.backoff * 10),
                         failback_after=args.failback or None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    n, open_start = 0, now_ms()
    next_close = time.monotonic() + args.span
    next_checkpoint = time.monotonic() + cfg.delivery.flush_interval
    while not stop.is_set() and (args.count == 0 or n < args.count):
        stop.wait(0.005)
        if time.monotonic() >= next_close:
            end = now_ms()
            pad = 5000 if n == args.poison else args.title_pad
            sink.write([span(args.prefix, n, open_start, end, pad)])
            print(f"closed {n} {open_start} {end - open_start}", flush=True)
            n, open_start = n + 1, end
            next_close += args.span
        if time.monotonic() >= next_checkpoint:
            end = now_ms()
            sink.checkpoint([span(args.prefix, n, open_start, end, args.title_pad)])
            print(f"checkpoint {n} {open_start} {end - open_start}", flush=True)
            next_checkpoint += cfg.delivery.flush_interval
    end = now_ms()
    sink.write([span(args.prefix, n, open_start, end, args.title_pad)])
    print(f"closed {n} {open_start} {end - open_start}", flush=True)
    sink.checkpoint([])
    sink.flush()
    deadline = time.monotonic() + args.drain
    while sink.spool.depth().batches and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sink.spool.depth().batches
    print("drained" if not left else f"undrained {left}", flush=True)
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
