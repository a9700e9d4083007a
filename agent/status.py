"""``worklens-agent status``: what a person at the keyboard (or IT) wants to
know — is this agent enrolled, can it reach its collector, how much is waiting
to be sent and since when, what was lost, and above all what is being
collected about them.

It reads the spool read-only (a running agent keeps working undisturbed),
asks the collector one short ``Hello`` and shows what the RUNNING agent's
sensors do (``agent.runstate``); only when no agent runs does it probe them
itself, and says that this describes the calling shell's session. ``--json``
prints the same facts for machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from worklens.agent import credential, runstate
from worklens.agent.channel import ENROLL_HINT, connection, each_address, explain, open_channel
from worklens.agent.credential import Connection
from worklens.agent.hostinfo import host_info
from worklens.agent.spool import Spool
from worklens.common.cli import UserError
from worklens.common.durations import format_duration
from worklens.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 3.0
NEVER_RECORDED = "keystroke content, clipboard and screen contents are never recorded, " \
                 "only counts and durations"


@dataclass
class CollectorReport:
    address: str = ""
    transport: str = ""                 # "TLS", "mutual TLS", "plain text"
    reachable: bool | None = None       # None: not asked (not enrolled)
    credential_accepted: bool | None = None
    problem: str = ""
    last_sequence: int | None = None    # highest batch the collector stored for us
    clock_skew_ms: int | None = None
    in_use: str = ""                    # the address the running agent is connected to
    # with several addresses, each one's answer in order of preference
    # ({address, reachable, credential_accepted, problem}); the fields above then
    # tell the best answer (credential accepted > reachable > the first)
    addresses: list[dict] = field(default_factory=list)


@dataclass
class SpoolReport:
    batches: int = 0
    events: int = 0
    bytes: int = 0
    unsealed_records: int = 0
    oldest_unsent_ms: int | None = None
    last_ack_ms: int | None = None
    last_ack_sequence: int | None = None
    dropped_events: int = 0
    dead_letters: int = 0
    dead_letter_events: int = 0
    sending_stopped: str = ""           # why the agent stopped sending (auth)
    last_error: str = ""
    problem: str = ""


@dataclass
class Status:
    data_dir: str
    enrolled: bool
    agent_id: str = ""
    enrolled_ms: int | None = None
    will_self_enroll: bool = False
    collector: CollectorReport = field(default_factory=CollectorReport)
    spool: SpoolReport = field(default_factory=SpoolReport)
    # the running agent (pid, since_ms, updated_ms) when one is; None: not running
    running: dict | None = None
    # "agent": what the running agent's sensors do; "probe": what they would do in
    # THIS shell's session (no agent running)
    sensors_from: str = "probe"
    sensors: list[dict] = field(default_factory=list)
    collected: dict = field(default_factory=dict)
    # would the agent deliver now? (the exit code: 0 yes, 1 no) and if not, why
    ok: bool = False
    problem: str = ""


def gather(cfg, data_dir: Path) -> Status:
    cred = credential.load(data_dir)
    status = Status(data_dir=str(data_dir), enrolled=cred is not None)
    conn = connection(cfg.collector, cred.collector if cred else None)
    status.collector = CollectorReport(address=conn.address, transport=_transport(conn))
    if cred is not None:
        status.agent_id, status.enrolled_ms = cred.agent_id, cred.enrolled_ms or None
        status.collector = _ask_collectors(conn, cred.credential, status.collector)
    else:
        status.will_self_enroll = bool(cfg.collector.enroll_secret.strip())
        if status.will_self_enroll:
            status.collector = _ask_collectors(conn, None, status.collector)
    status.spool = _read_spool(data_dir)
    status.problem = _why_not_delivering(status)
    status.ok = not status.problem
    running = runstate.read(data_dir)
    if running is not None:
        status.running = {"pid": running.pid, "since_ms": running.started_ms,
                          "updated_ms": running.updated_ms}
        status.sensors, status.sensors_from = running.sensors, "agent"
        status.collector.in_use = (running.collector or {}).get("address", "")
    else:
        status.sensors = _sensors(cfg)
    status.collected = _collected(cfg)
    return status


def _transport(conn: Connection) -> str:
    if conn.client_cert:
        return "mutual TLS"
    if conn.ca_cert:
        return "TLS"
    return "plain text" if conn.address else ""


def _ask_collectors(conn: Connection, secret: str | None, report: CollectorReport
                    ) -> CollectorReport:
    """Ask every configured address, in order; one address is asked as before."""
    try:
        choices = each_address(conn)
    except UserError as exc:   # e.g. a damaged list in the saved credential
        report.reachable, report.problem = False, str(exc)
        return report
    if len(choices) < 2:
        return _ask_collector(conn, secret, report)
    answers = [_ask_collector(one, secret, CollectorReport(address=one.address,
                                                           transport=report.transport))
               for one in choices]
    report.addresses = [{"address": a.address, "reachable": a.reachable,
                         "credential_accepted": a.credential_accepted, "problem": a.problem}
                        for a in answers]
    best = next((a for a in answers if a.credential_accepted),
                next((a for a in answers if a.reachable), answers[0]))
    report.reachable, report.credential_accepted = best.reachable, best.credential_accepted
    report.problem = best.problem
    report.last_sequence, report.clock_skew_ms = best.last_sequence, best.clock_skew_ms
    return report


def _ask_collector(conn: Connection, secret: str | None, report: CollectorReport
                   ) -> CollectorReport:
    """One Hello. Without a credential (not enrolled yet, ``run`` will enroll with
    the secret) a refusal still says that the collector is there."""
    try:
        channel = open_channel(conn, secret)
    except UserError as exc:   # a bad address or TLS file: `run` refuses it too
        report.reachable, report.problem = False, str(exc)
        return report
    sent_ms = time.time() * 1000
    try:
        reply = agent_pb2_grpc.AgentServiceStub(channel).Hello(
            agent_pb2.HelloRequest(host=host_info()), timeout=HELLO_TIMEOUT_S)
    except grpc.RpcError as err:
        auth = err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        report.reachable = auth
        if secret is not None:
            report.credential_accepted = False if auth else None
        if secret is not None or not auth:
            report.problem = explain(err, conn)
        return report
    finally:
        channel.close()
    now_ms = time.time() * 1000
    report.reachable = True
    report.credential_accepted = True if secret is not None else None
    report.last_sequence = reply.last_sequence
    report.clock_skew_ms = int(reply.server_time_ms - (sent_ms + now_ms) / 2)
    return report


def _why_not_delivering(status: Status) -> str:
    """Empty when the agent would deliver; else the first reason it would not."""
    if not status.enrolled and not status.will_self_enroll:
        return "not enrolled"
    if status.spool.sending_stopped:
        return "sending stopped until the agent is enrolled again"
    if status.collector.credential_accepted is False:
        return "the collector rejects this agent's credential"
    if not status.collector.reachable:
        return "the collector is not reachable"
    return ""


def _read_spool(data_dir: Path) -> SpoolReport:
    try:
        spool = Spool.inspect(data_dir)
    except sqlite3.Error as exc:
        return SpoolReport(problem=f"cannot read the spool: {exc} (the agent will move it "
                                   f"aside and start a fresh one when it next starts)")
    if spool is None:
        return SpoolReport()
    try:
        depth = spool.depth()
        return SpoolReport(
            batches=depth.batches, events=depth.events, bytes=depth.bytes,
            unsealed_records=depth.unsealed, oldest_unsent_ms=depth.oldest_created_ms,
            last_ack_ms=spool.get("last_ack_ms"),
            last_ack_sequence=spool.get("last_ack_sequence"),
            dropped_events=spool.get("dropped_total", 0), dead_letters=depth.dead_letters,
            dead_letter_events=depth.dead_letter_events,
            sending_stopped=spool.get("auth_error", "") or "",
            last_error=spool.get("last_error", "") or "")
    finally:
        spool.close()


def _sensors(cfg) -> list[dict]:
    """What the sensors can see here, from the sensor side's own ``describe``."""
    if importlib.util.find_spec("worklens.agent.sensors") is None:
        return []
    import worklens.agent.sensors as sensors
    if not hasattr(sensors, "describe"):
        return []
    # the probes log why a sensor is unavailable; the table below says it already
    quiet = logging.getLogger("worklens.agent.sensors")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return [asdict(s) for s in sensors.describe(cfg)]
    except Exception as exc:   # a probe failing must not hide the rest of the status
        log.debug("sensor probe failed", exc_info=True)
        return [{"name": "sensors", "backend": "", "available": False,
                 "reason": f"could not probe the sensors: {exc}"}]
    finally:
        quiet.setLevel(level)


def _collected(cfg) -> dict:
    privacy, sampling = cfg.privacy, cfg.sampling
    return {
        "window_titles": bool(privacy.capture_titles),
        "title_redaction_patterns": len(privacy.redact_titles),
        "excluded_apps": list(privacy.exclude_apps),
        "schedule": privacy.schedule or "always",
        "window_interval_s": sampling.window_interval,
        "idle_threshold_s": sampling.idle_threshold,
        "process_interval_s": sampling.process_interval,
        "top_processes": sampling.top_processes,
        "never_recorded": NEVER_RECORDED,
    }


# -- printing ------------------------------------------------------------------------------

def _when(ms: int | None, now: float | None = None) -> str:
    if not ms:
        return "never"
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
    ago = max(0.0, now - ms / 1000)
    return f"{stamp} ({format_duration(ago)} ago)"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render(status: Status) -> str:
    lines = ["Worklens agent status", ""]
    add = lines.append
    if status.enrolled:
        since = f" since {_when(status.enrolled_ms).split(' (')[0]}" if status.enrolled_ms \
            else ""
        add(f"  enrolled:       yes, as {status.agent_id}{since}")
    elif status.will_self_enroll:
        add("  enrolled:       not yet — `worklens-agent run` enrolls with [collector] "
            "enroll_secret")
    else:
        add(f"  enrolled:       no — run {ENROLL_HINT}")
    if status.collector.addresses:
        lines += _addresses_lines(status.collector)
    else:
        add(f"  collector:      {_collector_line(status.collector)}")
        if status.collector.problem:
            add(f"                  {status.collector.problem}")
    add(f"  delivering:     {'yes' if status.ok else 'NO — ' + status.problem}")
    add(f"  data dir:       {status.data_dir}")
    if status.running:
        add(f"  agent:          running (pid {status.running['pid']}) since "
            f"{_when(status.running['since_ms']).split(' (')[0]}")
    else:
        add("  agent:          not running")
    lines += _spool_lines(status.spool)
    add("")
    add("What is collected")
    if status.sensors and status.sensors_from == "probe":
        add("  (no agent running: the sensors as they would work in this shell's session)")
    if status.sensors:
        for sensor in status.sensors:
            state = sensor["backend"] if sensor["available"] else "not available"
            detail = f" — {sensor['reason']}" if sensor.get("reason") else ""
            label = f"{sensor['name']}:"
            add(f"  {label:<16}{' ' if len(label) >= 16 else ''}{state}{detail}")
    c = status.collected
    titles = "captured" if c["window_titles"] else "not captured (app names only)"
    if c["window_titles"] and c["title_redaction_patterns"]:
        titles += f", {c['title_redaction_patterns']} redaction pattern(s) applied"
    add(f"  window titles:  {titles}")
    add(f"  excluded apps:  {', '.join(c['excluded_apps']) or 'none'}")
    add(f"  schedule:       {c['schedule']}")
    add(f"  sampling:       focused window every {format_duration(c['window_interval_s'])}, "
        f"idle after {format_duration(c['idle_threshold_s'])}, top "
        f"{c['top_processes']} processes every {format_duration(c['process_interval_s'])}")
    add(f"  never:          {c['never_recorded']}")
    return "\n".join(lines)


def _collector_line(report: CollectorReport) -> str:
    if not report.address:
        return "none configured"
    where = f"{report.address} ({report.transport})"
    if report.reachable is None:
        return where
    if report.credential_accepted:
        return f"{where} — reachable, credential accepted"
    if report.credential_accepted is False:
        return f"{where} — reachable, but it REJECTS this agent's credential"
    if report.reachable:
        return f"{where} — reachable"
    return f"{where} — NOT reachable"


def _addresses_lines(report: CollectorReport) -> list[str]:
    """Several collector addresses: one line each, and which one is in use."""
    in_use = f", the agent is using {report.in_use}" if report.in_use else ""
    lines = [f"  collector:      {len(report.addresses)} addresses, the first preferred{in_use}"]
    for one in report.addresses:
        answer = CollectorReport(address=one["address"], transport=report.transport,
                                 reachable=one["reachable"],
                                 credential_accepted=one["credential_accepted"])
        mark = " (in use)" if one["address"] == report.in_use else ""
        lines.append(f"                  {_collector_line(answer)}{mark}")
        if one["problem"]:
            lines.append(f"                    {one['problem']}")
    return lines


def _spool_lines(spool: SpoolReport) -> list[str]:
    if spool.problem:
        return [f"  spool:          {spool.problem}"]
    waiting = (f"{spool.batches} batch(es) waiting ({spool.events} events, "
               f"{_size(spool.bytes)})" if spool.batches else "nothing waiting")
    if spool.unsealed_records:
        waiting += f"; {spool.unsealed_records} record(s) to be sealed at the next flush"
    lines = [f"  spool:          {waiting}",
             f"  oldest unsent:  {_when(spool.oldest_unsent_ms) if spool.batches else '-'}",
             f"  last ack:       {_when(spool.last_ack_ms)}",
             f"  dropped:        {spool.dropped_events} event(s) (spool limits)",
             f"  dead letters:   {spool.dead_letters} batch(es), {spool.dead_letter_events} "
             f"event(s) rejected by the collector"]
    if spool.sending_stopped:
        lines.append(f"  SENDING STOPPED: {spool.sending_stopped}")
    elif spool.last_error:
        lines.append(f"  last problem:   {spool.last_error}")
    return lines


def command(args: argparse.Namespace, cfg, data_dir: Path) -> int:
    status = gather(cfg, data_dir)
    if getattr(args, "json", False):
        print(json.dumps(asdict(status), indent=2))
    else:
        print(render(status))
    return 0 if status.ok else 1
