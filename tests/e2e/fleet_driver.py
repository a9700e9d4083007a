"""Many agents' delivery pipelines in one process, for the tests with several
collectors: like agent_driver.py (the REAL open_delivery -> spool -> shipper ->
collector path, spans the tests can account for one by one), but N agents, each
with its own data directory, enrollment, spool, shipper and collector address
list, without N Python interpreters competing for a 2-core machine.

    python fleet_driver.py --base DIR --agents 20 --addresses A,B --addresses B,A \
        --span 0.05 --count 150 --prefix p

Agent i lives in DIR/agent-i, uses the i-th ``--addresses`` (round robin), enrolls
itself with WORKLENS_COLLECTOR_ENROLL_SECRET, and writes closed window spans
"<prefix> 0" .. "<prefix> COUNT-1" (app "driver"), one every ``--span`` seconds.
stdout, line by line: ``running`` once every pipeline is open, ``written`` after
the last span, then ``drained I`` or ``undrained I REMAINING`` per agent.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path

from agent_driver import now_ms, span
from worklens.agent import config as agent_config
from worklens.agent.delivery import open_delivery
from worklens.agent.shipper import Backoff
from worklens.common.cli import setup_logging


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--addresses", action="append", required=True,
                        help="one agent's collector list; repeat for round robin")
    parser.add_argument("--prefix", default="span")
    parser.add_argument("--span", type=float, default=0.05, help="seconds per closed span")
    parser.add_argument("--count", type=int, default=100, help="spans per agent")
    parser.add_argument("--backoff", type=float, default=0.1, help="initial retry delay")
    parser.add_argument("--drain", type=float, default=60.0, help="wait this long at the end")
    args = parser.parse_args()
    cfg = agent_config.load(None)            # WORKLENS_* from the test's environment
    setup_logging(cfg.log.level)
    sinks = []
    for i in range(args.agents):
        addresses = args.addresses[i % len(args.addresses)]
        mine = dataclasses.replace(cfg, collector=dataclasses.replace(cfg.collector,
                                                                      address=addresses))
        sinks.append(open_delivery(mine, args.base / f"agent-{i}",
                                   backoff=Backoff(initial=args.backoff,
                                                   maximum=args.backoff * 10)))
    print("running", flush=True)
    starts = [now_ms()] * args.agents
    next_close = time.monotonic()
    for n in range(args.count):
        next_close += args.span
        time.sleep(max(0.0, next_close - time.monotonic()))
        end = now_ms()
        for i, sink in enumerate(sinks):
            sink.write([span(args.prefix, n, starts[i], end, 0)])
            starts[i] = end
    print("written", flush=True)
    for sink in sinks:
        sink.flush()
    deadline = time.monotonic() + args.drain
    while any(s.spool.depth().batches for s in sinks) and time.monotonic() < deadline:
        time.sleep(0.1)
    for i, sink in enumerate(sinks):
        left = sink.spool.depth().batches
        print(f"drained {i}" if not left else f"undrained {i} {left}", flush=True)
    closers = [threading.Thread(target=sink.close) for sink in sinks]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
