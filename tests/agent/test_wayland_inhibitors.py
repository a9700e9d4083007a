"""Idle inhibitors on Wayland without a compositor that has them all.

``ext_idle_notifier_v1`` version 2 (sway 1.10, wlroots 0.18) does not run on
this machine (Debian 12: sway 1.7), so the agent's real Wayland client talks to
a protocol-level fake compositor (tests/fake_wayland.py): the binding, the two
timers and the decision "an inhibitor is held" are checked on it; not verified
on a real compositor. What sway 1.7 does is checked for real in
test_wayland_inhibitor_desktop.py; here the logic in between, on a fake clock."""

from __future__ import annotations

import pytest
from fake_wayland import FakeCompositor
from polling import wait_for
from worklens.agent.sensors import _swayipc, _wayland
from worklens.agent.sensors.idle import _wayland as idle_wayland
from worklens.agent.sensors.idle._wayland import HANDOVER_S, HiddenInput
from worklens.agent.sensors.passive import _wayland as passive_wayland


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_v2(monkeypatch):
    with FakeCompositor(notifier_version=2) as fake:
        monkeypatch.setenv("WAYLAND_DISPLAY", fake.path)
        monkeypatch.delenv("SWAYSOCK", raising=False)
        yield fake


def test_version_2_idle_time_comes_from_the_timer_inhibitors_do_not_stop(fake_v2):
    idle = idle_wayland.open(use_logind=False)
    try:
        assert sorted(fake_v2.notifications) == ["input", "plain"]   # one timer of each
        assert fake_v2.timeouts == [1000, 1000]
        assert "input still seen" in idle.detail
        assert idle.read().idle_seconds == 0.0
        fake_v2.send("input", "idled")          # no input for a second; a video plays on
        wait_for(lambda: idle.read().idle_seconds >= 1.5, timeout=5, what="idle time")
        fake_v2.send("input", "resumed")
        wait_for(lambda: idle.read().idle_seconds == 0.0, timeout=5, what="input again")
    finally:
        idle.close()


def test_version_2_shows_an_inhibitor_when_only_the_input_timer_idles(fake_v2):
    signal = passive_wayland.open()
    try:
        assert (signal.available, signal.backend) == (True, "wayland")
        assert not signal.engaged(None)
        fake_v2.send("input", "idled")
        # both timers idle together when nothing inhibits: not yet an inhibitor
        assert not signal.engaged(None)
        wait_for(lambda: signal.engaged(None), timeout=5, what="the held timer to count")
        fake_v2.send("plain", "idled")          # the inhibitor is released
        wait_for(lambda: not signal.engaged(None), timeout=5, what="no inhibitor")
        fake_v2.send("plain", "resumed")
        fake_v2.send("input", "resumed")        # input again, and the video plays on
        wait_for(lambda: not signal.engaged(None), timeout=5, what="input to count")
        fake_v2.send("input", "idled")          # hands off once more: held again
        wait_for(lambda: signal.engaged(None), timeout=5, what="the inhibitor again")
    finally:
        signal.close()


def test_version_1_cannot_see_inhibitors_and_says_so(monkeypatch):
    with FakeCompositor(notifier_version=1) as fake:
        monkeypatch.setenv("WAYLAND_DISPLAY", fake.path)
        monkeypatch.delenv("SWAYSOCK", raising=False)
        idle = idle_wayland.open(use_logind=False)
        signal = passive_wayland.open()
        try:
            assert list(fake.notifications) == ["plain"]
            assert "cannot be seen here" in idle.detail
            assert not signal.available
            assert "version 2" in signal.detail and "not sway" in signal.detail
            conn = _wayland.shared()
            assert conn.session().inhibited() is None
            _wayland.release(conn)
        finally:
            idle.close()
            signal.close()


FOCUSED = _swayipc.Inhibitors(focused=True, any=True)
BESIDE = _swayipc.Inhibitors(focused=False, any=True)
NONE = _swayipc.Inhibitors(focused=False, any=False)


def test_hidden_input_counts_from_when_the_focused_inhibitor_was_first_seen():
    clock = Clock()
    hidden = HiddenInput(clock)
    assert hidden.idle_seconds(NONE, 0.0) == 0.0
    assert hidden.idle_seconds(FOCUSED, 0.0) == 0.0          # the click on "play"
    clock.now += 30
    assert hidden.idle_seconds(FOCUSED, 0.0) == 30.0          # watched, hands off
    # an idle stretch the compositor already saw before the inhibitor is kept
    assert hidden.idle_seconds(FOCUSED, 45.0) == 45.0


def test_after_the_inhibitor_the_compositors_idled_carries_the_stretch_on():
    clock = Clock()
    hidden = HiddenInput(clock)
    hidden.idle_seconds(FOCUSED, 0.0)
    clock.now += 60                                           # paused after a minute
    assert hidden.idle_seconds(NONE, 0.0) == 60.0              # not told yet: still idle
    clock.now += 1.2
    assert hidden.idle_seconds(NONE, 1.2) == pytest.approx(61.2)   # "idled": no input
    clock.now += 100
    assert hidden.idle_seconds(NONE, 101.2) == pytest.approx(161.2)
    clock.now += 1
    assert hidden.idle_seconds(NONE, 0.0) == 0.0              # input at last
    clock.now += 5
    assert hidden.idle_seconds(NONE, 0.0) == 0.0


def test_input_right_after_the_inhibitor_ends_the_hidden_stretch():
    clock = Clock()
    hidden = HiddenInput(clock)
    hidden.idle_seconds(FOCUSED, 0.0)
    clock.now += 10
    hidden.idle_seconds(NONE, 0.0)                            # released, typing at once
    clock.now += HANDOVER_S + 0.1                             # and no "idled" came
    assert hidden.idle_seconds(NONE, 0.0) == 0.0
    clock.now += 10
    assert hidden.idle_seconds(NONE, 0.0) == 0.0              # nothing left over


def test_a_video_beside_the_focused_window_presumes_input_over_a_stale_idle():
    clock = Clock()
    hidden = HiddenInput(clock)
    # the compositor said "idle" 50 s ago, then a video started beside: its timer is
    # silenced and stays "idle" however much the person types into the focused window
    assert hidden.idle_seconds(BESIDE, 50.0) == 0.0
    clock.now += 20
    assert hidden.idle_seconds(BESIDE, 70.0) == 0.0
    clock.now += 3                                            # the video stops
    assert hidden.idle_seconds(NONE, 73.0) == pytest.approx(3.0)   # not 73: from its end
    clock.now += 1
    assert hidden.idle_seconds(NONE, 0.0) == 0.0              # then the compositor again
    clock.now += 2
    assert hidden.idle_seconds(NONE, 1.0) == 1.0


def test_sway_tree_inhibitors_focused_and_any():
    def view(pid, focused=False, inhibit=False, kind="con"):
        return {"type": kind, "pid": pid, "focused": focused, "inhibit_idle": inhibit,
                "nodes": [], "floating_nodes": []}

    def tree(*views):
        workspace = {"type": "workspace", "nodes": [v for v in views if v["type"] == "con"],
                     "floating_nodes": [v for v in views if v["type"] != "con"]}
        return {"type": "root", "nodes": [{"type": "output", "nodes": [workspace]}]}

    assert _swayipc.inhibitors(tree(view(1, True), view(2))) == _swayipc.Inhibitors(False,
                                                                                      False)
    assert _swayipc.inhibitors(tree(view(1, True), view(2, inhibit=True))) == \
        _swayipc.Inhibitors(False, True)
    assert _swayipc.inhibitors(tree(view(1), view(2, True, True, "floating_con"))) == \
        _swayipc.Inhibitors(True, True)


def test_not_sway_and_a_dead_socket_are_clear(tmp_path):
    with pytest.raises(Exception, match="SWAYSOCK is not set"):
        _swayipc.open("")
    with pytest.raises(Exception, match="cannot connect to sway's IPC socket"):
        _swayipc.open(str(tmp_path / "gone.sock"))

