"""Which processes use the CPU and memory: every ``process_interval``, the top
N processes by CPU time used *during the interval* plus whole-machine totals.

CPU shares come from our own deltas of each process's cumulative CPU time
(user + system) between two samples, so the first sample after start is a
baseline rather than psutil's meaningless first-call 0.0. The agent's own
process is always included so its footprint is visible centrally. Processes
vanishing mid-read, zombies and access-denied are normal on any machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from worklens.agent.sensors._select import SensorStatus
from worklens.v1 import agent_pb2

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


@dataclass
class _Seen:
    cpu_seconds: float      # cumulative user + system CPU at the last sample


def describe(cfg) -> SensorStatus:
    n = cfg.sampling.top_processes
    return SensorStatus("processes", "psutil", True,
                        f"top {n} by CPU every {cfg.sampling.process_interval:g}s "
                        "(name, user, CPU, memory) and system totals")


class ProcessSensor:
    """Top-N process samples and system totals between consecutive calls."""

    def __init__(self, top: int = 10, is_excluded: Callable[[str], bool] = lambda _n: False,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._top = top
        self._is_excluded = is_excluded
        self._wall = wall
        self._monotonic = monotonic
        self._seen: dict[tuple[int, float], _Seen] = {}
        self._last_mono: float | None = None
        self._last_cpu: psutil._common.scputimes | None = None
        self._own_pid = os.getpid()
        self._cpu_count = psutil.cpu_count() or 1

    def prime(self) -> None:
        """Take the baseline; the next ``sample()`` covers the time since now."""
        self._scan()
        self._last_mono = self._monotonic()
        self._last_cpu = psutil.cpu_times()

    def sample(self) -> list[agent_pb2.ProcessSample | agent_pb2.SystemTotals]:
        """Records for the interval since the last call (none right after start)."""
        if self._last_mono is None:
            self.prime()
            return []
        now_mono, now_ms = self._monotonic(), int(self._wall() * 1000)
        interval = max(now_mono - self._last_mono, 1e-3)
        previous = self._seen
        procs, count = self._scan()
        ranked = []
        for key, (proc, cpu) in procs.items():
            before = previous.get(key)
            # a process born during the interval used all its CPU time in it
            used = cpu - before.cpu_seconds if before is not None else cpu
            ranked.append((max(used, 0.0), proc))
        ranked.sort(key=lambda item: item[0], reverse=True)
        # idle processes are not "top by CPU": only those that used some CPU
        chosen = [item for item in ranked
                  if item[1].pid != self._own_pid and item[0] > 0][: self._top]
        own = [item for item in ranked if item[1].pid == self._own_pid]
        records: list[agent_pb2.ProcessSample | agent_pb2.SystemTotals] = []
        for used, proc in chosen + own:
            record = self._record(proc, used, interval, now_ms)
            if record is not None:
                records.append(record)
        records.append(self._totals(now_ms, count))
        self._last_mono = now_mono
        return records

    def _scan(self) -> tuple[dict[tuple[int, float], tuple[psutil.Process, float]], int]:
        """One pass over all processes: cumulative CPU per (pid, create time)."""
        found: dict[tuple[int, float], tuple[psutil.Process, float]] = {}
        count = 0
        for proc in psutil.process_iter(["cpu_times", "create_time", "name"]):
            count += 1
            times, created, name = (proc.info["cpu_times"], proc.info["create_time"],
                                    proc.info["name"] or "")
            if times is None or created is None:
                continue  # gone or unreadable
            if self._is_excluded(name) and proc.pid != self._own_pid:
                continue  # an excluded app is never reported, not even as a process
            found[(proc.pid, created)] = (proc, times.user + times.system)
        self._seen = {key: _Seen(cpu) for key, (_p, cpu) in found.items()}
        return found, count

    def _record(self, proc: psutil.Process, used: float, interval: float,
                now_ms: int) -> agent_pb2.ProcessSample | None:
        try:
            with proc.oneshot():
                rss = proc.memory_info().rss
                user = _username(proc)
        except _GONE:
            return None
        return agent_pb2.ProcessSample(
            time_ms=now_ms, pid=proc.pid, name=proc.info["name"] or "", user=user,
            cpu_percent=round(100.0 * used / interval, 3), rss_bytes=rss,
            cpu_seconds=round(used, 6), interval_ms=round(interval * 1000))

    def _totals(self, now_ms: int, count: int) -> agent_pb2.SystemTotals:
        cpu = psutil.cpu_times()
        busy = 0.0
        if self._last_cpu is not None:
            total = sum(cpu) - sum(self._last_cpu)
            idle = _idle(cpu) - _idle(self._last_cpu)
            busy = 100.0 * (1 - idle / total) if total > 0 else 0.0
        self._last_cpu = cpu
        mem = psutil.virtual_memory()
        return agent_pb2.SystemTotals(
            time_ms=now_ms, cpu_percent=round(min(max(busy, 0.0), 100.0), 2),
            mem_total_bytes=mem.total, mem_used_bytes=mem.used, process_count=count,
            cpu_count=self._cpu_count)


def _idle(times: psutil._common.scputimes) -> float:
    return times.idle + getattr(times, "iowait", 0.0)


def _username(proc: psutil.Process) -> str:
    try:
        return proc.username()
    except (*_GONE, KeyError):  # KeyError: a uid with no passwd entry
        return ""
