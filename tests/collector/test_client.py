"""`worklens-collector summary` and `export` as an operator runs them
(subprocesses) against a real collector: formats, files, exit codes and
one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import socket
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from collector_harness import collector_command
from http_support import IDLE, activity, window

DAY = (datetime.now(UTC) - timedelta(days=1)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 8, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000


@pytest.fixture(scope="module")
def data(col):
    a = col.enroll_agent(hostname="ws-cli")
    col.send(a, "alice", [window(T0, 5400, "code", "main.py"),
                          window(T0 + 90 * MIN, 600, "firefox", "=1+1")],
             [activity(T0, 3600), activity(T0 + 60 * MIN, 1800, IDLE),
              activity(T0 + 90 * MIN, 600)])
    return {"a": a.agent_id, "viewer": col.token("viewer"), "exporter": col.token("exporter")}


def run(col, *args, token=None, url=None, env=None, stderr=subprocess.PIPE, timeout=60):
    cmd = collector_command(*args, "--url", url or col.url)
    if token:
        cmd += ["--token", token]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=stderr is subprocess.PIPE,
                          stderr=None if stderr is subprocess.PIPE else stderr,
                          stdout=None if stderr is subprocess.PIPE else subprocess.PIPE,
                          env=full_env, timeout=timeout)


def day_args(*extra):
    return ["--from", DAY.isoformat(), "--to", DAY.isoformat(), "--tz", "UTC", *extra]


def test_summary_table_is_aligned_with_hmm_durations(col, data):
    done = run(col, "summary", *day_args("--by", "app"), token=data["viewer"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert "by app" in lines[0] and "UTC" in lines[0]
    header, rule, *body = lines[1:]
    assert header.split() == ["APP", "ACTIVE", "IDLE", "SPANS", "PRODUCTIVE", "NEUTRAL",
                              "UNPRODUCTIVE", "UNCLASSIFIED"]
    assert set(rule) == {"-", " "}
    rows = {line.split()[0]: line.split()[1:3] for line in body if line.split()[0] != "TOTAL"
            and not line.startswith("-")}
    # code 08:00-09:30: active 08:00-09:00, idle 09:00-09:30; firefox 09:30-09:40 active.
    assert rows == {"code": ["1:00", "0:30"], "firefox": ["0:10", "0:00"]}
    total = next(line for line in body if line.startswith("TOTAL"))
    assert total.split()[1:3] == ["1:10", "0:30"]
    # Right-aligned numbers: every ACTIVE cell ends where the header's ACTIVE ends.
    end = header.index("ACTIVE") + len("ACTIVE")
    for line in body:
        if not line.startswith("-"):
            assert line[end - 4:end].strip().count(":") == 1, line


def test_summary_json_and_csv(col, data):
    done = run(col, "summary", *day_args("--by", "user", "--format", "json"),
               token=data["viewer"])
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["rows"][0]["user"] == "alice" and got["rows"][0]["active_seconds"] == 4200
    done = run(col, "summary", *day_args("--by", "app", "--format", "csv"), token=data["viewer"])
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode(), newline="")))
    assert [(r["app"], float(r["active_seconds"])) for r in rows] == [("code", 3600.0),
                                                                      ("firefox", 600.0)]


def test_relative_dates_and_token_from_the_environment(col, data):
    done = run(col, "summary", "--from", "7d", "--by", "day", "--format", "json",
               env={"WORKLENS_TOKEN": data["viewer"]})
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert DAY.isoformat() in [r["day"] for r in got["rows"]]
    assert (datetime.fromisoformat(got["to"]).date()
            - datetime.fromisoformat(got["from"]).date()).days == 6


def test_export_to_a_file_and_to_stdout(col, data, tmp_path):
    out = tmp_path / "spans.csv"
    done = run(col, "export", "spans", *day_args("-o", str(out)), token=data["exporter"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""   # no progress when stderr is not a terminal
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [(r["app"], r["title"]) for r in rows] == [("code", "main.py"), ("firefox", "'=1+1")]
    assert not list(tmp_path.glob("*.part"))
    piped = run(col, "export", "spans", *day_args(), token=data["exporter"])
    assert piped.returncode == 0 and piped.stdout == out.read_bytes()


def test_export_shows_progress_on_a_terminal(col, data, tmp_path):
    primary, secondary = pty.openpty()
    try:
        done = run(col, "export", "activity", *day_args("-o", str(tmp_path / "a.csv")),
                   token=data["exporter"], stderr=secondary)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert b"exported 0 rows" in shown                 # at once, before the first row
    assert re.search(rb"exported 3 rows, 0\.0 MB, [\d,]+ rows/s\x1b\[K\r?\n$", shown), shown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(done, *words):
    assert done.returncode == 1, (done.stdout, done.stderr)
    text = done.stderr.decode()
    assert text.count("\n") == 1 and "Traceback" not in text, text
    for word in words:
        assert word in text, text
    return text


def test_unreachable_collector(col, data):
    url = f"http://127.0.0.1:{_free_port()}"
    done = run(col, "summary", *day_args("--by", "app"), token=data["viewer"], url=url)
    one_line_error(done, f"cannot reach the collector at {url}")


def test_a_url_without_scheme_means_http(col, data):
    bare = col.url.removeprefix("http://")
    assert bare != col.url and "://" not in bare
    done = run(col, "summary", *day_args("--by", "app", "--format", "json"),
               token=data["viewer"], url=bare)
    assert done.returncode == 0, done.stderr
    assert {r["app"] for r in json.loads(done.stdout)["rows"]} == {"code", "firefox"}
    done = run(col, "export", "spans", *day_args(), token=data["exporter"], url=bare + "/")
    assert done.returncode == 0 and done.stdout.startswith(b"agent"), done.stderr


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8080", "http://", "   "])
def test_a_url_that_is_not_http_is_one_line(col, data, url):
    text = one_line_error(run(col, "summary", *day_args("--by", "app"), token=data["viewer"],
                              url=url))
    assert text == (f"worklens-collector: error: --url {url.strip()!r}: expected HOST:PORT, "
                    "http://HOST:PORT or https://HOST:PORT\n")


def test_bad_or_missing_token(col, data):
    one_line_error(run(col, "summary", *day_args("--by", "app"), token="wl_bad_token"),
                   "set --token or WORKLENS_TOKEN")
    one_line_error(run(col, "export", "spans", *day_args()), "set --token or WORKLENS_TOKEN")


def test_role_too_low_names_the_role(col, data, tmp_path):
    out = tmp_path / "never.csv"
    done = run(col, "export", "spans", *day_args("-o", str(out)), token=data["viewer"])
    assert one_line_error(done) == ("worklens-collector: error: permission denied: this needs "
                                    "the exporter role (or higher); your token has the viewer "
                                    "role\n")
    assert not out.exists()


def test_bad_dates_zones_and_agents(col, data):
    one_line_error(run(col, "summary", "--from", "last-tuesday", "--by", "app",
                       token=data["viewer"]), "--from", "YYYY-MM-DD")
    one_line_error(run(col, "summary", "--from", "2024-02-30", "--by", "app",
                       token=data["viewer"]), "--from")
    one_line_error(run(col, "summary", *day_args("--by", "app", "--tz", "Moon/Base"),
                       token=data["viewer"]), "--tz", "Moon/Base")
    one_line_error(run(col, "summary", "--from", "2024-05-02", "--to", "2024-05-01", "--by",
                       "app", token=data["viewer"]), "after")
    one_line_error(run(col, "summary", *day_args("--by", "app", "--agent", "ag-none"),
                       token=data["viewer"]), "ag-none")


def test_export_of_one_agent_or_one_user(col, data):
    """Kept last and on another day: it adds agents the tests above do not expect."""
    day = DAY - timedelta(days=1)
    t0 = T0 - 86_400_000
    carol, dave = col.enroll_agent(hostname="ws-carol"), col.enroll_agent(hostname="ws-dave")
    col.send(carol, "carol", [window(t0, 600, "code", "carol.py")], [activity(t0, 600)])
    col.send(dave, "dave", [window(t0, 900, "slack", "#general")], [activity(t0, 900)])
    span = ["--from", day.isoformat(), "--to", day.isoformat(), "--tz", "UTC"]

    def titles(*scope: str) -> list[str]:
        done = run(col, "export", "spans", *span, *scope, token=data["exporter"])
        assert done.returncode == 0, done.stderr
        return [r["title"] for r in csv.DictReader(io.StringIO(done.stdout.decode(),
                                                               newline=""))]
    assert sorted(titles()) == ["#general", "carol.py"]
    assert titles("--agent", carol.agent_id) == ["carol.py"]
    assert titles("--user", "dave") == ["#general"]
    assert titles("--user", "dave", "--agent", carol.agent_id) == []


def test_a_refusal_that_does_not_name_the_role_gets_it_from_the_command():
    """A proxy in front of the collector answers 403 in its own words."""
    import requests
    from worklens.collector.cli.client import _check
    from worklens.common.cli import UserError

    resp = requests.Response()
    resp.status_code, resp._content, resp.reason = 403, b"Forbidden", "Forbidden"
    with pytest.raises(UserError) as err:
        _check(resp, "https://proxy.example", "export")
    assert str(err.value) == "permission denied: Forbidden (`export` needs an exporter token)"
