"""Starting a real `worklens-collector serve` process for a benchmark: its own
data dir, free ports on loopback, and the addresses it reports once ready."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Disables the summaries' rollup hook in the collector process, to measure the
# ingest path alone (benchmarks/ingest.py --without-rollups).
WITHOUT_ROLLUPS = "import worklens.collector.rollup as r; r.install = lambda store: None; "


def collector_cmd(*args: str, prelude: str = "") -> list[str]:
    main = "from worklens.collector.cli import main; main()"
    return [sys.executable, "-c", prelude + main, *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without WORKLENS_* settings that would change the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env.update(extra)
    return env


@dataclass
class Collector:
    proc: subprocess.Popen
    grpc_address: str
    http_url: str
    lines: list[str] = field(default_factory=list)


def store_args(data_dir: Path, db_url: str | None) -> list[str]:
    """The store options of a collector command: the data dir's SQLite, or ``db_url``."""
    return ["--data-dir", str(data_dir), *(["--db", db_url] if db_url else [])]


def start_collector(data_dir: Path, *, prelude: str = "", timeout: float = 120.0,
                    db_url: str | None = None) -> Collector:
    """Start `serve` on 127.0.0.1 with OS-chosen ports; wait for "collector ready"."""
    proc = subprocess.Popen(
        collector_cmd("serve", *store_args(data_dir, db_url), "--grpc-listen", "127.0.0.1:0",
                      "--http-listen", "127.0.0.1:0", prelude=prelude),
        env=clean_env(WORKLENS_LOG_LEVEL="INFO"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "collector ready" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or proc.poll() is not None:
        proc.kill()
        raise SystemExit("collector did not start:\n" + "".join(lines))

    def after(marker: str) -> str:
        return next(line.split(marker)[1].split()[0] for line in lines if marker in line)

    return Collector(proc, after("gRPC listening on "), after("HTTP listening on ").rstrip("/"),
                     lines)


def create_token(data_dir: Path, role: str, name: str = "benchmark",
                 db_url: str | None = None) -> str:
    """A new secret from `worklens-collector token create` on that store."""
    done = subprocess.run(collector_cmd("token", "create", "--role", role,
                                        *store_args(data_dir, db_url), "--name", name),
                          env=clean_env(), capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def stop_collector(proc: subprocess.Popen, data_dir: Path) -> None:
    """SIGTERM (a clean shutdown, as systemd does), kill if it hangs, drop its data."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data_dir, ignore_errors=True)


def collector_processes(pid: int) -> list:
    """The collector and its children (the store's writer process): what its CPU and
    memory figures must add up. Empty when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
