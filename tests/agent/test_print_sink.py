"""``run --print`` output, and the sensor description ``status`` shows."""

from __future__ import annotations

import io
import json

import pytest
from sensor_support import make_config
from worklens.agent.printsink import PrintSink, record_to_dict
from worklens.agent.sensors import describe
from worklens.v1 import agent_pb2


def test_each_record_is_one_json_line_with_every_wire_field():
    out = io.StringIO()
    sink = PrintSink(out)
    sink.write([agent_pb2.WindowSpan(start_ms=1_700_000_000_000, duration_ms=1500, app="vim",
                                     title="notes — ü", pid=7),
                agent_pb2.ActivitySpan(start_ms=1_700_000_000_000, duration_ms=1500,
                                       state=agent_pb2.ACTIVITY_STATE_IDLE, key_presses=3)])
    sink.checkpoint([agent_pb2.WindowSpan(app="not printed")])
    sink.close()
    window, activity = (json.loads(line) for line in out.getvalue().splitlines())
    assert window == {"record": "window", "start_ms": 1_700_000_000_000, "duration_ms": 1500,
                      "app": "vim", "title": "notes — ü", "pid": 7, "exe": "",
                      "excluded": False, "start": window["start"]}
    assert window["start"].startswith("2023-11-1")
    assert (activity["record"], activity["state"], activity["key_presses"], activity["clicks"]) \
        == ("activity", "IDLE", 3, 0)


def test_process_and_system_records_carry_their_time():
    d = record_to_dict(agent_pb2.ProcessSample(time_ms=1_700_000_000_000, pid=1, name="init",
                                               cpu_percent=1.23456))
    assert (d["record"], d["cpu_percent"], "time" in d) == ("process", 1.235, True)
    assert record_to_dict(agent_pb2.SystemTotals(cpu_count=2))["record"] == "system"


def test_a_closed_stdout_stops_printing_quietly():
    class Closed(io.StringIO):
        def write(self, _text):
            raise BrokenPipeError

    sink = PrintSink(Closed())
    sink.write([agent_pb2.WindowSpan(app="a")])
    sink.write([agent_pb2.WindowSpan(app="b")])
    sink.close()


def test_describe_without_a_display_says_what_cannot_be_seen(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-9")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
    statuses = {s.name: s for s in describe(make_config())}
    assert list(statuses) == ["window", "idle", "input", "processes"]
    assert not statuses["window"].available and "XWayland" in statuses["window"].reason
    assert not statuses["idle"].available and "system bus" in statuses["idle"].reason
    assert statuses["processes"].available and "top 10" in statuses["processes"].reason


@pytest.mark.system
def test_describe_on_a_desktop_lists_working_sensors(desktop, on_display):
    on_display(desktop)
    statuses = {s.name: s for s in describe(make_config())}
    assert [(s.backend, s.available) for s in statuses.values()] == \
        [("x11", True), ("x11", True), ("x11", True), ("psutil", True)]
    assert desktop.display in statuses["window"].reason
