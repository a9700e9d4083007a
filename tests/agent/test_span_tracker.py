"""Heartbeat merging: samples -> window and activity spans."""

from __future__ import annotations

import itertools

from sensor_support import assert_contiguous
from worklens.agent.sensors.clock import Gap
from worklens.agent.sensors.input import InputCounts
from worklens.agent.sensors.window._base import WindowInfo
from worklens.agent.spans import ACTIVE, ASLEEP, IDLE, LOCKED, Observation, SpanTracker

EDITOR = WindowInfo(app="editor", title="notes.txt", pid=10, exe="/usr/bin/editor")
BROWSER = WindowInfo(app="browser", title="News", pid=20)


def feed(tracker, ticks):
    closed = []
    for tick in ticks:
        closed += tracker.observe(tick)
    return closed


def windows(spans):
    return [s for s in spans if type(s).__name__ == "WindowSpan"]


def activity(spans):
    return [s for s in spans if type(s).__name__ == "ActivitySpan"]


def test_same_window_grows_one_span_and_a_switch_closes_it_at_the_switch():
    tracker = SpanTracker()
    closed = feed(tracker, [Observation(1000 + i * 1000, EDITOR, ACTIVE) for i in range(5)])
    assert closed == []
    closed = tracker.observe(Observation(6000, BROWSER, ACTIVE))
    assert [(w.app, w.title, w.start_ms, w.duration_ms, w.pid, w.exe) for w in closed] == \
        [("editor", "notes.txt", 1000, 5000, 10, "/usr/bin/editor")]
    closed = tracker.close(9000)
    assert [(w.app, w.start_ms, w.duration_ms) for w in windows(closed)] == \
        [("browser", 6000, 3000)]
    assert [(a.state, a.start_ms, a.duration_ms) for a in activity(closed)] == \
        [(ACTIVE, 1000, 8000)]


def test_a_title_change_in_the_same_app_is_a_new_span():
    tracker = SpanTracker()
    renamed = WindowInfo(app="editor", title="other.txt", pid=10)
    closed = feed(tracker, [Observation(0, EDITOR, ACTIVE), Observation(1000, renamed, ACTIVE)])
    assert [(w.title, w.duration_ms) for w in windows(closed)] == [("notes.txt", 1000)]


def test_no_window_closes_the_span_and_later_windows_start_fresh():
    tracker = SpanTracker()
    closed = feed(tracker, [Observation(0, EDITOR, ACTIVE), Observation(2000, None, ACTIVE),
                            Observation(3000, None, ACTIVE), Observation(4000, EDITOR, ACTIVE)])
    assert [(w.start_ms, w.duration_ms) for w in windows(closed)] == [(0, 2000)]
    assert [(w.start_ms, w.duration_ms) for w in windows(tracker.close(5000))] == [(4000, 1000)]


def test_going_idle_is_dated_when_input_stopped_not_when_noticed():
    tracker = SpanTracker()
    closed = feed(tracker, [
        Observation(0, EDITOR, ACTIVE, 0, InputCounts(key_presses=3)),
        Observation(1000, EDITOR, ACTIVE, 900, InputCounts(key_presses=2, clicks=1)),
        Observation(2000, EDITOR, ACTIVE, 1200),
        # input stopped at 1200; the threshold passed later and is noticed at 7000
        Observation(7000, EDITOR, IDLE, 1200),
    ])
    assert [(a.state, a.start_ms, a.duration_ms, a.key_presses, a.clicks) for a in closed] == \
        [(ACTIVE, 0, 1200, 5, 1)]
    idle = activity(tracker.close(8000))
    assert [(a.state, a.start_ms, a.duration_ms) for a in idle] == [(IDLE, 1200, 6800)]
    assert windows(closed) == []  # the window stays focused while its user is idle


def test_input_after_idleness_opens_active_after_the_last_idle_tick_with_its_counts():
    tracker = SpanTracker()
    feed(tracker, [Observation(0, EDITOR, IDLE, -600_000), Observation(1000, EDITOR, IDLE, 0)])
    closed = tracker.observe(Observation(2000, EDITOR, ACTIVE, 1700, InputCounts(key_presses=4)))
    assert [(a.state, a.start_ms, a.duration_ms, a.key_presses) for a in closed] == \
        [(IDLE, 0, 1000, 0)]
    (active,) = activity(tracker.close(3000))
    assert (active.state, active.start_ms, active.duration_ms, active.key_presses) == \
        (ACTIVE, 1000, 2000, 4)


def test_a_single_burst_of_input_between_idle_periods_keeps_its_counts():
    tracker = SpanTracker()
    closed = feed(tracker, [
        Observation(0, EDITOR, IDLE, -600_000),
        Observation(500, EDITOR, IDLE, -600_000),
        Observation(1000, EDITOR, ACTIVE, 900, InputCounts(key_presses=8)),   # burst at 900
        Observation(2000, EDITOR, ACTIVE, 900),
        Observation(4000, EDITOR, IDLE, 900),                                  # idle since 900
    ])
    assert [(a.state, a.start_ms, a.duration_ms, a.key_presses) for a in closed] == \
        [(IDLE, 0, 500, 0), (ACTIVE, 500, 400, 8)]


def test_the_first_span_never_starts_before_the_agent_did():
    tracker = SpanTracker()
    tracker.observe(Observation(5000, EDITOR, IDLE, -3_600_000))
    (idle,) = activity(tracker.close(6000))
    assert (idle.start_ms, idle.duration_ms) == (5000, 1000)


def test_locked_then_unlocked():
    tracker = SpanTracker()
    closed = feed(tracker, [Observation(0, EDITOR, ACTIVE, 0),
                            *(Observation(t, None, LOCKED, 1000) for t in (1000, 2000, 3000)),
                            Observation(4000, EDITOR, ACTIVE, 3800)])
    assert [(type(s).__name__, getattr(s, "state", None), s.start_ms, s.duration_ms)
            for s in closed] == [("WindowSpan", None, 0, 1000), ("ActivitySpan", ACTIVE, 0, 1000),
                                 ("ActivitySpan", LOCKED, 1000, 2000)]


def test_sleep_gap_closes_spans_where_it_began_and_is_filled_with_asleep():
    tracker = SpanTracker()
    feed(tracker, [Observation(0, EDITOR, ACTIVE, 0), Observation(1000, EDITOR, ACTIVE, 900)])
    closed = tracker.gap(Gap(1000, 61_000))
    assert [(type(s).__name__, s.start_ms, s.duration_ms) for s in closed] == [
        ("WindowSpan", 0, 1000), ("ActivitySpan", 0, 1000), ("ActivitySpan", 1000, 60_000)]
    assert closed[-1].state == ASLEEP
    tracker.observe(Observation(62_000, EDITOR, ACTIVE, 61_900))
    after = tracker.close(63_000)
    # the timeline continues where the sleep ended: no gap
    assert [(s.start_ms, s.duration_ms) for s in after] == [(61_000, 2000), (61_000, 2000)]


def test_unknown_activity_state_records_no_activity_span():
    tracker = SpanTracker()
    closed = feed(tracker, [Observation(0, EDITOR, ACTIVE), Observation(1000, EDITOR, None),
                            Observation(2000, EDITOR, None)])
    assert [(a.state, a.duration_ms) for a in activity(closed)] == [(ACTIVE, 1000)]
    assert activity(tracker.close(3000)) == []


def test_excluded_windows_merge_into_one_anonymous_span():
    tracker = SpanTracker()
    secret = WindowInfo(app="", title="", excluded=True)
    closed = feed(tracker, [Observation(0, secret, ACTIVE), Observation(1000, secret, ACTIVE),
                            Observation(2000, EDITOR, ACTIVE)])
    (span,) = windows(closed)
    assert (span.excluded, span.app, span.title, span.pid, span.duration_ms) == \
        (True, "", "", 0, 2000)


def test_checkpoint_shows_open_spans_as_if_closed_now_without_closing_them():
    tracker = SpanTracker()
    tracker.observe(Observation(0, EDITOR, ACTIVE))
    assert [(s.start_ms, s.duration_ms) for s in tracker.open_records(4000)] == \
        [(0, 4000), (0, 4000)]
    assert [(s.start_ms, s.duration_ms) for s in tracker.close(5000)] == [(0, 5000), (0, 5000)]
    assert tracker.open_records(6000) == []


def test_a_long_random_session_has_no_overlaps_and_no_activity_gaps():
    import random

    rng = random.Random(7)
    tracker = SpanTracker()
    apps = [EDITOR, BROWSER, None, WindowInfo(app="", title="", excluded=True)]
    states = [ACTIVE, ACTIVE, IDLE, LOCKED]
    now, closed = 0, []
    for _ in range(500):
        now += rng.choice([1000, 1000, 1000, 1500])
        state = rng.choice(states)
        since = now - rng.randint(0, 5000)
        closed += tracker.observe(Observation(now, rng.choice(apps), state, since,
                                              InputCounts(key_presses=rng.randint(0, 3))))
        if rng.random() < 0.02:
            closed += tracker.gap(Gap(now, now + 30_000))
            now += 30_000
    closed += tracker.close(now + 1000)
    acts, wins = activity(closed), windows(closed)
    assert_contiguous(wins)
    assert all(s.duration_ms > 0 for s in closed)
    for before, after in itertools.pairwise(acts):
        assert before.start_ms + before.duration_ms == after.start_ms  # no gap, no overlap
    assert acts[0].start_ms == 1000 and acts[-1].start_ms + acts[-1].duration_ms == now + 1000
