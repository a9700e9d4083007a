"""PASSIVE time for real: the real ``worklens-agent run --print`` on a real X
desktop, with a real mpv (mpv-mpris) on a real ``dbus-run-session`` session bus,
and a real PulseAudio with a null source recorded by ``parecord``; the keyboard
and mouse rest past a 2 s idle threshold, then come back (xdotool)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from desktop import Desktop, wait_for
from test_run_print import RunningAgent, merge_continued

pytestmark = pytest.mark.system

IDLE_THRESHOLD = 2.0
MEDIA_PROGRAMS = ("mpv", "dbus-run-session", "playerctl")
CALL_PROGRAMS = ("pulseaudio", "pactl", "parecord")
MPRIS_PLUGIN = Path("/etc/mpv/scripts/mpris.so")


def _require(programs) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install mpv mpv-mpris dbus-daemon "
                    "playerctl pulseaudio pulseaudio-utils)")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def session_bus():
    """The address of a real session bus from ``dbus-run-session`` (it lives as long
    as the ``sleep`` it runs)."""
    _require(MEDIA_PROGRAMS)
    proc = subprocess.Popen(["dbus-run-session", "--", "sh", "-c",
                             'echo "BUS $DBUS_SESSION_BUS_ADDRESS"; exec sleep 600'],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith("BUS unix:"), line
    yield line.split(" ", 1)[1].strip()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


@pytest.fixture
def pulse(tmp_path):
    """A real PulseAudio with a null source "mic" (and a null sink, whose .monitor
    must not count as a microphone); yields the PULSE_SERVER address."""
    _require(CALL_PROGRAMS)
    socket = tmp_path / "pulse.sock"
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
         f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
         "--load=module-null-source source_name=mic",
         "--load=module-null-sink sink_name=speakers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)})
    server = f"unix:{socket}"
    env = {**os.environ, "PULSE_SERVER": server}
    wait_for(lambda: subprocess.run(["pactl", "info"], env=env, capture_output=True,
                                    check=False).returncode == 0, what="pulseaudio to answer")
    yield server
    _stop(proc)


def activity_states(agent: RunningAgent) -> list[tuple[str, str, float, float]]:
    """(state, reason, start s, end s) of the printed activity spans, parts joined."""
    return [(a["state"], a["reason"], a["start_ms"] / 1000,
             (a["start_ms"] + a["duration_ms"]) / 1000)
            for a in merge_continued(agent.records("activity"))]


def test_a_focused_playing_video_is_passive_media_and_pausing_it_is_idle(
        desktop: Desktop, session_bus, tmp_path):
    if not MPRIS_PLUGIN.exists():
        pytest.skip("needs mpv-mpris (apt-get install mpv-mpris)")
    env = {**desktop.env, "DBUS_SESSION_BUS_ADDRESS": session_bus}
    title = "e2e Training video 51c3"
    # --stop-screensaver=no: by default mpv resets X's screensaver timer while it
    # plays, which X's idle counter reports as input (the agent then sees ACTIVE)
    mpv = subprocess.Popen(["mpv", "--vo=x11", "--ao=null", "--stop-screensaver=no", "--loop",
                            f"--title={title}", "av://lavfi:testsrc=size=320x240:rate=10"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def status() -> str:
            return subprocess.run(["playerctl", "-p", "mpv", "status"], env=env,
                                  capture_output=True, text=True, check=False).stdout.strip()
        wait_for(lambda: status() == "Playing", what="mpv to play (MPRIS)")
        wid = wait_for(lambda: desktop.find_window(title), what="mpv's window")
        desktop.run("xdotool", "windowactivate", "--sync", str(wid))
        desktop.move_mouse(300, 300)
        agent = RunningAgent(desktop, tmp_path / "data", DBUS_SESSION_BUS_ADDRESS=session_bus)
        agent.wait_started()
        time.sleep(IDLE_THRESHOLD + 2.5)          # hands off: the video plays on
        subprocess.run(["playerctl", "-p", "mpv", "pause"], env=env, check=True)
        paused = time.time()
        wait_for(lambda: status() == "Paused", what="mpv to pause")
        time.sleep(2.0)
        desktop.move_mouse(320, 320)              # back at the mouse
        moved = time.time()
        time.sleep(1.5)
        assert agent.stop() == 0, "".join(agent.stderr)
    finally:
        _stop(mpv)
    states = activity_states(agent)
    kinds = [(s, r) for s, r, _, _ in states]
    assert ("PASSIVE", "MEDIA") in kinds, states
    i = kinds.index(("PASSIVE", "MEDIA"))
    assert kinds[i + 1:i + 3] == [("IDLE", "UNSPECIFIED"), ("ACTIVE", "UNSPECIFIED")], states
    passive, idle, active = states[i:i + 3]
    assert passive[3] - passive[2] >= IDLE_THRESHOLD + 1.5     # the whole hands-off time
    assert abs(idle[2] - paused) <= 1.0, (states, paused)    # IDLE from the pause on
    assert abs(active[2] - moved) <= 1.0, (states, moved)
    assert "Training video" not in "".join(agent.stdout).replace(title, "")   # title only


def test_a_busy_microphone_is_passive_call_until_recording_stops(
        desktop: Desktop, pulse, tmp_path):
    env = {**desktop.env, "PULSE_SERVER": pulse}
    status = subprocess.run(
        [*RunningAgent.command(), "status", "--json", "--data-dir", str(tmp_path / "s")],
        env={k: v for k, v in env.items() if not k.startswith("WORKLENS_")},
        capture_output=True, text=True, timeout=60)
    sensors = {s["name"]: s for s in json.loads(status.stdout)["sensors"]}
    assert sensors["passive call"]["available"], sensors
    assert sensors["passive call"]["backend"] == "pulseaudio"

    win = desktop.open_window("e2e call notes 51c3")
    desktop.activate(win)
    recorder = subprocess.Popen(["parecord", "--device=mic", os.devnull], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        desktop.move_mouse(200, 200)
        agent = RunningAgent(desktop, tmp_path / "data", PULSE_SERVER=pulse)
        agent.wait_started()
        time.sleep(IDLE_THRESHOLD + 3.5)          # hands off, microphone open
    finally:
        _stop(recorder)
    stopped = time.time()
    time.sleep(4.0)                               # pactl is asked every 2.5 s here
    desktop.move_mouse(220, 220)
    moved = time.time()
    time.sleep(1.5)
    assert agent.stop() == 0, "".join(agent.stderr)
    states = activity_states(agent)
    kinds = [(s, r) for s, r, _, _ in states]
    assert ("PASSIVE", "CALL") in kinds, states
    i = kinds.index(("PASSIVE", "CALL"))
    assert kinds[i + 1:i + 3] == [("IDLE", "UNSPECIFIED"), ("ACTIVE", "UNSPECIFIED")], states
    assert stopped - 0.5 <= states[i + 1][2] <= stopped + 3.5, (states, stopped)
    assert abs(states[i + 2][2] - moved) <= 1.0, (states, moved)


class StandInInhibitService:
    """One D-Bus service the agent asks about inhibitors, on a real session bus (no
    GNOME session or desktop power manager runs here: xfce4-power-manager crashes
    headless when an inhibition ends): ``org.gnome.SessionManager`` answering
    ``IsInhibited(flags)``, or ``org.freedesktop.PowerManagement`` answering
    ``HasInhibit()``. A stand-in for the one call the agent makes of each."""

    def __init__(self, address: str, name: str = "org.gnome.SessionManager") -> None:
        import threading

        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self.inhibited_flags = 0
        self.asked: list[tuple[str, tuple]] = []
        self._conn = open_dbus_connection(bus=address)
        self._conn.send_and_get_reply(message_bus.RequestName(name))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from jeepney import MessageType, new_method_return

        while True:
            try:
                msg = self._conn.receive()
            except Exception:   # the connection closed at the end of the test
                return
            h = msg.header
            member = h.fields.get(3)                 # 3: the member header field
            if h.message_type != MessageType.method_call:
                continue
            if member == "IsInhibited":
                answer = bool(self.inhibited_flags & msg.body[0])
            elif member == "HasInhibit":
                answer = bool(self.inhibited_flags)
            else:
                continue
            self.asked.append((member, tuple(msg.body)))
            self._conn.send(new_method_return(msg, "b", (answer,)))

    def close(self) -> None:
        self._conn.close()


def test_an_idle_inhibitor_held_in_the_gnome_session_is_seen(session_bus, monkeypatch):
    from worklens.agent.sensors.passive import INHIBITOR
    from worklens.agent.sensors.passive._dbus import IdleInhibitors

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
    manager = StandInInhibitService(session_bus)
    signal_ = IdleInhibitors.open()
    try:
        assert signal_.available and signal_.reason == INHIBITOR, signal_.detail
        assert signal_.detail == "GNOME session manager"
        assert signal_.engaged(None) is False
        manager.inhibited_flags = 8 | 4          # idle (8) and suspend (4) inhibited
        assert signal_.engaged(None) is True
        manager.inhibited_flags = 4              # suspend only: not an idle inhibitor
        assert signal_.engaged(None) is False
        assert manager.asked == [("IsInhibited", (8,))] * 3   # the idle flag only
    finally:
        signal_.close()
        manager.close()



def test_an_inhibition_held_with_the_desktops_power_manager_is_seen(session_bus, monkeypatch):
    """Xfce's and KDE's power managers answer org.freedesktop.PowerManagement.Inhibit
    ``HasInhibit`` (a player that inhibits through them, or through
    org.freedesktop.ScreenSaver where they forward it)."""
    from worklens.agent.sensors.passive._dbus import FDO_PM, IdleInhibitors

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
    manager = StandInInhibitService(session_bus, FDO_PM[1])
    signal_ = IdleInhibitors.open()
    try:
        assert signal_.available, signal_.detail
        assert signal_.detail == "freedesktop power manager (Xfce, KDE)"
        assert signal_.engaged(None) is False
        manager.inhibited_flags = 1
        assert signal_.engaged(None) is True
        manager.inhibited_flags = 0
        assert signal_.engaged(None) is False
        assert [member for member, _ in manager.asked] == ["HasInhibit"] * 3
    finally:
        signal_.close()
        manager.close()


def test_no_inhibit_service_on_the_session_bus_says_so(session_bus, monkeypatch):
    from worklens.agent.sensors.passive._dbus import IdleInhibitors

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
    signal_ = IdleInhibitors.open()
    assert not signal_.available
    assert "neither a GNOME session manager nor a power manager" in signal_.detail
