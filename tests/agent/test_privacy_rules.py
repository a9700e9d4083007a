"""Privacy controls: title capture, redaction, excluded apps, schedule."""

from __future__ import annotations

from datetime import datetime

import pytest
from sensor_support import make_config
from worklens.agent.privacy import REDACTED, Privacy, parse_schedule
from worklens.agent.sensors.window._base import WindowInfo
from worklens.common.settings import ConfigError

# 2024-06-03 is a Monday
MON, TUE, WED, FRI, SAT, SUN = 3, 4, 5, 7, 8, 9


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2024, 6, day, hh, mm, ss)


def privacy(**section) -> Privacy:
    return Privacy(make_config(privacy=section).privacy)


WIN = WindowInfo(app="firefox", title="Inbox (3) - jane.doe@example.com - Mail",
                 pid=42, exe="/usr/lib/firefox/firefox", aliases=("Navigator", "firefox"))


def test_titles_pass_unchanged_by_default():
    assert privacy().apply(WIN) == WindowInfo(app="firefox", title=WIN.title, pid=42,
                                              exe="/usr/lib/firefox/firefox")


def test_capture_titles_off_blanks_every_title():
    out = privacy(capture_titles=False).apply(WIN)
    assert (out.app, out.title, out.pid) == ("firefox", "", 42)


def test_redaction_replaces_only_the_matched_part():
    out = privacy(redact_titles=[r"[\w.]+@[\w.]+", r"\(\d+\)"]).apply(WIN)
    assert out.title == f"Inbox {REDACTED} - {REDACTED} - Mail"
    assert "jane" not in out.title


@pytest.mark.parametrize("pattern", ["firefox", "FIREFOX", "navigator", "fire*",
                                     "/usr/lib/firefox/firefox"])
def test_excluded_app_becomes_anonymous(pattern):
    out = privacy(exclude_apps=[pattern]).apply(WIN)
    assert out == WindowInfo(app="", title="", pid=0, exe="", excluded=True)


def test_exclusion_matches_windows_executables_without_extension():
    p = privacy(exclude_apps=["keepass"])
    assert p.is_excluded("KeePass.exe", "C:\\Program Files\\KeePass\\KeePass.exe")
    assert not p.is_excluded("notepad.exe")


def test_other_apps_are_not_excluded():
    assert privacy(exclude_apps=["keepassxc"]).apply(WIN).excluded is False


def test_empty_schedule_is_always():
    p = privacy()
    assert p.schedule.always and p.in_schedule(at(SUN, 3))


@pytest.mark.parametrize(("when", "inside"), [
    (at(MON, 8, 0), True), (at(MON, 7, 59, 59), False), (at(FRI, 17, 59), True),
    (at(FRI, 18, 0), False), (at(SAT, 12), False), (at(SUN, 9), False), (at(WED, 12), True),
])
def test_weekday_office_hours(when, inside):
    assert parse_schedule("Mon-Fri 08:00-18:00").contains(when) is inside


def test_day_lists_several_ranges_and_rules():
    s = parse_schedule("Mon,Wed 09:00-12:00,13:00-17:00; Sat 10:00-11:00")
    assert s.contains(at(MON, 9)) and s.contains(at(WED, 16, 59))
    assert not s.contains(at(MON, 12, 30)) and not s.contains(at(TUE, 10))
    assert s.contains(at(SAT, 10, 30)) and not s.contains(at(SAT, 11))


def test_overnight_range_runs_into_the_next_day():
    s = parse_schedule("Fri 22:00-06:00")
    assert s.contains(at(FRI, 23)) and s.contains(at(SAT, 5, 59))
    assert not s.contains(at(FRI, 21)) and not s.contains(at(SAT, 6)) \
        and not s.contains(at(MON, 1))


def test_sunday_night_wraps_into_monday_and_day_ranges_wrap():
    s = parse_schedule("Sun 22:00-02:00")
    assert s.contains(at(MON, 1)) and not s.contains(at(MON, 2))
    weekend = parse_schedule("Sat-Sun")
    assert weekend.contains(at(SUN, 23, 59)) and not weekend.contains(at(MON, 0))
    assert parse_schedule("Fri-Mon 10:00-11:00").contains(at(MON, 10, 30))
    assert not parse_schedule("Fri-Mon 10:00-11:00").contains(at(TUE, 10, 30))


def test_times_without_days_mean_every_day_and_24_00_ends_the_day():
    s = parse_schedule("18:00-24:00")
    assert s.contains(at(SUN, 23, 59, 59)) and s.contains(at(TUE, 18))
    assert not s.contains(at(TUE, 0))


@pytest.mark.parametrize("text", ["Mon-Fri 8-18", "Funday 08:00-09:00", "Mon 25:00-26:00",
                                  "Mon 09:00-09:00", "Mon 24:00-02:00", "Mon 09:00",
                                  "Mon 09:60-10:00", ";", "M 09:00-10:00"])
def test_bad_schedule_is_one_clear_config_error(text):
    with pytest.raises(ConfigError) as err:
        privacy(schedule=text)
    message = str(err.value)
    assert "[privacy] schedule" in message and "Mon-Fri 08:00-18:00" in message
    assert "\n" not in message
