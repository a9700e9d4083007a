"""The config grammar both programs share: TOML < environment < flags, and a
bad value stops with one line naming the key."""

from __future__ import annotations

import pytest
from worklens.agent import config as agent_config
from worklens.collector import config as collector_config
from worklens.common.durations import format_duration, parse_duration
from worklens.common.settings import ConfigError


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
