"""``worklens-agent run``: sample on a schedule until SIGTERM/SIGINT.

APScheduler runs three interval jobs on one worker thread (so they never run
concurrently): the window/idle sample every ``window_interval``, the process
sample every ``process_interval`` and the delivery checkpoint every
``flush_interval``. On SIGTERM or SIGINT the open spans are closed and
written, the checkpoint is cleared and the sink closed; the exit code is 0.

``--print`` writes closed records to stdout and never touches delivery (no
collector, no enrollment needed); otherwise ``agent.delivery.open_delivery``
provides the sink (spool + shipper).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from worklens.agent import runstate
from worklens.agent.printsink import PrintSink
from worklens.agent.privacy import load_schedule
from worklens.agent.sampler import Sampler
from worklens.agent.sink import Sink

log = logging.getLogger(__name__)


def open_sink(args: Any, cfg, data_dir: Path) -> Sink:
    if getattr(args, "print_only", False):
        return PrintSink()
    from worklens.agent.delivery import open_delivery  # the delivery side: spool + shipper

    return open_delivery(cfg, data_dir)


def build_scheduler(sampler: Sampler, cfg, data_dir: Path | None = None) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    # APScheduler logs every job run at INFO; once a second is noise in a journal
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
    s = cfg.sampling
    scheduler.add_job(sampler.sample, "interval", seconds=s.window_interval, id="sample")
    scheduler.add_job(sampler.sample_processes, "interval", seconds=s.process_interval,
                      id="processes")
    scheduler.add_job(sampler.checkpoint, "interval", seconds=cfg.delivery.flush_interval,
                      id="checkpoint")
    if data_dir is not None:   # what `status` shows, kept current (a display may appear)
        scheduler.add_job(lambda: runstate.write(data_dir, sampler.statuses), "interval",
                          seconds=cfg.delivery.flush_interval, id="runstate")
    return scheduler


def _describe(sampler: Sampler) -> str:
    """One log line: each sensor's backend, or why it sees nothing (yet)."""
    parts = []
    for s in sampler.statuses:
        if s.available:
            parts.append(f"{s.name}: {s.backend}")
        elif s.backend != "none":       # e.g. x11, waiting for the display to appear
            parts.append(f"{s.name}: {s.backend}, {s.reason}")
        else:
            parts.append(f"{s.name}: unavailable" + (f" ({s.reason})" if s.reason else ""))
    return "; ".join(parts)


def command(args: Any, cfg, data_dir: Path) -> int:
    load_schedule(cfg.privacy.schedule)          # a bad schedule stops us before anything runs
    sink = open_sink(args, cfg, data_dir)
    sampler = Sampler(cfg, sink)
    # --print is a try-out beside the real agent: it must not speak for that one
    state_dir = None if getattr(args, "print_only", False) else data_dir
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: closing open spans", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    scheduler = None
    try:
        sampler.start()
        sampler.sample()                             # the first spans start now, not in 1s
        log.info("sampling every %gs (processes every %gs): %s",
                 cfg.sampling.window_interval, cfg.sampling.process_interval, _describe(sampler))
        if state_dir is not None:
            runstate.write(state_dir, sampler.statuses)
        scheduler = build_scheduler(sampler, cfg, state_dir)
        scheduler.start()
        stop.wait()     # a signal interrupts the wait and runs on_signal in this thread
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if state_dir is not None:
            runstate.clear(state_dir)
        sampler.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
