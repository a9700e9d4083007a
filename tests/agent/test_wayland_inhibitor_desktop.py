"""PASSIVE on a real Wayland desktop: a headless sway 1.7, a real mpv playing a
generated video through Wayland (``--vo=wlshm``), which holds a real
``zwp_idle_inhibitor_v1`` while it plays, and the real ``worklens-agent run
--print`` as the desktop's user. sway 1.7's idle protocol goes silent under an
inhibitor; the agent asks sway's IPC which window holds one.

Without a session bus the inhibitor is the only passive signal; with mpv-mpris on
a real session bus of the desktop's user, the reason is media (the window has no
pid on Wayland: the player is matched by its app id)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from polling import wait_for
from sway import Sway, agent_desktop
from test_passive_desktop import MPRIS_PLUGIN
from test_run_print import merge_continued

pytestmark = pytest.mark.system

IDLE_THRESHOLD = 2.0
VIDEO, NOTES = "wl Training video 7f1a", "wl Notes 7f1a"


@pytest.fixture
def sway():
    yield from agent_desktop()


class Mpv:
    """mpv on the sway desktop, paused and resumed through its IPC socket."""

    def __init__(self, desk: Sway, *args: str, **env: str) -> None:
        self.socket_path = str(desk.work / "mpv.sock")
        self.proc = subprocess.Popen(desk.command(
            ["mpv", "--no-config", "--vo=wlshm", "--ao=null", "--loop=inf", f"--title={VIDEO}",
             f"--input-ipc-server={self.socket_path}", *args,
             "av://lavfi:testsrc=size=320x240:rate=10"]),
            env={**desk.env, **env}, cwd="/", stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        desk.clients.append(self.proc)
        self._desk = desk

    def inhibits(self) -> bool:
        return any(w["name"] == VIDEO and w.get("inhibit_idle") for w in self._desk.windows())

    def pause(self, paused: bool) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.socket_path)
            command = {"command": ["set_property", "pause", paused]}
            sock.sendall(json.dumps(command).encode() + b"\n")
            assert b'"success"' in sock.recv(4096)
        wait_for(lambda: self.inhibits() != paused, what="mpv's inhibitor to follow")


@contextlib.contextmanager
def running_agent(desk: Sway, **extra: str) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """The agent as the desktop's user; killed on the way out if still running."""
    agent, err = start_agent(desk, **extra)
    try:
        yield agent, err
    finally:
        if agent.poll() is None:
            agent.kill()


def watch_then_pause(mpv: Mpv) -> float:
    """Hands off while the video plays past the idle threshold, then pause it and
    stay hands off: the time of the pause."""
    time.sleep(IDLE_THRESHOLD + 2.5)
    mpv.pause(True)
    paused = time.time()
    time.sleep(IDLE_THRESHOLD + 0.5)
    return paused


def start_agent(desk: Sway, **extra: str) -> tuple[subprocess.Popen, list[str]]:
    env = {**desk.env, **extra, "WORKLENS_SAMPLING_WINDOW_INTERVAL": "250ms",
           "WORKLENS_SAMPLING_IDLE_THRESHOLD": f"{IDLE_THRESHOLD:g}s",
           "WORKLENS_DELIVERY_FLUSH_INTERVAL": "1s"}
    proc = subprocess.Popen(desk.agent("run", "--print", "--data-dir", str(desk.work / "data")),
                            env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    wait_for(lambda: any("sampling every" in line for line in err) or proc.poll() is not None,
             timeout=60, what="the agent to start")
    assert proc.poll() is None, "".join(err)
    assert "passive inhibitor: sway-ipc" in "".join(err), "".join(err)
    return proc, err


def stop_agent(agent: subprocess.Popen, err: list[str]) -> list[dict]:
    agent.terminate()
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, "".join(err)
    return [json.loads(line) for line in out.splitlines()]


def activity(records: list[dict]) -> list[tuple[str, str, float, float]]:
    """(state, reason, start s, end s) of the printed activity spans, parts joined."""
    return [(a["state"], a["reason"], a["start_ms"] / 1000,
             (a["start_ms"] + a["duration_ms"]) / 1000)
            for a in merge_continued([r for r in records if r["record"] == "activity"])]


def check_passive_then_idle(states: list, reason: str, paused: float) -> None:
    """A passive stretch of the hands-off time, then IDLE from the pause."""
    kinds = [(s, r) for s, r, _, _ in states]
    assert ("PASSIVE", reason) in kinds, states
    i = kinds.index(("PASSIVE", reason))
    passive, idle = states[i], states[i + 1]
    assert passive[3] - passive[2] >= IDLE_THRESHOLD + 2.0, states   # the hands-off time
    assert idle[:2] == ("IDLE", "UNSPECIFIED"), states
    assert abs(idle[2] - paused) <= 1.0, (states, paused)             # idle from the pause


@pytest.fixture
def user_bus(sway):
    """A real session bus of the desktop's user (dbus-run-session as that user)."""
    proc = subprocess.Popen(sway.command(["dbus-run-session", "--", "sh", "-c",
                                          'echo "BUS $DBUS_SESSION_BUS_ADDRESS"; exec sleep 600']),
                            env=sway.env, cwd="/", stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith("BUS unix:"), line
    yield line.split(" ", 1)[1].strip()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def test_a_focused_video_on_sway_is_passive_inhibitor_and_typing_beside_it_active(sway):
    sway.open_window(NOTES)
    mpv = Mpv(sway)
    wait_for(mpv.inhibits, what="mpv playing and holding an idle inhibitor")
    sway.focus(VIDEO)
    with running_agent(sway) as (agent, err):
        paused = watch_then_pause(mpv)
        mpv.pause(False)
        sway.focus(NOTES)                              # the video plays beside the notes
        typing_from = time.time()
        sway.type("k")
        for _ in range(8):                            # typing now and then
            time.sleep(0.5)
            sway.type("k")
        typing_to = time.time()
        records = stop_agent(agent, err)
    states = activity(records)
    check_passive_then_idle(states, "INHIBITOR", paused)
    # typing into another window while the video plays and inhibits: active, not passive
    # (sway's tree is read once a second: the switch shows within about that)
    during = [s for s in states if s[3] > typing_from + 1.5 and s[2] < typing_to - 0.5]
    assert during and all(s[0] == "ACTIVE" for s in during), (states, typing_from, typing_to)
    assert "Training video" not in json.dumps([r for r in records if r["record"] != "window"])


def test_a_focused_mpris_player_on_sway_is_passive_media(sway, user_bus):
    if not MPRIS_PLUGIN.exists():
        pytest.skip("needs mpv-mpris (apt-get install mpv-mpris)")
    bus = {"DBUS_SESSION_BUS_ADDRESS": user_bus}
    mpv = Mpv(sway, f"--script={MPRIS_PLUGIN}", **bus)
    wait_for(mpv.inhibits, what="mpv playing")
    sway.focus(VIDEO)
    with running_agent(sway, **bus) as (agent, err):
        assert "passive media: mpris" in "".join(err), "".join(err)
        paused = watch_then_pause(mpv)
        records = stop_agent(agent, err)
    states = activity(records)
    check_passive_then_idle(states, "MEDIA", paused)
    assert ("PASSIVE", "INHIBITOR") not in [(s, r) for s, r, _, _ in states]   # media first
