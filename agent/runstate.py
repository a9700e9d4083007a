"""What the running agent says about itself, for ``worklens-agent status``.

``status`` is often run from another shell than the agent's: over ssh, from a
terminal without ``DISPLAY``, by IT. Probing the sensors from there describes
that shell's session, not the one being measured, and said "window: not
available" about an agent that was recording fine. So the running agent
writes ``running.json`` into its data dir — its pid and start time and what
each of its sensors does — when it starts and at every flush, and removes it
when it stops; ``status`` believes it only while that very process is alive
(pid AND start time match, so a reused pid is not taken for the agent).

It also says which collector address the agent is connected to (the shipper
calls ``record_collector`` when it connects, which matters when ``[collector]
address`` lists several).

Written atomically (temporary file + rename): a reader sees the old or the new
state, never half of one. Nothing in it is about the person: backend names and
the reasons a sensor is unavailable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from worklens.agent.sensors import SensorStatus

log = logging.getLogger(__name__)

RUNNING_FILE = "running.json"
# psutil's process start time is rounded differently from one read to the next
START_SLACK_S = 1.0


@dataclass(frozen=True)
class RunState:
    pid: int
    started_ms: int
    updated_ms: int
    sensors: list[dict]
    # {"address": HOST:PORT, "since_ms": ...}: where the shipper is connected
    collector: dict | None = None


# what this process last recorded; one writer at a time (scheduler and shipper)
_lock = threading.Lock()
_sensors: list[dict] = []
_collector: dict | None = None


def _started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def write(data_dir: Path, sensors: list[SensorStatus]) -> None:
    """Say what this agent process does now. Never raises: status then probes."""
    global _sensors
    with _lock:
        _sensors = [asdict(s) for s in sensors]
        _write(data_dir)


def record_collector(data_dir: Path, address: str) -> None:
    """The shipper connected to ``address``: say so now if the state file is
    already written (else the next ``write`` includes it)."""
    global _collector
    with _lock:
        if _collector is not None and _collector["address"] == address:
            return
        _collector = {"address": address, "since_ms": int(time.time() * 1000)}
        state = _load(data_dir / RUNNING_FILE)
        if state is not None and state.pid == os.getpid():
            _write(data_dir)


def _write(data_dir: Path) -> None:
    started = _started(os.getpid()) or time.time()
    state = RunState(pid=os.getpid(), started_ms=int(started * 1000),
                     updated_ms=int(time.time() * 1000), sensors=_sensors, collector=_collector)
    path = data_dir / RUNNING_FILE
    tmp = path.with_name(f".{RUNNING_FILE}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def clear(data_dir: Path) -> None:
    """Remove the state this process wrote (not another agent's)."""
    path = data_dir / RUNNING_FILE
    state = _load(path)
    if state is not None and state.pid == os.getpid():
        path.unlink(missing_ok=True)


def read(data_dir: Path) -> RunState | None:
    """The running agent's state, or None when no live agent wrote it."""
    state = _load(data_dir / RUNNING_FILE)
    if state is None:
        return None
    started = _started(state.pid)
    if started is None or abs(started * 1000 - state.started_ms) > START_SLACK_S * 1000:
        return None   # that agent is gone (killed, machine rebooted) or the pid was reused
    return state


def _load(path: Path) -> RunState | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunState(pid=int(raw["pid"]), started_ms=int(raw["started_ms"]),
                        updated_ms=int(raw["updated_ms"]),
                        sensors=[dict(s) for s in raw["sensors"]],
                        collector=dict(raw["collector"]) if raw.get("collector") else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None
