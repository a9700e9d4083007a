"""PASSIVE time: the rule that turns IDLE into PASSIVE (dating, cap, reason
changes), the detector's order and pacing, and the platform signals' parsing
(PulseAudio's pactl output; Windows and macOS on fakes: not verified there)."""

from __future__ import annotations

from sensor_support import make_config
from worklens.agent.sampler import PassiveRule
from worklens.agent.sensors.passive import (
    CALL,
    INHIBITOR,
    MEDIA,
    RULE,
    PassiveDetector,
    RuleSignal,
    Signal,
    open_detector,
)
from worklens.agent.sensors.passive._darwin import (
    DEFAULT_INPUT_DEVICE,
    IS_RUNNING_SOMEWHERE,
    SYSTEM_OBJECT,
    CoreAudioMicrophone,
)
from worklens.agent.sensors.passive._dbus import idle_inhibitor
from worklens.agent.sensors.passive._pulse import PulseMicrophone, microphone_in_use
from worklens.agent.sensors.passive._win32 import CONSENT_STORE, ConsentStoreMicrophone
from worklens.agent.sensors.window._base import WindowInfo
from worklens.agent.spans import ACTIVE, IDLE, LOCKED, PASSIVE, Observation, SpanTracker

PLAYER = WindowInfo(app="mpv", title="Training video", pid=4242)


class Switch(Signal):
    """A signal the test turns on and off, counting how often it is asked."""

    def __init__(self, reason: int, on: bool = False, every: float = 0.0) -> None:
        self.reason, self.on, self.every, self.asked = reason, on, every, 0
        self.backend = "fake"

    def engaged(self, window) -> bool:
        self.asked += 1
        return self.on


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def rule(*signals, passive_max_s=7200.0, clock=None):
    return PassiveRule(PassiveDetector(list(signals), 0.0, clock or Clock()), passive_max_s)


def test_idle_with_media_playing_is_passive_dated_back_to_the_last_input():
    media = Switch(MEDIA, on=True)
    r = rule(media)
    assert r.apply(ACTIVE, 1000, 2000, PLAYER) == (ACTIVE, 1000, 0)
    # the threshold passes at 301000: input stopped at 1000 -> passive since 1000
    assert r.apply(IDLE, 1000, 301000, PLAYER) == (PASSIVE, 1000, MEDIA)
    assert r.apply(IDLE, 1000, 302000, PLAYER) == (PASSIVE, 1000, MEDIA)
    media.on = False          # paused: IDLE from this tick, not from the last input
    assert r.apply(IDLE, 1000, 303000, PLAYER) == (IDLE, 303000, 0)
    media.on = True           # playing again while idle: passive from this tick
    assert r.apply(IDLE, 1000, 304000, PLAYER)[:3] == (PASSIVE, 304000, MEDIA)
    assert r.apply(ACTIVE, 305000, 305000, PLAYER) == (ACTIVE, 305000, 0)


def test_the_first_signal_in_order_gives_the_reason_and_a_change_is_dated_now():
    media, call = Switch(MEDIA, on=True), Switch(CALL, on=True)
    r = rule(call, media)
    assert r.apply(IDLE, 0, 300000, PLAYER) == (PASSIVE, 0, CALL)
    call.on = False
    assert r.apply(IDLE, 0, 301000, PLAYER) == (PASSIVE, 301000, MEDIA)


def test_passive_max_turns_passive_idle_until_input_returns():
    media = Switch(MEDIA, on=True)
    r = rule(media, passive_max_s=600)
    assert r.apply(IDLE, 0, 300_000, PLAYER) == (PASSIVE, 0, MEDIA)
    assert r.apply(IDLE, 0, 599_000, PLAYER) == (PASSIVE, 0, MEDIA)
    assert r.apply(IDLE, 0, 601_000, PLAYER) == (IDLE, 600_000, 0)   # dated at the cap
    assert r.apply(IDLE, 0, 900_000, PLAYER) == (IDLE, 0, 0)          # stays idle
    assert r.apply(ACTIVE, 950_000, 950_000, PLAYER) == (ACTIVE, 950_000, 0)
    assert r.apply(IDLE, 950_000, 1_300_000, PLAYER) == (PASSIVE, 950_000, MEDIA)


def test_locked_is_never_passive_and_no_detector_means_idle():
    r = rule(Switch(MEDIA, on=True))
    assert r.apply(LOCKED, 5, 10, PLAYER) == (LOCKED, 5, 0)
    assert PassiveRule(None, 7200).apply(IDLE, 5, 10, PLAYER) == (IDLE, 5, 0)


def test_spans_from_the_rule_never_overlap_and_keep_the_reason():
    media = Switch(MEDIA, on=True)
    r, tracker, closed = rule(media), SpanTracker(), []
    ticks = [(ACTIVE, 0, 0), (ACTIVE, 1000, 1000), (IDLE, 1000, 301000),
             (IDLE, 1000, 302000)]
    for state, since, now in ticks:
        s, at, why = r.apply(state, since, now, PLAYER)
        closed += tracker.observe(Observation(now, PLAYER, s, at, reason=why))
    media.on = False
    s, at, why = r.apply(IDLE, 1000, 303000, PLAYER)
    closed += tracker.observe(Observation(303000, PLAYER, s, at, reason=why))
    closed += tracker.close(304000)
    acts = [(a.state, a.start_ms, a.start_ms + a.duration_ms, a.reason)
            for a in closed if type(a).__name__ == "ActivitySpan"]
    assert acts == [(ACTIVE, 0, 1000, 0), (PASSIVE, 1000, 303000, MEDIA),
                    (IDLE, 303000, 304000, 0)]


def test_the_detector_asks_no_more_often_than_each_signal_allows():
    clock = Clock()
    call, media = Switch(CALL, every=10.0), Switch(MEDIA, on=True)
    detector = PassiveDetector([call, media], 1.0, clock)
    for step in range(20):
        clock.t = step * 0.5
        assert detector.reason(PLAYER) == MEDIA
    assert (call.asked, media.asked) == (1, 10)     # pactl every 10 s, D-Bus every 1 s
    detector.forget()
    detector.reason(PLAYER)
    assert call.asked == 2


def test_the_operator_rule_and_privacy_switches():
    cfg = make_config(sampling={"passive_apps": ["Zoom", "teams"]},
                      privacy={"passive_media": False, "passive_calls": False,
                               "passive_inhibitors": False})
    detector = open_detector(cfg)
    try:
        statuses = {s.name: s for s in detector.statuses}
        assert [statuses[n].available for n in ("passive call", "passive media",
                                                "passive inhibitor")] == [False] * 3
        assert "passive_media" in statuses["passive media"].reason
        assert statuses["passive rule"].available
        assert detector.reason(WindowInfo(app="zoom", title="Meeting")) == RULE
        assert detector.reason(WindowInfo(app="firefox", title="Meeting")) == 0
    finally:
        detector.close()
    assert not RuleSignal([]).available


def test_pactl_output_mic_in_use_but_not_a_monitor():
    sources = "0\talsa_output.pci.monitor\tmodule-alsa-card.c\ts16le 2ch 44100Hz\tIDLE\n" \
              "1\tmic\tmodule-null-source.c\ts16le 1ch 16000Hz\tRUNNING\n"
    assert microphone_in_use("7\t1\t12\tprotocol-native.c\tfloat32le 1ch 16000Hz\n", sources)
    assert not microphone_in_use("7\t0\t12\tprotocol-native.c\ts16le 2ch\n", sources)
    assert not microphone_in_use("", sources)
    calls = []

    def run(argv):
        calls.append(argv[2])
        return "" if argv[2] == "source-outputs" else sources
    mic = PulseMicrophone(run)
    assert mic.engaged(None) is False and calls == ["source-outputs"]   # one call when none


def test_logind_inhibitor_entries():
    assert idle_inhibitor(("idle:sleep", "mpv", "playing", "block", 1000, 77), 1000)
    assert not idle_inhibitor(("sleep", "mpv", "playing", "block", 1000, 77), 1000)
    assert not idle_inhibitor(("idle", "mpv", "playing", "block", 1001, 77), 1000)


class FakeRegistry:
    def __init__(self, apps: dict[str, tuple[int, int]]) -> None:
        self.apps = apps

    def subkeys(self, path):
        prefix = path + "\\"
        return sorted({k[len(prefix):].split("\\")[0] for k in self.apps if k.startswith(prefix)})

    def value(self, path, name):
        start, stop = self.apps.get(path, (None, None))
        return start if name == "LastUsedTimeStart" else stop


def test_windows_consent_store_on_a_fake_registry():
    teams = rf"{CONSENT_STORE}\MSTeams_8wekyb3d8bbwe"
    zoom = rf"{CONSENT_STORE}\NonPackaged\C:#Program Files#Zoom#bin#Zoom.exe"
    idle = ConsentStoreMicrophone(FakeRegistry({teams: (133_000_000, 133_000_500)}))
    assert idle.engaged(None) is False                       # stopped after it started
    busy = ConsentStoreMicrophone(FakeRegistry({teams: (133_000_000, 133_000_500),
                                                zoom: (133_000_900, 0)}))
    assert busy.engaged(None) is True                        # started, not stopped
    assert busy.reason == CALL


def test_macos_coreaudio_on_a_fake():
    def query(running):
        def q(obj, selector):
            if (obj, selector) == (SYSTEM_OBJECT, DEFAULT_INPUT_DEVICE):
                return 73
            if (obj, selector) == (73, IS_RUNNING_SOMEWHERE):
                return running
            return None
        return q
    assert CoreAudioMicrophone(query(1)).engaged(None) is True
    assert CoreAudioMicrophone(query(0)).engaged(None) is False
    assert CoreAudioMicrophone(lambda o, s: None).engaged(None) is False
    assert INHIBITOR != CALL


class FakeMprisBus:
    """The three D-Bus calls MprisMedia makes, answered from a table of players."""

    def __init__(self, players: dict[str, tuple[str, int, str]]) -> None:
        self.players = players          # bus name -> (status, pid, desktop entry)

    def call(self, target, method, signature="", args=()):
        if method == "ListNames":
            return (["org.freedesktop.DBus", *self.players],)
        if method == "GetConnectionUnixProcessID":
            return (self.players[args[0]][1],)
        status, _pid, entry = self.players[target[1]]
        return (("s", status if args[1] == "PlaybackStatus" else entry),)

    def close(self) -> None:
        pass


def test_a_wayland_window_without_pid_is_matched_to_its_player_by_app_id():
    from worklens.agent.sensors.passive._dbus import MprisMedia, app_names

    assert app_names("org.mozilla.Firefox") == {"org.mozilla.firefox", "firefox"}
    media = MprisMedia(FakeMprisBus({
        "org.mpris.MediaPlayer2.mpv": ("Playing", 0, "mpv"),
        "org.mpris.MediaPlayer2.firefox.instance_1_42": ("Paused", 0, "firefox"),
        "org.mpris.MediaPlayer2.chromium.instance7": ("Playing", 0, "Chromium-browser")}))
    assert media.engaged(WindowInfo(app="mpv", title="", pid=0))              # bus name
    assert not media.engaged(WindowInfo(app="org.mozilla.firefox", title="", pid=0))  # paused
    assert media.engaged(WindowInfo(app="chromium-browser", title="", pid=0))  # desktop entry
    assert not media.engaged(WindowInfo(app="foot", title="", pid=0))          # not a player
    assert not media.engaged(None)
