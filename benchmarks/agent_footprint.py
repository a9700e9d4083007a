"""Agent footprint: CPU and memory of the real ``worklens-agent run --print`` at
default intervals on a real X desktop, while someone works.

    python benchmarks/agent_footprint.py --duration 120

Starts its own Xvfb + openbox desktop with a few xterms, runs the agent
(stdout to a file, to count the spans it closed), switches focus every 5 s and
types a few characters every second with xdotool, and samples the agent's CPU
time and RSS with psutil. Prints progress; the last line is one JSON object:
``{"cpu_percent": ..., "rss_mb": ..., "spans": ..., "load_1m": ...}`` where
cpu_percent is the average share of one core over the run (target <= 0.2),
rss_mb the peak resident memory (target <= 50) and load_1m the machine's load
average at the end (other work on the machine inflates cpu_percent).
``--no-typing`` isolates the sampling cost; ``--input-backend pynput`` measures
pynput's X11 listeners instead of the agent's own X RECORD reader.

``--desktop sway`` does the same on a real headless sway (Wayland, wlroots; see
tests/sway.py): foot terminals, focus moved with swaymsg, typing with wtype, the
agent on its Wayland backends (foreign-toplevel window, idle notifications) and
run as the desktop's ordinary user when this runs as root.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sway as sway_desktop  # noqa: E402
from desktop import Desktop, missing_programs, wait_for  # noqa: E402

AGENT = str(Path(sys.executable).with_name("worklens-agent"))
WARMUP = 3.0   # start-up (imports) is not the steady-state footprint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds to measure")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--no-typing", action="store_true",
                        help="switch focus only (to tell sampling cost from input-event cost)")
    parser.add_argument("--input-backend", choices=("x11", "pynput", "none"),
                        help="force the input backend (WORKLENS_INPUT_BACKEND), e.g. pynput "
                             "to compare with the X RECORD reader")
    parser.add_argument("--desktop", choices=("x11", "sway"), default="x11",
                        help="x11: Xvfb + openbox + xterm (default); sway: headless sway + foot")
    args = parser.parse_args()
    if args.desktop == "sway":
        return run_on_sway(args)
    missing = missing_programs()
    if missing:
        print(f"needs {', '.join(missing)} (apt-get install xvfb openbox xdotool xterm)",
              file=sys.stderr)
        return 1
    with Desktop.start() as desk, tempfile.TemporaryDirectory() as tmp:
        windows = [desk.open_window(f"bench-window-{i}") for i in range(args.windows)]
        desk.activate(windows[0])
        out_path = Path(tmp) / "spans.jsonl"
        env = {k: v for k, v in desk.env.items() if not k.startswith("WORKLENS_")}
        if args.input_backend:
            env["WORKLENS_INPUT_BACKEND"] = args.input_backend
        with out_path.open("w") as out:
            agent = subprocess.Popen([AGENT, "run", "--print", "--data-dir", str(Path(tmp) / "d")],
                                     env=env, stdout=out, stderr=subprocess.PIPE, text=True)
            try:
                figures = measure(desk.display, lambda i: desk.activate(windows[i]),
                                  len(windows), desk.type, agent, args.duration,
                                  not args.no_typing)
            finally:
                agent.send_signal(signal.SIGTERM)
                code = agent.wait(timeout=60)
        if code != 0:
            print(f"agent exited with {code}: {agent.stderr.read()}", file=sys.stderr)
            return 1
        records = [json.loads(line) for line in out_path.read_text().splitlines()]
    return report(figures, records)


def run_on_sway(args: argparse.Namespace) -> int:
    missing = sway_desktop.missing_programs()
    if missing:
        print(f"needs {', '.join(missing)} (apt-get install sway foot wtype)", file=sys.stderr)
        return 1
    with sway_desktop.Sway.start() as desk:
        python = sway_desktop.python_for(desk.user)
        if python is None:
            print(f"user {desk.user.pw_name} cannot read this project: the agent runs as "
                  "this process's user in the sway session instead")
        titles = [f"bench-window-{i}" for i in range(args.windows)]
        for title in titles:
            desk.open_window(title)
        desk.focus(titles[0])
        out_path = desk.work / "spans.jsonl"
        env = {k: v for k, v in desk.env.items() if not k.startswith("WORKLENS_")}
        with out_path.open("w") as out:
            os.chown(out_path, desk.user.pw_uid, desk.user.pw_gid)
            run_args = ("run", "--print", "--data-dir", str(desk.work / "d"))
            argv = desk.command(sway_desktop.agent_argv(python, *run_args)) if python \
                else [AGENT, *run_args]
            agent = subprocess.Popen(argv, env=env, cwd="/", stdout=out,
                                     stderr=subprocess.PIPE, text=True)
            try:
                figures = measure(f"wayland {desk.wayland_display}",
                                  lambda i: desk.focus(titles[i]), len(titles),
                                  lambda text, delay_ms: desk.type(text, delay_ms=delay_ms),
                                  agent, args.duration, not args.no_typing)
            finally:
                agent.send_signal(signal.SIGTERM)
                code = agent.wait(timeout=60)
        if code != 0:
            print(f"agent exited with {code}: {agent.stderr.read()}", file=sys.stderr)
            return 1
        records = [json.loads(line) for line in out_path.read_text().splitlines()]
    return report(figures, records)


def report(figures: dict, records: list[dict]) -> int:
    figures["spans"] = sum(r["record"] in ("window", "activity") for r in records)
    figures["load_1m"] = round(os.getloadavg()[0], 2)   # a busy machine inflates cpu_percent
    print(f"closed spans: {figures['spans']} ({len(records)} records in all); "
          f"load average {figures['load_1m']:.2f} on {os.cpu_count()} cores")
    print(json.dumps(figures))
    return 0


def measure(where: str, activate, windows: int, type_text, agent: subprocess.Popen,
            duration: float, typing: bool = True) -> dict:
    """Focus window ``(n + 1) % windows`` every 5 s (``activate(n)``), type a few
    characters every second (``type_text(text, delay_ms=...)``), and measure."""
    proc = psutil.Process(agent.pid)
    wait_for(lambda: agent.poll() is not None or "sampling every" in agent.stderr.readline(),
             timeout=60, what="the agent to start")
    if agent.poll() is not None:
        raise SystemExit(f"agent exited early with {agent.returncode}")
    print(f"agent pid {agent.pid} on display {where}; warming up {WARMUP:g}s")
    time.sleep(WARMUP)
    cpu0, t0 = _cpu(proc), time.monotonic()
    peak_rss, tick, focus = 0, 0, 0
    while time.monotonic() - t0 < duration:
        tick += 1
        time.sleep(1.0)
        if tick % 5 == 0:
            focus = (focus + 1) % windows
            activate(focus)
        if typing:
            type_text("ab c", delay_ms=30)
        peak_rss = max(peak_rss, proc.memory_info().rss)
        if tick % 15 == 0:
            elapsed = time.monotonic() - t0
            print(f"{elapsed:5.0f}s  cpu {100 * (_cpu(proc) - cpu0) / elapsed:.3f}% of one core"
                  f"  rss {peak_rss / 2**20:.1f} MB  load {os.getloadavg()[0]:.2f}", flush=True)
    elapsed = time.monotonic() - t0
    return {"cpu_percent": round(100 * (_cpu(proc) - cpu0) / elapsed, 3),
            "rss_mb": round(peak_rss / 2**20, 1)}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


if __name__ == "__main__":
    sys.exit(main())
