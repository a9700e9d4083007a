"""Batch validation with explicit, documented limits.

A batch is all-or-nothing: the first violated limit rejects the whole batch
(INVALID_ARGUMENT at the wire, nothing stored). The limits:

==========================  ===============================================
sequence                    1 .. 2**63-1 (SQLite integers are signed 64-bit)
events per batch            ``[grpc] max_events_per_batch`` (default 50,000);
                            more is INVALID_ARGUMENT, not RESOURCE_EXHAUSTED:
                            resending the same batch can never succeed
timestamps (start/time_ms)  not older than ``[retention] keep`` (it would be
                            purged at once) and not more than
                            ``[grpc] max_future_skew`` (default 5m) ahead
durations / interval_ms     0 .. 7 days (``MAX_DURATION_MS``)
window title                2048 characters (``MAX_TITLE``)
app, process name, user     256 characters
exe path                    4096 characters
host facts                  hostname 255, os 64, os_version 256, user 256,
                            agent_version 64 characters
activity state              ACTIVE, IDLE, LOCKED, ASLEEP or PASSIVE (not
                            UNSPECIFIED); reason a known PassiveReason,
                            on PASSIVE spans only
pid                         >= 0
cpu_percent, cpu_seconds    finite and >= 0; cpu_seconds at most
                            ``MAX_CORES`` cores for the interval (or 1 s),
                            cpu_percent at most ``MAX_CORES`` x 100
byte counts, dropped_events <= 2**62
==========================  ===============================================

Checks run on the columns of the already-extracted rows (``zip(*rows)`` and
``min``/``max`` run in C), so validating costs a fraction of storing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from worklens.collector.config import CollectorConfig
from worklens.collector.store.records import Records
from worklens.v1 import agent_pb2

MAX_SEQUENCE = 2**63 - 1
MAX_COUNTER = 2**62
MAX_DURATION_MS = 7 * 86_400_000
MAX_TITLE = 2048
MAX_NAME = 256
MAX_EXE = 4096
MAX_CORES = 1024   # CPU time beyond this many cores for the interval is a broken sample
HOST_LIMITS = {"hostname": 255, "os": 64, "os_version": 256, "user": 256, "agent_version": 64}
VALID_STATES = frozenset({agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
                          agent_pb2.ACTIVITY_STATE_LOCKED, agent_pb2.ACTIVITY_STATE_ASLEEP,
                          agent_pb2.ACTIVITY_STATE_PASSIVE})
VALID_REASONS = frozenset(agent_pb2.PassiveReason.values())
PASSIVE = agent_pb2.ACTIVITY_STATE_PASSIVE


class InvalidBatch(ValueError):
    """The batch breaks a limit; the message says which and by how much."""


@dataclass(frozen=True)
class Limits:
    max_events: int = 50_000
    max_age_ms: int = 400 * 86_400_000
    max_future_ms: int = 300_000
    # what a packed batch may expand to: the same cap gRPC puts on a plain message
    max_message_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_config(cls, cfg: CollectorConfig) -> Limits:
        return cls(max_events=cfg.grpc.max_events_per_batch,
                   max_age_ms=int(cfg.retention.keep * 1000),
                   max_future_ms=int(cfg.grpc.max_future_skew * 1000),
                   max_message_bytes=int(cfg.grpc.max_message_mb * 1024 * 1024))


def check_host(host: agent_pb2.HostInfo) -> None:
    for name, limit in HOST_LIMITS.items():
        if len(getattr(host, name)) > limit:
            raise InvalidBatch(f"host.{name} is longer than {limit} characters")


def check_batch(batch: agent_pb2.Batch, records: Records, limits: Limits,
                now_ms: int | None = None) -> None:
    """Raise InvalidBatch naming the first limit ``batch`` breaks."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not 1 <= batch.sequence <= MAX_SEQUENCE:
        raise InvalidBatch(f"sequence must be between 1 and {MAX_SEQUENCE}, got {batch.sequence}")
    if records.count > limits.max_events:
        raise InvalidBatch(f"too many events in one batch: {records.count} > "
                           f"{limits.max_events} (split it)")
    if batch.dropped_events > MAX_COUNTER:
        raise InvalidBatch(f"dropped_events is absurd: {batch.dropped_events}")
    check_host(batch.host)
    window = (now_ms - limits.max_age_ms, now_ms + limits.max_future_ms)
    if records.windows:
        _check_windows(records.windows, window)
    if records.activity:
        _check_activity(records.activity, window)
    if records.processes:
        _check_processes(records.processes, window)
    if records.system:
        _check_system(records.system, window)


def _check_times(kind: str, field: str, column: tuple, window: tuple[int, int]) -> None:
    oldest, newest = min(column), max(column)
    if oldest < window[0]:
        raise InvalidBatch(f"{kind}.{field} {oldest} is older than the retention window "
                           f"(earliest accepted {window[0]})")
    if newest > window[1]:
        raise InvalidBatch(f"{kind}.{field} {newest} is in the future (more than the allowed "
                           f"skew ahead of the collector clock {window[1]})")


def _check_range(kind: str, field: str, column: tuple, low: float, high: float) -> None:
    smallest, largest = min(column), max(column)
    if smallest < low:
        raise InvalidBatch(f"{kind}.{field} must be >= {low:g}, got {smallest}")
    if largest > high:
        raise InvalidBatch(f"{kind}.{field} must be <= {high:g}, got {largest}")


def _check_lengths(kind: str, field: str, column: tuple, limit: int) -> None:
    longest = max(map(len, column))
    if longest > limit:
        raise InvalidBatch(f"{kind}.{field} is {longest} characters long; the limit is {limit}")


def _check_finite(kind: str, field: str, column: tuple) -> None:
    if not all(map(math.isfinite, column)):
        raise InvalidBatch(f"{kind}.{field} must be a finite number")


def _check_windows(rows: list[tuple], window: tuple[int, int]) -> None:
    _, start, duration, app, title, pid, exe, *_ = zip(*rows, strict=True)
    _check_times("windows", "start_ms", start, window)
    _check_range("windows", "duration_ms", duration, 0, MAX_DURATION_MS)
    _check_lengths("windows", "app", app, MAX_NAME)
    _check_lengths("windows", "title", title, MAX_TITLE)
    _check_lengths("windows", "exe", exe, MAX_EXE)
    _check_range("windows", "pid", pid, 0, 2**31 - 1)


def _check_activity(rows: list[tuple], window: tuple[int, int]) -> None:
    _, start, duration, state, *_, reason = zip(*rows, strict=True)
    _check_times("activity", "start_ms", start, window)
    _check_range("activity", "duration_ms", duration, 0, MAX_DURATION_MS)
    unknown = set(state) - VALID_STATES
    if unknown:
        raise InvalidBatch(f"activity.state must be ACTIVE, IDLE, LOCKED, ASLEEP or PASSIVE; "
                           f"got {sorted(unknown)}")
    unknown = set(reason) - VALID_REASONS
    if unknown:
        raise InvalidBatch(f"activity.reason must be a known passive reason (0-4); got "
                           f"{sorted(unknown)}")
    if any(why and st != PASSIVE for st, why in zip(state, reason, strict=True)):
        raise InvalidBatch("activity.reason is for PASSIVE spans only")


def _check_processes(rows: list[tuple], window: tuple[int, int]) -> None:
    _, time_ms, pid, name, user, cpu, rss, cpu_s, interval = zip(*rows, strict=True)
    _check_times("processes", "time_ms", time_ms, window)
    _check_range("processes", "pid", pid, 0, 2**31 - 1)
    _check_lengths("processes", "name", name, MAX_NAME)
    _check_lengths("processes", "user", user, MAX_NAME)
    _check_finite("processes", "cpu_percent", cpu)
    _check_range("processes", "cpu_percent", cpu, 0, math.inf)
    _check_range("processes", "rss_bytes", rss, 0, MAX_COUNTER)
    _check_finite("processes", "cpu_seconds", cpu_s)
    _check_range("processes", "cpu_seconds", cpu_s, 0, math.inf)
    _check_cpu_time(cpu_s, interval)
    _check_range("processes", "cpu_percent", cpu, 0, MAX_CORES * 100)
    _check_range("processes", "interval_ms", interval, 0, MAX_DURATION_MS)


def _check_cpu_time(cpu_seconds: tuple, interval_ms: tuple) -> None:
    """No process uses more than MAX_CORES cores over its interval (1 s at least)."""
    for used, interval in zip(cpu_seconds, interval_ms, strict=True):
        most = MAX_CORES * max(interval / 1000, 1.0)
        if used > most:
            raise InvalidBatch(f"processes.cpu_seconds {used:g} is more than {MAX_CORES} "
                               f"cores could use in {interval} ms")


def _check_system(rows: list[tuple], window: tuple[int, int]) -> None:
    _, time_ms, cpu, mem_total, mem_used, _, _ = zip(*rows, strict=True)
    _check_times("system", "time_ms", time_ms, window)
    _check_finite("system", "cpu_percent", cpu)
    _check_range("system", "cpu_percent", cpu, 0, 100.5)
    _check_range("system", "mem_total_bytes", mem_total, 0, MAX_COUNTER)
    _check_range("system", "mem_used_bytes", mem_used, 0, MAX_COUNTER)
