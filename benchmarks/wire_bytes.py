"""Bytes on the wire for one agent-day.

    python benchmarks/wire_bytes.py [--hours 8] [--flush 30] [--seed 7]

Drives the REAL agent delivery pipeline — records -> spool (SQLite) -> seal
every flush interval -> shipper (one long-lived Upload stream, batches packed
with one DEFLATE context per stream, see worklens/packing.py) -> a
real `worklens-collector serve` child process — with a simulated workday at
an accelerated clock: focus changes every 20-90 s across 25 apps with
realistic window titles, active/idle/locked activity spans with input counts,
and a process sample (top 10 processes + system totals) every 60 s. Every
simulated ``--flush`` seconds the sink is flushed exactly as the agent's
flusher does, and the benchmark waits for the ack, then ``--pace`` real
seconds, before simulating on: in real time 30 s separate two batches, and
gRPC's flow-control traffic (window updates, pings) depends on real time, so
batches sent back to back would under-count it.

A TCP relay on loopback between agent and collector counts every byte of the
connection in both directions (TCP payload: TLS-less HTTP/2 framing, gRPC
prefixes, compressed batches, acks, window updates, pings) and splits them by
HTTP/2 frame type ("frame_bytes" in the result; they include enrollment).
The accelerated clock hides keepalive pings; gRPC only pings a connection
that has been quiet for the keepalive time (60 s), and at the default flush
interval batches and acks cross it at least that often during a workday.

Last line: {"bytes_per_agent_day": ..., "batches": ..., "events": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _collector import create_token, start_collector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from byteproxy import ByteCountingProxy  # noqa: E402
from worklens.agent import config as agent_config  # noqa: E402
from worklens.agent.credential import Connection  # noqa: E402
from worklens.agent.delivery import open_delivery  # noqa: E402
from worklens.agent.enroll import enroll  # noqa: E402
from worklens.agent.shipper import Backoff  # noqa: E402
from worklens.common import settings as wl_config  # noqa: E402
from worklens.v1 import agent_pb2  # noqa: E402

ACTIVE, IDLE, LOCKED = (agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
                        agent_pb2.ACTIVITY_STATE_LOCKED)

APPS = [
    ("firefox", "/usr/lib/firefox/firefox", ["{} — Mozilla Firefox", "Inbox (3) - {} - Gmail"]),
    ("chromium", "/usr/lib/chromium/chromium", ["{} - Chromium", "Jira | {} - Chromium"]),
    ("code", "/usr/share/code/code", ["{}.py - worklens - Visual Studio Code"]),
    ("gnome-terminal-server", "/usr/libexec/gnome-terminal-server", ["alice@ws17: ~/src/{}"]),
    ("slack", "/usr/lib/slack/slack", ["Slack | #{} | Example Corp"]),
    ("thunderbird", "/usr/lib/thunderbird/thunderbird", ["{} - Inbox - Mozilla Thunderbird"]),
    ("soffice.bin", "/usr/lib/libreoffice/program/soffice.bin",
     ["{}.ods - LibreOffice Calc", "{}.odt - LibreOffice Writer"]),
    ("evince", "/usr/bin/evince", ["{}.pdf"]),
    ("zoom", "/opt/zoom/zoom", ["Zoom Meeting", "Zoom - {}"]),
    ("nautilus", "/usr/bin/nautilus", ["{}", "Downloads"]),
    ("gedit", "/usr/bin/gedit", ["{}.txt (~/notes) - gedit"]),
    ("gimp", "/usr/bin/gimp", ["[{}] (imported)-1.0 (RGB color 8-bit gamma integer) - GIMP"]),
    ("keepassxc", "/usr/bin/keepassxc", ["Passwords.kdbx - KeePassXC"]),
    ("spotify", "/usr/share/spotify/spotify", ["Spotify Premium", "{} - Spotify"]),
    ("teams", "/usr/share/teams/teams", ["Chat | {} | Microsoft Teams"]),
    ("dbeaver", "/usr/share/dbeaver/dbeaver", ["DBeaver 24.1 - <prod> {}"]),
    ("postman", "/opt/postman/Postman", ["Postman - {}"]),
    ("obsidian", "/opt/obsidian/obsidian", ["{} - vault - Obsidian"]),
    ("gnome-calculator", "/usr/bin/gnome-calculator", ["Calculator"]),
    ("gnome-control-center", "/usr/bin/gnome-control-center", ["Settings"]),
    ("inkscape", "/usr/bin/inkscape", ["{}.svg - Inkscape"]),
    ("signal-desktop", "/opt/Signal/signal-desktop", ["Signal"]),
    ("vlc", "/usr/bin/vlc", ["{}.mp4 - VLC media player"]),
    ("gitk", "/usr/bin/gitk", ["{}: All files - gitk"]),
    ("xfreerdp", "/usr/bin/xfreerdp", ["FreeRDP: {}.corp.example.com"]),
]
WORDS = ["quarterly-report", "release-planning", "Pull Request #4121", "budget 2027",
         "design review", "incident-342", "onboarding", "ingest", "roadmap", "standup",
         "customer-acme", "hiring", "invoice 2291", "meeting notes", "spool", "dashboard",
         "ops-weekly", "vpn", "ticket WL-881", "architecture"]
PROCESSES = ["firefox", "Xorg", "gnome-shell", "code", "slack", "pulseaudio", "chromium",
             "thunderbird", "zoom", "Web Content", "Isolated Web Co", "tracker-miner-f",
             "systemd", "dbus-daemon", "pipewire", "teams", "python3", "node"]


def log(message: str) -> None:
    print(message, flush=True)


# -- the collector -------------------------------------------------------------------------

def start(data_dir: Path) -> tuple[subprocess.Popen, str, str]:
    secret = create_token(data_dir, "enroll")
    collector = start_collector(data_dir)
    return collector.proc, collector.grpc_address, secret


# -- the simulated workday -----------------------------------------------------------------

class Workday:
    """Records as the agent's sensor side would close them, in time order."""

    def __init__(self, start_ms: int, hours: float, seed: int):
        self.rng = random.Random(seed)
        self.start_ms = start_ms
        self.end_ms = start_ms + int(hours * 3_600_000)
        # (start, end, state) of the breaks; lunch is spent with the screen locked
        hour = 3_600_000
        self.breaks = [(start_ms + int(2.5 * hour), start_ms + int(2.75 * hour), IDLE),
                       (start_ms + 4 * hour, start_ms + int(4.75 * hour), LOCKED),
                       (start_ms + 7 * hour, start_ms + int(7.17 * hour), IDLE)]
        self.processes = {name: (self.rng.randint(300, 40_000),
                                 self.rng.randint(20, 900) << 20) for name in PROCESSES}

    def state_at(self, t: int) -> int:
        for begin, end, state in self.breaks:
            if begin <= t < end:
                return state
        return ACTIVE

    def title(self) -> tuple[str, str, str]:
        app, exe, templates = self.rng.choice(APPS)
        return app, exe, self.rng.choice(templates).format(self.rng.choice(WORDS))

    def records(self):
        """Yield (time_ms, [records closed at that time])."""
        t = self.start_ms
        focus_start, focus = t, self.title()
        next_focus = t + self.rng.randint(20_000, 90_000)
        next_process = t + 60_000
        state, state_start = ACTIVE, t
        counts = [0, 0, 0, 0]
        pid_of = {}
        while t < self.end_ms:
            t += 1000
            now_state = self.state_at(t)
            out = []
            if now_state == ACTIVE:
                counts[0] += self.rng.choice((0, 0, 1, 2, 3, 5))
                counts[1] += self.rng.random() < 0.1
                counts[2] += self.rng.randint(0, 12)
                counts[3] += self.rng.random() < 0.05
            if now_state != state:
                out.append(agent_pb2.ActivitySpan(start_ms=state_start, duration_ms=t - state_start,
                                                  state=state, key_presses=counts[0],
                                                  clicks=counts[1], mouse_moves=counts[2],
                                                  scrolls=counts[3]))
                if now_state == LOCKED or state == LOCKED:   # no window while locked
                    out.append(self._window(focus_start, t, focus, pid_of))
                    focus_start, focus = t, self.title()
                state, state_start, counts = now_state, t, [0, 0, 0, 0]
            if t >= next_focus and state == ACTIVE:
                out.append(self._window(focus_start, t, focus, pid_of))
                focus_start, focus = t, self.title()
                next_focus = t + self.rng.randint(20_000, 90_000)
            if t >= next_process:
                out.extend(self._process_sample(t))
                next_process += 60_000
            if out:
                yield t, out
        yield t, [self._window(focus_start, t, focus, pid_of),
                  agent_pb2.ActivitySpan(start_ms=state_start, duration_ms=t - state_start,
                                         state=state, key_presses=counts[0], clicks=counts[1],
                                         mouse_moves=counts[2], scrolls=counts[3])]

    def _window(self, start: int, end: int, focus, pid_of) -> agent_pb2.WindowSpan:
        app, exe, title = focus
        pid = pid_of.setdefault(app, self.rng.randint(1000, 60_000))
        return agent_pb2.WindowSpan(start_ms=start, duration_ms=end - start, app=app,
                                    title=title, pid=pid, exe=exe)

    def _process_sample(self, t: int) -> list:
        top = self.rng.sample(PROCESSES, 10)
        out = []
        busy = 0.0
        for rank, name in enumerate(top):
            pid, rss = self.processes[name]
            # as psutil reports them: RSS in whole pages, CPU time in clock ticks (10 ms)
            rss = max(8 << 20, rss + self.rng.randint(-1024, 1024) * 4096)
            self.processes[name] = (pid, rss)
            used = round(self.rng.expovariate(1 / (3.0 if rank < 4 else 0.2)), 2)
            busy += used
            out.append(agent_pb2.ProcessSample(time_ms=t, pid=pid, name=name, user="alice",
                                               cpu_percent=round(100 * used / 60, 3),
                                               rss_bytes=rss, cpu_seconds=used,
                                               interval_ms=60_000))
        out.append(agent_pb2.SystemTotals(time_ms=t, cpu_percent=round(100 * busy / 60 / 8, 2),
                                          mem_total_bytes=16 << 30,
                                          mem_used_bytes=self.rng.randint(5 << 30, 11 << 30),
                                          process_count=self.rng.randint(280, 340),
                                          cpu_count=8))
        return out


# -- the run -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=8.0, help="length of the workday")
    parser.add_argument("--flush", type=float, default=30.0,
                        help="flush interval in simulated seconds (agent default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pace", type=float, default=0.3,
                        help="real seconds between flushes: gRPC's flow-control pings "
                             "depend on real time, so batches must not arrive back to back")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="worklens-wire-"))
    collector, address, secret = start(work / "collector")
    proxy = ByteCountingProxy(address, frames=True)
    sink = None
    try:
        log(f"collector at {address}; agent talks to it through the byte counter at "
            f"{proxy.address}")
        data = work / "agent"
        cred = enroll(Connection(address=proxy.address), secret, data)
        enroll_bytes = proxy.total
        cfg = wl_config.load(agent_config.AgentConfig, None, env={},
                             overrides={"delivery": {"flush_interval": 86_400.0}})
        # the benchmark calls flush() itself every simulated flush interval
        sink = open_delivery(cfg, data, backoff=Backoff(initial=0.2))
        day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=8, minute=0, second=0,
                                                              microsecond=0)
        start_ms = int(day.timestamp() * 1000)
        workday = Workday(start_ms, args.hours, args.seed)
        flush_ms = int(args.flush * 1000)
        next_flush = start_ms + flush_ms
        events = batches = 0
        raw_by_kind: dict[str, int] = {}
        started = time.monotonic()
        for t, records in workday.records():
            while t >= next_flush:
                batches += len(sink.flush())
                wait_drained(sink)
                time.sleep(args.pace)
                next_flush += flush_ms
                if (next_flush - start_ms) % 3_600_000 < flush_ms:
                    log(f"  simulated {(next_flush - start_ms) / 3_600_000:.0f}h: {batches} "
                        f"batches, {events} events, {proxy.total - enroll_bytes} bytes")
            sink.write(records)
            events += len(records)
            for record in records:
                kind = type(record).__name__
                raw_by_kind[kind] = raw_by_kind.get(kind, 0) + record.ByteSize()
        batches += len(sink.flush())
        wait_drained(sink)
        elapsed = time.monotonic() - started
        wire = proxy.total - enroll_bytes
        stored = collector_count(work / "collector" / "worklens.db", cred.agent_id)
        if stored != events:
            raise SystemExit(f"the collector stored {stored} events, expected {events}")
        per_day = wire * 8.0 / args.hours
        log(f"{events} events in {batches} batches stored; {wire} bytes on the wire "
            f"({proxy.sent} up, {proxy.received} down) in {elapsed:.1f}s of real time; "
            f"enrollment took {enroll_bytes} bytes more")
        log(f"records before encoding (serialized sizes): {raw_by_kind}")
        frames = proxy.frame_totals()
        for direction, kinds in frames.items():
            log(f"HTTP/2 {direction} (incl. enrollment): " + ", ".join(
                f"{kind} {frames}x {size}B" for kind, (frames, size) in sorted(kinds.items())))
        print(json.dumps({"bytes_per_agent_day": round(per_day), "batches": batches,
                          "events": events, "bytes_up": proxy.sent,
                          "bytes_down": proxy.received,
                          "bytes_per_batch": round(wire / max(batches, 1), 1),
                          "flush_s": args.flush, "hours": args.hours,
                          "target_bytes": 100_000,
                          "frame_bytes": {direction: {kind: size for kind, (_, size)
                                                      in sorted(kinds.items())}
                                          for direction, kinds in frames.items()}}))
    finally:
        if sink is not None:
            sink.close()
        proxy.close()
        collector.terminate()
        collector.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def wait_drained(sink, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sink.spool.depth().batches:
        if time.monotonic() > deadline:
            raise SystemExit("the collector did not ack in time")
        time.sleep(0.002)


def collector_count(db: Path, agent_id: str) -> int:
    import sqlite3
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        total = 0
        for table, rows in (("window_spans", "count(*)"), ("activity_spans", "count(*)"),
                            ("process_blocks", "sum(samples)"), ("system_totals", "count(*)")):
            total += conn.execute(f"SELECT coalesce({rows}, 0) FROM {table} WHERE agent = "
                                  f"(SELECT id FROM agents WHERE agent_id = ?)",
                                  (agent_id,)).fetchone()[0]
        return total
    finally:
        conn.close()


if __name__ == "__main__":
    main()
