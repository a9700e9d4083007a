"""`worklens-collector token create|list|revoke` as an operator runs it (the tests
taking ``store_cli`` on SQLite and on a real PostgreSQL)."""

from __future__ import annotations

import subprocess

import grpc
import pytest
from collector_harness import CollectorProcess, collector_command

pytestmark = pytest.mark.both_engines


@pytest.fixture
def cli(tmp_path):
    return CollectorProcess(tmp_path / "data")


@pytest.fixture
def store_cli(tmp_path, engine, store_url):
    """Commands (and a `serve`, once started) on the engine's store: ``--db`` for
    PostgreSQL, the SQLite file in the data directory otherwise."""
    proc = CollectorProcess(tmp_path / "data", db_url=store_url if engine != "sqlite" else "")
    yield proc
    proc.kill()


def one_line_error(done: subprocess.CompletedProcess, words: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("worklens-collector: error: ")
    assert words in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_create_prints_the_secret_once_and_stores_only_its_hash(store_cli):
    cli = store_cli
    done = cli.cli("token", "create", "--role", "enroll", "--name", "laptops", "--expires", "30d")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("wl_") and len(secret.splitlines()) == 1
    assert "shown only once" in done.stderr
    for path in cli.data_dir.glob("worklens.db*"):
        assert secret.split("_", 2)[2].encode() not in path.read_bytes()
    assert secret.split("_", 2)[2] not in repr(cli.query("SELECT * FROM tokens"))
    listed = cli.cli("token", "list")
    assert listed.returncode == 0
    token_id = secret.split("_")[1]
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(token_id)]
    assert "enroll" in row and "laptops" in row and "active" in row
    assert secret not in listed.stdout


def test_revoke_then_the_secret_no_longer_enrolls(store_cli):
    collector_proc = store_cli
    collector_proc.start()
    secret = collector_proc.create_token("enroll")
    assert collector_proc.enroll_agent(secret).agent_id.startswith("ag-")
    token_id = secret.split("_")[1]
    done = collector_proc.cli("token", "revoke", token_id)
    assert done.returncode == 0 and token_id in done.stdout
    assert "revoked" in collector_proc.cli("token", "list").stdout
    with pytest.raises(grpc.RpcError) as error:
        collector_proc.enroll_agent(secret)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    one_line_error(collector_proc.cli("token", "revoke", token_id), "no active token")


def test_list_on_an_empty_store(store_cli):
    done = store_cli.cli("token", "list")
    assert done.returncode == 0 and "no tokens" in done.stdout


@pytest.mark.parametrize("args, words", [
    (["token", "create", "--role", "enroll", "--expires", "soon"], "--expires"),
    (["token", "revoke", "nosuchid"], "no active token"),
    (["token", "list", "--db", "mysql://x/y"], "bad store URL"),
    (["token", "list", "--config", "/nonexistent/collector.toml"], "file not found"),
])
def test_expected_errors_are_one_line_exit_1(cli, args, words):
    one_line_error(cli.cli(*args), words)


def test_bad_config_value_is_one_line(cli, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[retention]\nkeep = \"forever\"\n")
    one_line_error(cli.cli("token", "list", "--config", str(config)), "[retention] keep")


def test_usage_errors_exit_2(cli):
    done = subprocess.run(collector_command("token", "create", "--role", "root"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_store_direct_changes_are_audited_with_the_local_operator(store_cli, tmp_path):
    """Token and rules changes made on the collector's machine leave the same
    trail as those made over the API: who (login@host), what, when."""
    import getpass
    import json

    cli = store_cli
    secret = cli.cli("token", "create", "--role", "viewer", "--name", "bi").stdout.strip()
    token_id = secret.split("_")[1]
    assert cli.cli("token", "revoke", token_id).returncode == 0
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\napp = "^code$"\ncategory = "Development"\n'
                     'productivity = "productive"\n')
    assert cli.cli("rules", "load", str(rules)).returncode == 0
    rows = cli.query("SELECT action, token_name, role, params FROM audit_log ORDER BY id")
    assert [r[0] for r in rows] == ["token.create", "token.revoke", "rules.load"]
    assert all(r[1].startswith(f"{getpass.getuser()}@") and r[2] == "admin" for r in rows)
    assert json.loads(rows[0][3])["id"] == token_id and "secret" not in rows[0][3]
    assert json.loads(rows[2][3])["rules"][0]["category"] == "Development"
    assert secret.split("_", 2)[2] not in json.dumps(rows)


def test_a_relative_data_dir_is_relative_to_the_working_directory(tmp_path):
    """`--data-dir data` from a shell in tmp_path means tmp_path/data, for every
    subcommand alike (it once became /data: sqlite:/// + a relative path)."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(collector_command(*args, "--data-dir", "data"), cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    created = run("token", "create", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data" / "worklens.db").exists()
    listed = CollectorProcess(tmp_path / "data").cli("token", "list")
    assert created.stdout.split("_")[1] in listed.stdout
