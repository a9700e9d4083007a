"""`worklens-agent status` answers a person's questions from a real data dir
and a real collector: enrolled as whom, collector reachable, what is waiting
and since when, what was lost, and what is collected about them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from collector_harness import InProcessCollector
from delivery_support import agent_cli, free_port, window
from desktop import wait_for
from worklens.agent.spool import Spool
from worklens.collector.access.enrollment import revoke_agent


@pytest.fixture
def collector(tmp_path):
    instance = InProcessCollector(tmp_path / "collector")
    yield instance
    instance.stop()


@pytest.fixture
def enrolled(tmp_path, collector):
    data = tmp_path / "agent"
    done = agent_cli("enroll", "--collector", collector.grpc_address, "--secret",
                     collector.create_token("enroll"), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    return data, json.loads((data / "credential.json").read_text())["agent_id"]


def status(data, *extra, env=None, code=0):
    """`status` output; ``code`` 1 when the agent would not deliver."""
    done = agent_cli("status", "--data-dir", str(data), *extra, env=env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_not_enrolled_says_how_and_still_shows_what_would_be_collected(tmp_path):
    out = status(tmp_path / "fresh", code=1)
    assert "delivering:     NO — not enrolled" in out
    assert "enrolled:       no — run `worklens-agent enroll --collector HOST:PORT " \
           "--secret SECRET`" in out
    assert "collector:      none configured" in out
    assert "spool:          nothing waiting" in out
    assert "window titles:  captured" in out
    assert "keystroke content, clipboard and screen contents are never recorded" in out


def test_enrolled_and_reachable_with_a_backlog_dead_letter_and_drops(tmp_path, collector,
                                                                     enrolled):
    data, agent_id = enrolled
    spool = Spool.open(data, max_mb=100)
    for i in range(3):
        spool.add([window(i), window(10 + i)])
        spool.seal()
    spool.dead_letter(2, "INVALID_ARGUMENT: batch 2 rejected: windows.title too long")
    spool.put("dropped_total", 17)
    spool.add([window(40)])                       # closed, not sealed yet
    spool.close()

    out = status(data)
    assert "delivering:     yes" in out
    assert f"enrolled:       yes, as {agent_id}" in out
    assert f"collector:      {collector.grpc_address} (plain text) — reachable, credential " \
           "accepted" in out
    assert "spool:          2 batch(es) waiting (4 events," in out
    assert "1 record(s) to be sealed at the next flush" in out
    assert "last ack:       never" in out
    assert "dropped:        17 event(s)" in out
    assert "dead letters:   1 batch(es), 2 event(s) rejected by the collector" in out

    facts = json.loads(status(data, "--json"))
    assert facts["agent_id"] == agent_id and facts["enrolled"] is True
    assert facts["ok"] is True and facts["problem"] == ""
    assert facts["collector"]["reachable"] is True
    assert facts["collector"]["credential_accepted"] is True
    assert facts["collector"]["last_sequence"] == 0
    s = facts["spool"]
    assert (s["batches"], s["events"], s["unsealed_records"]) == (2, 4, 1)
    assert (s["dead_letters"], s["dead_letter_events"], s["dropped_events"]) == (1, 2, 17)
    assert s["oldest_unsent_ms"] > 0 and s["bytes"] > 0
    assert facts["collected"]["never_recorded"].startswith("keystroke content")


def test_collector_down_is_reported_as_not_reachable(tmp_path, enrolled, collector):
    data, _ = enrolled
    collector.stop()
    out = status(data, code=1)
    assert "— NOT reachable" in out
    assert "nothing answers there (is it running?)" in out
    assert "delivering:     NO — the collector is not reachable" in out
    facts = json.loads(status(data, "--json", code=1))
    assert facts["collector"]["reachable"] is False and facts["ok"] is False


def test_revoked_agent_is_told_to_reenroll(tmp_path, enrolled, collector):
    data, agent_id = enrolled
    revoke_agent(collector.store, agent_id)
    out = status(data, code=1)
    assert "delivering:     NO — the collector rejects this agent's credential" in out
    assert json.loads(status(data, "--json", code=1))["ok"] is False
    assert "reachable, but it REJECTS this agent's credential" in out
    assert "re-enroll" in out


def test_stopped_sending_is_shown(tmp_path, enrolled):
    data, _ = enrolled
    spool = Spool.open(data)
    spool.put("auth_error", "the collector at x rejected this agent's credential: re-enroll")
    spool.close()
    out = status(data, code=1)
    assert "SENDING STOPPED: the collector at x rejected" in out
    assert "delivering:     NO — sending stopped until the agent is enrolled again" in out


def test_privacy_settings_are_spelled_out(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[privacy]\ncapture_titles = true\nredact_titles = ["secret", "\\\\d{16}"]'
                      '\nexclude_apps = ["keepassxc", "signal"]\n'
                      'schedule = "Mon-Fri 08:00-18:00"\n'
                      f'[collector]\naddress = "127.0.0.1:{free_port()}"\n'
                      'enroll_secret = "from-the-package"\n')
    out = status(tmp_path / "agent", "--config", str(config), code=1)  # nothing listens
    assert "window titles:  captured, 2 redaction pattern(s) applied" in out
    assert "excluded apps:  keepassxc, signal" in out
    assert "schedule:       Mon-Fri 08:00-18:00" in out
    assert "not yet — `worklens-agent run` enrolls with [collector] enroll_secret" in out
    out = status(tmp_path / "agent", env={"WORKLENS_PRIVACY_CAPTURE_TITLES": "false"}, code=1)
    assert "window titles:  not captured (app names only)" in out


def test_status_refuses_the_schedule_that_run_refuses(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[privacy]\nschedule = "Mon-Fry 08:00-18:00"\n')
    runs = [agent_cli(command, "--config", str(config), "--data-dir", str(tmp_path / "agent"))
            for command in ("run", "status")]
    for done in runs:
        assert done.returncode == 1 and done.stdout == "", done.stdout
        assert done.stderr.count("\n") == 1 and "[privacy] schedule = 'Mon-Fry 08:00-18:00'" \
            in done.stderr and "unknown day 'Fry'" in done.stderr, done.stderr
    assert runs[0].stderr == runs[1].stderr


def test_not_enrolled_with_a_secret_delivers_when_the_collector_is_there(tmp_path, collector):
    config = tmp_path / "agent.toml"
    config.write_text(f'[collector]\naddress = "{collector.grpc_address}"\n'
                      f'enroll_secret = "{collector.create_token("enroll")}"\n')
    out = status(tmp_path / "agent", "--config", str(config))
    assert f"collector:      {collector.grpc_address} (plain text) — reachable\n" in out
    assert "delivering:     yes" in out
    collector.stop()
    facts = json.loads(status(tmp_path / "agent", "--config", str(config), "--json", code=1))
    assert facts["will_self_enroll"] is True and facts["collector"]["reachable"] is False
    assert facts["ok"] is False and facts["problem"] == "the collector is not reachable"
    assert "nothing answers there" in facts["collector"]["problem"]


def test_status_does_not_disturb_a_running_agents_checkpoint(tmp_path, enrolled):
    data, _ = enrolled
    spool = Spool.open(data)
    spool.checkpoint([window(1, "open span")])
    status(data)
    spool.close()
    reopened = Spool.open(data)       # the checkpoint is still there to recover
    reopened.seal()
    assert [w.title for p in reopened.pending() for w in p.batch.windows] == ["open span"]


def _status_without_display(data) -> tuple[str, dict]:
    """`status` as IT runs it over ssh: no X display in that shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKLENS_") and k not in ("DISPLAY", "XAUTHORITY",
                                                          "WAYLAND_DISPLAY")}
    runs = [subprocess.run([sys.executable, "-m", "worklens.agent",
                            "status", "--data-dir", str(data), *extra], env=env,
                           capture_output=True, text=True, timeout=60)
            for extra in ((), ("--json",))]
    for done in runs:
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return runs[0].stdout, json.loads(runs[1].stdout)


@pytest.mark.system
def test_status_from_another_shell_shows_what_the_running_agent_sees(tmp_path, enrolled,
                                                                     desktop):
    data, _ = enrolled
    env = {k: v for k, v in desktop.env.items() if not k.startswith("WORKLENS_")}
    env["WORKLENS_DELIVERY_FLUSH_INTERVAL"] = "1s"
    agent = subprocess.Popen([sys.executable, "-m", "worklens.agent", "run",
                              "--data-dir", str(data)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (data / "running.json").exists() or agent.poll() is not None,
                 timeout=60, what="the agent to start")
        assert agent.poll() is None, agent.stderr.read()
        out, facts = _status_without_display(data)
        assert f"agent:          running (pid {agent.pid})" in out
        assert "window:         x11" in out and "idle:           x11" in out
        assert facts["running"]["pid"] == agent.pid and facts["sensors_from"] == "agent"
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
    out, facts = _status_without_display(data)
    assert "agent:          not running" in out
    assert "no agent running: the sensors as they would work in this shell" in out
    window_sensor = next(s for s in facts["sensors"] if s["name"] == "window")
    assert facts["running"] is None and not window_sensor["available"]
