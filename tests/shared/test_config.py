"""The config grammar both programs share: TOML < environment < flags, and a
bad value stops with one line naming the key."""

from __future__ import annotations

import pytest
from worklens.agent import config as agent_config
from worklens.collector import config as collector_config
from worklens.common.durations import format_duration, parse_duration
from worklens.common.settings import ConfigError, load


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("10s", 10), ("5m", 300), ("2h", 7200), ("30d", 2592000), ("1h30m", 5400),
    ("1.5s", 1.5), (" 2 h ", 7200),
])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "5x", "m5", "-1s", "1s2", "ten seconds"])
def test_bad_durations_name_the_format(text):
    with pytest.raises(ValueError, match="duration like 500ms"):
        parse_duration(text)


def test_format_duration_round_trips():
    for seconds in (0.25, 1, 59, 61, 3600, 5400, 90061):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_toml_then_env_then_flags(tmp_path, monkeypatch):
    path = tmp_path / "agent.toml"
    path.write_text('[sampling]\nwindow_interval = "2s"\nidle_threshold = "10m"\n'
                    '[privacy]\nexclude_apps = ["keepassxc"]\n')
    monkeypatch.setenv("WORKLENS_SAMPLING_IDLE_THRESHOLD", "1m")
    monkeypatch.setenv("WORKLENS_PRIVACY_REDACT_TITLES", r'["\\d{4}-\\d{4}", "secret"]')
    cfg = agent_config.load(path, overrides={"collector": {"address": "h:1", "ca_cert": None}})
    assert cfg.sampling.window_interval == 2
    assert cfg.sampling.idle_threshold == 60
    assert cfg.privacy.exclude_apps == ["keepassxc"]
    assert cfg.privacy.redact_titles == [r"\d{4}-\d{4}", "secret"]
    assert cfg.collector.address == "h:1"
    assert cfg.collector.ca_cert is None
    assert cfg.delivery.flush_interval == 30  # untouched default


def test_env_list_accepts_commas(monkeypatch):
    monkeypatch.setenv("WORKLENS_PRIVACY_EXCLUDE_APPS", "keepassxc, signal")
    assert agent_config.load().privacy.exclude_apps == ["keepassxc", "signal"]


@pytest.mark.parametrize(("toml", "message"), [
    ('[sampling]\nwindow_interval = "fast"', r"window_interval = 'fast' in .*: expected a"),
    ("[sampling]\ntop_processes = -3", r"top_processes = -3 in .*: expected a whole"),
    ("[sampling]\ntop_processes = \"ten\"", r"top_processes = 'ten' in .*: expected a"),
    ("[privacy]\ncapture_titles = \"maybe\"", r"capture_titles = 'maybe' in .*: expected true"),
    ("[privacy]\nredact_titles = [\"(unclosed\"]", r"redact_titles .* valid regular expressions"),
    ("[sampling]\nwindow_intervall = \"1s\"", r"unknown key \[sampling\] window_intervall"),
    ("[smapling]\nx = 1", r"unknown section \[smapling\]"),
    ("[sampling\n", r"is not valid TOML"),
])
def test_bad_agent_config_names_the_key(tmp_path, toml, message):
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        agent_config.load(path)


def test_bad_env_value_names_the_variable_key(monkeypatch):
    monkeypatch.setenv("WORKLENS_DELIVERY_FLUSH_INTERVAL", "soon")
    with pytest.raises(ConfigError, match=r"\[delivery\] flush_interval = 'soon' from "
                       r"WORKLENS_DELIVERY_FLUSH_INTERVAL"):
        agent_config.load()


@pytest.mark.parametrize(("toml", "message"), [
    ('[grpc]\nlisten = "50051"', r"\[grpc\] listen = '50051' in .*: expected HOST:PORT"),
    ('[summary]\ntimezone = "Mars/Olympus"', r"timezone = 'Mars/Olympus' in .*: expected an IANA"),
    ('[retention]\nkeep = "1h"', r"\[retention\] keep = '1h' in .*: expected .* at least 86400s"),
])
def test_bad_collector_config_names_the_key(tmp_path, toml, message):
    path = tmp_path / "collector.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        collector_config.load(path)


def test_missing_config_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        collector_config.load(tmp_path / "nope.toml")


def test_installed_config_is_found_without_a_flag(tmp_path, monkeypatch):
    """IT runs a plain `worklens-agent status`: the installed file applies."""
    from worklens.common.settings import system_config_file

    path = tmp_path / "agent.toml"
    path.write_text('[privacy]\ncapture_titles = false\n')
    monkeypatch.setenv("WORKLENS_CONFIG", str(path))
    assert system_config_file("agent") == path
    assert agent_config.load(system_config_file("agent")).privacy.capture_titles is False


# -- WORKLENS_* names that are not settings ----------------------------------------------------

def _names(cls) -> list[str]:
    """Every WORKLENS_<SECTION>_<KEY> of a program, from its config dataclasses."""
    import dataclasses
    import typing
    hints = typing.get_type_hints(cls)
    return [f"WORKLENS_{s.name.upper()}_{f.name.upper()}" for s in dataclasses.fields(cls)
            for f in dataclasses.fields(hints[s.name])]


@pytest.mark.parametrize(("variable", "message"), [
    ("WORKLENS_SAMPLNG_IDLE_THRESHOLD", r"^config: unknown section \[samplng\] from "
     r"WORKLENS_SAMPLNG_IDLE_THRESHOLD \(did you mean WORKLENS_SAMPLING_IDLE_THRESHOLD\?\)$"),
    ("WORKLENS_SAMPLING_IDLE_TRESHOLD", r"^config: unknown key \[sampling\] idle_treshold from "
     r"WORKLENS_SAMPLING_IDLE_TRESHOLD \(did you mean WORKLENS_SAMPLING_IDLE_THRESHOLD\?\)$"),
    ("WORKLENS_PRIVCY_SCHEDULE", r"unknown section \[privcy\] .*WORKLENS_PRIVACY_SCHEDULE\?"),
    ("WORKLENS_LOG", r"^config: unknown key \[log\] from WORKLENS_LOG \(did you mean "
     r"WORKLENS_LOG_LEVEL\?\)$"),
])
def test_a_misspelt_variable_is_rejected_like_a_misspelt_key(variable, message):
    with pytest.raises(ConfigError, match=message):
        load(agent_config.AgentConfig, env={variable: "1m"})


def test_a_misspelt_collector_variable_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown key \[grpc\] lsten from WORKLENS_GRPC_LSTEN"):
        load(collector_config.CollectorConfig, env={"WORKLENS_GRPC_LSTEN": "0.0.0.0:1"})
    with pytest.raises(ConfigError, match=r"unknown section \[retension\]"):
        load(collector_config.CollectorConfig, env={"WORKLENS_RETENSION_KEEP": "30d"})


def test_the_other_programs_settings_and_the_documented_variables_are_accepted():
    """Agent and collector may share an environment (make run, a shell): each ignores
    the other's sections; the names come from the dataclasses, so a section added
    later is covered without editing this test."""
    from worklens.common.settings import OTHER_VARIABLES

    others = {name: "" for name in OTHER_VARIABLES} | {
        "WORKLENS_WINDOW_BACKEND": "", "WORKLENS_IDLE_BACKEND": "",
        "WORKLENS_INPUT_BACKEND": "", "WORKLENS_SOMETHING_ELSE": "1"}
    agent_names = set(_names(agent_config.AgentConfig))
    collector_names = set(_names(collector_config.CollectorConfig))
    collector_env = dict.fromkeys(collector_names - agent_names, "not for the agent")
    agent_env = dict.fromkeys(agent_names - collector_names, "not for the collector")
    assert len(collector_env) > 10 and len(agent_env) > 10
    assert load(agent_config.AgentConfig, env=collector_env | others)
    assert load(collector_config.CollectorConfig, env=agent_env | others)


def _cli(program: str, *args: str, env: dict[str, str]):
    import os
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")} | env
    return subprocess.run([sys.executable, "-c", f"from worklens.{program}.cli import main; main()",
                           *args], env=clean, capture_output=True, text=True, timeout=60)


def test_both_programs_stop_on_a_misspelt_variable_with_one_line(tmp_path):
    done = _cli("agent", "status", "--data-dir", str(tmp_path / "agent"),
                env={"WORKLENS_SAMPLNG_IDLE_THRESHOLD": "1m"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("worklens-agent: error: config: unknown section [samplng] from "
                           "WORKLENS_SAMPLNG_IDLE_THRESHOLD (did you mean "
                           "WORKLENS_SAMPLING_IDLE_THRESHOLD?)\n")
    done = _cli("collector", "token", "list", "--data-dir", str(tmp_path / "collector"),
                env={"WORKLENS_HTTP_LISTN": "127.0.0.1:1"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("worklens-collector: error: config: unknown key [http] listn from "
                           "WORKLENS_HTTP_LISTN (did you mean WORKLENS_HTTP_LISTEN?)\n")


def test_the_agent_runs_beside_the_collectors_variables(tmp_path):
    done = _cli("agent", "status", "--data-dir", str(tmp_path / "agent"),
                env={"WORKLENS_GRPC_LISTEN": "0.0.0.0:50051", "WORKLENS_STORE_URL": "sqlite:///x",
                     "WORKLENS_TOKEN": "wl_x", "WORKLENS_COLLECTOR": "c.example.com:50051"})
    assert "error" not in done.stderr and "Worklens agent status" in done.stdout, done.stderr
