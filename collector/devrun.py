"""``make run`` (``python -m worklens.collector.devrun``): a collector on the embedded
SQLite store and an enrolled agent for this desktop session, together, so a
newcomer sees Worklens work in one command.

Everything lives in ``.worklens-dev/`` next to the checkout (gitignored): the
collector's data dir, the agent's data dir and both logs. The collector
listens on 127.0.0.1 (the usual ports when free, otherwise any free port);
the agent enrolls itself afresh each time (safe: the same agent id comes
back) and runs with the desktop it finds (``DISPLAY`` as it is — without one
it still records processes and system totals). After about one flush
interval a first summary is printed. Ctrl-C stops the agent first (so its
last spans are delivered), then the collector — and so do SIGTERM, SIGHUP (a
closed terminal) and the end of the ``make`` that started us: the children run
in sessions of their own and would otherwise be left running, holding the
ports and the store.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_DIR = Path(os.environ.get("WORKLENS_DEV_DIR") or ROOT / ".worklens-dev")
FLUSH_INTERVAL = "10s"   # fresher than the 30 s default, so the first summary comes quickly
START_TIMEOUT_S = 60.0
FIRST_SUMMARY_WAIT_S = 90.0


def say(message: str = "") -> None:
    print(message, flush=True)


def _port_or_any(port: int) -> str:
    """127.0.0.1:PORT when it is free, else 127.0.0.1:0 (the OS picks)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return "127.0.0.1:0"
    return f"127.0.0.1:{port}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env.update(extra)
    return env


def _cli(program: str, *args: str) -> list[str]:
    module = "worklens.collector.cli" if program == "collector" else "worklens.agent.cli"
    return [sys.executable, "-c", f"from {module} import main; main()", *args]


def shown_command(program: str) -> str:
    """``worklens-PROGRAM`` as the person who ran ``make run`` can paste it: the console
    script sits beside this Python (``.venv/bin``), which is not on their PATH, and
    their shell may be anywhere (``make -C``), so the path is absolute."""
    script = Path(sys.executable).absolute().parent / f"worklens-{program}"
    if script.is_file():
        return shlex.quote(str(script))
    return shlex.join([str(Path(sys.executable).absolute()), "-m", f"worklens.{program}"])


def _run(program: str, *args: str) -> str:
    done = subprocess.run(_cli(program, *args), env=_env(), capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"make run: `worklens-{program} {args[0]}` failed: "
                         f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class Child:
    """A long-running child with its output in a log file; its own process group
    so that Ctrl-C reaches only us and we stop the children in order."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]):
        self.name = name
        self.log_path = log_path
        self.lines: list[str] = []
        self._log = log_path.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._log.write(line)
            self._log.flush()

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for line in list(self.lines):
                    if text in line:
                        return line
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        except BaseException:   # Ctrl-C or a signal while starting: nobody else stops it
            self.stop()
            raise
        self.stop()
        tail = "".join(self.lines[-15:])
        raise SystemExit(f"make run: the {self.name} did not start (log: {self.log_path}):\n"
                         f"{tail}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_collector() -> tuple[Child, str, str]:
    data = DEV_DIR / "collector"
    child = Child("collector", _cli("collector", "serve", "--data-dir", str(data),
                                    "--grpc-listen", _port_or_any(50051),
                                    "--http-listen", _port_or_any(8080)),
                  DEV_DIR / "collector.log", _env())
    child.wait_for("collector ready")
    grpc_line = child.wait_for("gRPC listening on ")
    http_line = child.wait_for("HTTP listening on ")
    grpc_address = grpc_line.split("gRPC listening on ")[1].split()[0]
    http_url = http_line.split("HTTP listening on ")[1].split()[0].rstrip("/")
    return child, grpc_address, http_url


def token(role: str) -> str:
    out = _run("collector", "token", "create", "--role", role, "--name", "make run",
               "--expires", "30d", "--data-dir", str(DEV_DIR / "collector"))
    return out.split()[0]


def start_agent(grpc_address: str) -> tuple[Child, str]:
    data = DEV_DIR / "agent"
    _run("agent", "enroll", "--collector", grpc_address, "--secret", token("enroll"),
         "--data-dir", str(data))
    agent_id = json.loads((data / "credential.json").read_text())["agent_id"]
    env = _env(WORKLENS_DELIVERY_FLUSH_INTERVAL=os.environ.get(
        "WORKLENS_DELIVERY_FLUSH_INTERVAL", FLUSH_INTERVAL))
    child = Child("agent", _cli("agent", "run", "--data-dir", str(data)),
                  DEV_DIR / "agent.log", env)
    child.wait_for("sampling every")
    return child, agent_id


def first_summary(http_url: str, viewer: str) -> str:
    """`worklens-collector summary --from today --by app`, as an operator runs it."""
    done = subprocess.run(_cli("collector", "summary", "--from", "today", "--by", "app",
                               "--url", http_url, "--token", viewer),
                          env=_env(), capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        return done.stdout.rstrip() or "(nothing recorded yet)"
    return f"(summary not available yet: {done.stderr.strip()})"


class Stop(Exception):
    """Time to stop both children (a signal, or our parent is gone)."""


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main() -> int:
    # SIGINT too: a background job (`make run &` in a script) starts with it ignored,
    # and then `kill -INT` would not stop us
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    display = os.environ.get("DISPLAY") or "none (processes and system totals only)"
    say(f"Worklens dev run — data and logs in {DEV_DIR}")
    collector = agent = None
    try:
        collector, grpc_address, http_url = start_collector()
        say(f"  collector: gRPC {grpc_address}, HTTP {http_url}")
        agent, agent_id = start_agent(grpc_address)
        viewer = token("viewer")
        say(f"  agent:     {agent_id} on display {display}, delivering every "
            f"{os.environ.get('WORKLENS_DELIVERY_FLUSH_INTERVAL', FLUSH_INTERVAL)}")
        say()
        say(f"  dashboard: {http_url}/   (paste the viewer token when asked)")
        say(f"  API:       {http_url}/api/v1/summary?from=today&by=app")
        say(f"  token:     {viewer}   (viewer role, expires in 30 days)")
        say(f"  try:       {shown_command('collector')} summary --from today --by app "
            f"--url {http_url} --token {viewer}")
        say(f"             {shown_command('agent')} status --data-dir "
            f"{shlex.quote(str((DEV_DIR / 'agent').absolute()))}")
        say()
        say("Recording; a first summary follows once spans arrive. Ctrl-C stops both.")
        summary = ""
        deadline = time.monotonic() + FIRST_SUMMARY_WAIT_S
        while time.monotonic() < deadline:
            _sleep_watching(10.0, collector, agent)
            summary = first_summary(http_url, viewer)
            if "no data" not in summary and not summary.startswith("(summary not available"):
                break
        say()
        say("First summary (today, by app):")
        say(summary)
        if "no data" in summary:
            say("  (a window's span reaches the collector when focus moves on: switch windows "
                "and run the `try:` command above)")
        while True:
            _sleep_watching(3600.0, collector, agent)
    except Stop:   # Ctrl-C too: SIGINT raises Stop, not KeyboardInterrupt
        say()
        say("stopping the agent (delivering its last spans), then the collector...")
    finally:
        codes = [child.stop() for child in (agent, collector) if child is not None]
    say("stopped." if all(code == 0 for code in codes) else
        f"stopped (exit codes {codes}; logs in {DEV_DIR})")
    return 0


PARENT = os.getppid()


def _sleep_watching(seconds: float, *children: Child) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.getppid() != PARENT:
            raise Stop("the make that started us has gone")
        for child in children:
            if child.proc.poll() is not None:
                raise SystemExit(f"make run: the {child.name} exited unexpectedly "
                                 f"(code {child.proc.returncode}); log: {child.log_path}\n"
                                 + "".join(child.lines[-15:]))
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
