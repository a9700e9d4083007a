"""Groups and scoped tokens against a real collector (a `serve` process fed by
real agents over gRPC): agents take the groups of their enroll secret, an admin
moves them, and a viewer or exporter token scoped to ``sales`` sees nothing of
``eng`` anywhere - not in lists, totals, by=user/agent/group, timelines or CSV.

``test_every_read_route_is_scoped`` walks the served OpenAPI document, so a new
read endpoint that nobody taught about scopes fails here."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from http_support import activity, window
from worklens.v1 import agent_pb2

DAY = (datetime.now(UTC) - timedelta(days=1)).date()
T0 = int(datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
# Everything that would betray the eng agent if it appeared in a sales answer.
ENG_MARKERS = ("erin", "ws-eng", "vim-eng", "ENGSECRET", "eng/backend")


pytestmark = pytest.mark.both_engines


def cli_token(col, role: str, *groups: str) -> str:
    args = ["token", "create", "--role", role, "--name", f"{role}-{'-'.join(groups)}"]
    for group in groups:
        args += ["--group", group]
    done = col.cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def data(col):
    """sam (sales) 1 h of salesforce; erin (eng/backend) 2 h of vim-eng; nobody (no
    group) 30 min of gimp - all active, on DAY from 09:00 UTC."""
    sales = col.enroll_agent(secret=cli_token(col, "enroll", "sales"), hostname="ws-sales")
    eng = col.enroll_agent(secret=cli_token(col, "enroll", "eng/backend"), hostname="ws-eng")
    loner = col.enroll_agent(hostname="ws-none")
    col.send(sales, "sam", [window(T0, 3600, "salesforce", "Pipeline")], [activity(T0, 3600)],
             processes=[proc(T0 + MIN, "salesforce", "sam")], hostname="ws-sales")
    col.send(eng, "erin", [window(T0, 7200, "vim-eng", "ENGSECRET plan")],
             [activity(T0, 7200)], processes=[proc(T0 + MIN, "vim-eng", "erin")],
             hostname="ws-eng")
    col.send(loner, "nobody", [window(T0, 1800, "gimp", "art")], [activity(T0, 1800)],
             hostname="ws-none")
    return {"sales": sales.agent_id, "eng": eng.agent_id, "none": loner.agent_id,
            "viewer": cli_token(col, "viewer", "sales"),
            "exporter": cli_token(col, "exporter", "sales"),
            "eng_viewer": cli_token(col, "viewer", "eng"),
            "admin": col.token("admin")}


def proc(at_ms: int, name: str, user: str) -> agent_pb2.ProcessSample:
    return agent_pb2.ProcessSample(time_ms=at_ms, pid=9, name=name, user=user, rss_bytes=1 << 20,
                                   cpu_seconds=5.0, interval_ms=60_000)


def get(col, path: str, token: str, **params):
    base = {"from": DAY.isoformat(), "to": DAY.isoformat(), "tz": "UTC"}
    return col.get(path, token, params={**base, **params})


def assert_no_eng(text: str, data) -> None:
    for marker in (*ENG_MARKERS, data["eng"]):
        assert marker not in text, f"{marker!r} leaked: {text[:400]}"


def test_agents_take_their_enroll_secrets_groups(col, data):
    listed = {a["agent_id"]: a["groups"]
              for a in col.get("/api/v1/agents", data["admin"]).json()["agents"]}
    assert listed[data["sales"]] == ["sales"]
    assert listed[data["eng"]] == ["eng/backend"]
    assert listed[data["none"]] == []
    out = col.cli("agents", "list")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if data["eng"] in ln)
    assert "eng/backend" in line and "ws-eng" in line and "active" in line
    only = col.cli("agents", "list", "--group", "eng").stdout
    assert data["eng"] in only and data["sales"] not in only


def test_a_scoped_viewer_sees_only_its_groups_in_every_summary(col, data):
    for by in ("app", "agent", "user", "group", "day", "hour", "category"):
        resp = get(col, "/api/v1/summary", data["viewer"], by=by)
        assert resp.status_code == 200, resp.text
        assert_no_eng(resp.text, data)
        body = resp.json()
        assert body["total"]["active_seconds"] == 3600, by   # sam's hour, nobody else's
        assert body["scope"] == ["sales"]
    by_group = get(col, "/api/v1/summary", data["viewer"], by="group").json()["rows"]
    assert [(r["group"], r["active_seconds"]) for r in by_group] == [("sales", 3600)]
    by_user = get(col, "/api/v1/summary", data["viewer"], by="user").json()["rows"]
    assert [r["user"] for r in by_user] == ["sam"]


def test_by_group_for_the_whole_fleet_and_subgroups(col, data):
    rows = get(col, "/api/v1/summary", data["admin"], by="group").json()
    assert {r["group"]: r["active_seconds"] for r in rows["rows"]} == {
        "eng/backend": 7200, "sales": 3600, "(no group)": 1800}
    assert rows["total"]["active_seconds"] == 12600
    # "eng" covers eng/backend, as a filter and as a scope.
    eng = get(col, "/api/v1/summary", data["admin"], by="user", group="eng").json()
    assert [(r["user"], r["active_seconds"]) for r in eng["rows"]] == [("erin", 7200)]
    mine = get(col, "/api/v1/summary", data["eng_viewer"], by="app").json()
    assert [r["app"] for r in mine["rows"]] == ["vim-eng"]


def test_outside_the_scope_is_404_exactly_like_absent(col, data):
    for path in ("/api/v1/timeline", "/api/v1/processes"):
        hidden = col.get(path, data["viewer"], params={"agent": data["eng"], "date": "today"})
        absent = col.get(path, data["viewer"], params={"agent": "ag-doesnotexist", "date": "today"})
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["error"] == absent.json()["error"].replace("ag-doesnotexist",
                                                                       data["eng"])
    assert get(col, "/api/v1/summary", data["viewer"], agent=data["eng"]).status_code == 404
    hidden = get(col, "/api/v1/summary", data["viewer"], group="eng")
    absent = get(col, "/api/v1/summary", data["viewer"], group="nosuch")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"] == "group: no group 'eng'"
    # A user outside the scope answers like an unknown user: nothing.
    erin = get(col, "/api/v1/summary", data["viewer"], by="app", user="erin").json()
    ghost = get(col, "/api/v1/summary", data["viewer"], by="app", user="ghost").json()
    assert erin["rows"] == ghost["rows"] == [] and erin["total"] == ghost["total"]
    assert get(col, "/api/v1/summary", data["viewer"], group="bad group!").status_code == 400


def test_scoped_csv_exports_hold_only_the_scope(col, data):
    for kind in ("spans", "activity", "processes", "daily", "apps"):
        resp = get(col, f"/api/v1/export/{kind}.csv", data["exporter"])
        assert resp.status_code == 200, resp.text
        assert_no_eng(resp.text, data)
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        assert rows and {r["agent_id"] for r in rows} == {data["sales"]}, kind
        assert {r["group"] for r in rows} == {"sales"}, kind
    hidden = get(col, "/api/v1/export/spans.csv", data["exporter"], agent=data["eng"])
    assert hidden.status_code == 404
    fleet = get(col, "/api/v1/export/daily.csv", data["admin"]).text
    groups = {r["agent_id"]: r["group"] for r in csv.DictReader(io.StringIO(fleet))}
    assert groups == {data["sales"]: "sales", data["eng"]: "eng/backend", data["none"]: ""}
    entries = col.get("/api/v1/audit", data["admin"], params={"action": "export"}).json()
    assert entries["entries"][0]["params"].get("scope") is None   # admin: everything
    scoped = [e for e in entries["entries"] if e["role"] == "exporter"]
    assert scoped and all(e["params"]["scope"] == ["sales"] for e in scoped)


# Read routes that hold no agent data (same answer for every scope).
NOT_AGENT_DATA = {"/healthz", "/metrics", "/api/v1/rules", "/api/v1/tokens", "/api/v1/audit",
                  "/api/v1/me"}


def _scope_checks(data) -> dict[str, list[tuple[dict, str]]]:
    """For each GET route that answers about agents: calls as (params, token key);
    each must 200 without eng data, or 404 when it names the eng agent."""
    eng = data["eng"]
    return {
        "/api/v1/agents": [({}, "viewer")],
        "/api/v1/groups": [({}, "viewer")],
        "/api/v1/summary": [({"by": by}, "viewer") for by in ("agent", "user", "group", "app")]
                           + [({"agent": eng}, "viewer")],
        "/api/v1/timeline": [({"agent": eng, "date": DAY.isoformat()}, "viewer")],
        "/api/v1/processes": [({"agent": eng, "date": DAY.isoformat()}, "viewer")],
        "/api/v1/export/{kind}.csv": [({}, "exporter"), ({"agent": eng}, "exporter")],
        "/api/v1/live": [({}, "viewer")],
    }


def test_every_read_route_is_scoped(col, data):
    spec = col.get("/api/v1/openapi.json").json()
    checks = _scope_checks(data)
    reads = [p for p, ops in spec["paths"].items() if "get" in ops]
    unchecked = [p for p in reads if p not in checks and p not in NOT_AGENT_DATA]
    assert not unchecked, ("read routes without a scope check in this test (make them answer "
                           f"through collector.http.scope, then add them here): {unchecked}")
    for path in reads:
        for params, who in checks.get(path, []):
            kinds = ("spans", "activity", "processes", "daily", "apps") if "{kind}" in path \
                else ("",)
            for kind in kinds:
                resp = get(col, path.replace("{kind}", kind), data[who], **params)
                if params.get("agent") == data["eng"]:   # exactly like an absent agent
                    absent = get(col, path.replace("{kind}", kind), data[who],
                                 **{**params, "agent": "ag-absent"})
                    assert resp.status_code == absent.status_code == 404, (path, resp.text)
                    assert resp.text == absent.text.replace("ag-absent", data["eng"])
                else:
                    assert resp.status_code == 200, (path, params, resp.text)
                    assert_no_eng(resp.text, data)


def test_groups_list_is_scoped(col, data):
    mine = col.get("/api/v1/groups", data["viewer"]).json()
    assert mine == {"groups": [{"group": "sales", "agents": 1, "revoked_agents": 0}],
                    "scope": ["sales"]}
    every = col.get("/api/v1/groups", data["admin"]).json()["groups"]
    assert [g["group"] for g in every] == ["eng/backend", "sales"]


def test_admin_moves_an_agent_and_the_scope_follows(col, data):
    url = f"/api/v1/agents/{data['none']}/groups"
    assert col.request("PUT", url, data["viewer"], json={"groups": ["sales"]}).status_code == 403
    bad = col.request("PUT", url, data["admin"], json={"groups": ["no spaces"]})
    assert bad.status_code == 400 and "no spaces" in bad.json()["error"]
    missing = col.request("PUT", "/api/v1/agents/ag-nosuch/groups", data["admin"],
                          json={"groups": ["sales"]})
    assert missing.status_code == 404
    moved = col.request("PUT", url, data["admin"], json={"groups": ["sales", "design"]})
    assert moved.status_code == 200 and moved.json()["groups"] == ["design", "sales"]
    seen = col.get("/api/v1/agents", data["viewer"]).json()["agents"]
    assert {a["agent_id"]: a["groups"] for a in seen} == {data["sales"]: ["sales"],
                                                          data["none"]: ["sales"]}
    total = get(col, "/api/v1/summary", data["viewer"], by="app").json()["total"]
    assert total["active_seconds"] == 3600 + 1800
    # and back, with the CLI this time
    done = col.cli("agents", "set-group", data["none"])
    assert done.returncode == 0 and "(none)" in done.stdout, done.stderr
    assert get(col, "/api/v1/summary", data["viewer"], by="app").json()["total"][
        "active_seconds"] == 3600
    entries = col.get("/api/v1/audit", data["admin"], params={"action": "agent"}).json()
    assert [e["params"]["groups"] for e in entries["entries"][:2]] == [[], ["design", "sales"]]


def test_cli_refuses_bad_groups_and_unknown_agents(col, data):
    bad = col.cli("token", "create", "--role", "viewer", "--group", "a b")
    assert bad.returncode == 1 and "'a b'" in bad.stderr and "Traceback" not in bad.stderr
    admin = col.cli("token", "create", "--role", "admin", "--group", "sales")
    assert admin.returncode == 1 and "admin token sees every agent" in admin.stderr
    nosuch = col.cli("agents", "set-group", "ag-nosuch", "sales")
    assert nosuch.returncode == 1 and "no agent with id 'ag-nosuch'" in nosuch.stderr
    listed = col.cli("token", "list").stdout
    assert any("viewer" in ln and "sales" in ln for ln in listed.splitlines())


def test_cli_revokes_an_agent(col, data, tmp_path):
    agent = col.enroll_agent(hostname="ws-gone")
    done = col.cli("agents", "revoke", agent.agent_id)
    assert done.returncode == 0 and f"revoked agent {agent.agent_id}" in done.stdout
    listed = {a["agent_id"]: a["revoked"]
              for a in col.get("/api/v1/agents", data["admin"]).json()["agents"]}
    assert listed[agent.agent_id] is True
    nosuch = col.cli("agents", "revoke", "ag-nosuch")
    assert nosuch.returncode == 1 and "no agent" in nosuch.stderr


def test_operator_commands_summarise_and_export_by_group(col, data):
    from collector_harness import collector_command

    def run(*args: str, token: str):
        return subprocess.run([*collector_command(*args, "--url", col.url), "--token", token],
                              capture_output=True, text=True, timeout=60)

    day = ["--from", DAY.isoformat(), "--to", DAY.isoformat(), "--tz", "UTC"]
    done = run("summary", *day, "--by", "group", "--format", "json", token=data["admin"])
    assert done.returncode == 0, done.stderr
    rows = {r["group"]: r["active_seconds"] for r in json.loads(done.stdout)["rows"]}
    assert rows["eng/backend"] == 7200 and rows["sales"] == 3600
    table = run("summary", *day, "--by", "group", token=data["admin"]).stdout
    assert "eng/backend" in table and "2:00" in table
    scoped = run("summary", *day, "--by", "user", "--group", "eng", token=data["viewer"])
    assert scoped.returncode == 1 and "no group 'eng'" in scoped.stderr
    csv_out = run("export", "daily", *day, "--group", "sales", token=data["exporter"])
    assert csv_out.returncode == 0 and data["sales"] in csv_out.stdout
    assert_no_eng(csv_out.stdout, data)
