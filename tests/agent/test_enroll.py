"""`worklens-agent enroll` against a real collector: the credential lands in a
private file, re-running keeps the agent id, and every refusal is one line."""

from __future__ import annotations

import json
import os

import pytest
from collector_harness import InProcessCollector
from delivery_support import agent_cli, free_port
from worklens.collector.access.enrollment import install_key


@pytest.fixture
def collector(tmp_path):
    instance = InProcessCollector(tmp_path / "collector")
    yield instance
    instance.stop()


def one_line_error(done) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("worklens-agent: error: ")
    return lines[0]


def test_enroll_stores_a_private_credential_and_rerunning_keeps_the_agent(tmp_path, collector):
    data = tmp_path / "agent"
    secret = collector.create_token("enroll")
    first = agent_cli("enroll", "--collector", collector.grpc_address, "--secret", secret,
                      "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    saved = json.loads((data / "credential.json").read_text())
    agent_id = saved["agent_id"]
    assert f"enrolled as {agent_id} with the collector at {collector.grpc_address}" \
        in first.stdout
    assert saved["credential"].startswith(agent_id + ".")
    assert saved["collector"]["address"] == collector.grpc_address
    assert (data.stat().st_mode & 0o777) == 0o700
    for name in ("credential.json", "install-id"):
        assert (os.stat(data / name).st_mode & 0o777) == 0o600, name

    second = agent_cli("enroll", "--collector", collector.grpc_address, "--secret", secret,
                       "--data-dir", str(data))
    assert second.returncode == 0, second.stderr
    again = json.loads((data / "credential.json").read_text())
    assert again["agent_id"] == agent_id
    assert again["credential"] != saved["credential"]      # fresh; the old one is revoked
    assert collector.count("agents") == 1
    # the install id is stored hashed: reading the store does not give it away
    assert collector.query("SELECT install_id FROM agents") == [
        (install_key(saved["install_id"]),)]


def test_wrong_secret_is_one_line_and_leaves_no_credential(tmp_path, collector):
    data = tmp_path / "agent"
    done = agent_cli("enroll", "--collector", collector.grpc_address, "--secret", "wl_nope",
                     "--data-dir", str(data))
    line = one_line_error(done)
    assert "refused the enrollment secret" in line and "token create --role enroll" in line
    assert not (data / "credential.json").exists()


def test_unreachable_collector_is_one_line(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    done = agent_cli("enroll", "--collector", address, "--secret", "s",
                     "--data-dir", str(tmp_path / "agent"))
    assert one_line_error(done).endswith(
        f"cannot reach the collector at {address}: nothing answers there (is it running?)")


def test_plain_text_to_a_remote_collector_needs_insecure(tmp_path):
    done = agent_cli("enroll", "--collector", "collector.example.com:50051", "--secret", "s",
                     "--data-dir", str(tmp_path / "agent"))
    assert "refusing plain text to collector.example.com:50051" in one_line_error(done)


def test_a_damaged_credential_file_is_one_line_saying_re_enroll(tmp_path):
    data = tmp_path / "agent"
    data.mkdir(mode=0o700)
    (data / "credential.json").write_text("{not json")
    line = one_line_error(agent_cli("status", "--data-dir", str(data)))
    assert "credential.json is damaged" in line and "worklens-agent enroll" in line
