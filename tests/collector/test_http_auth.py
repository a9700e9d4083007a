"""The HTTP API's gatekeeping against a real `worklens-collector serve`:
tokens and roles, error shape, audit of token/agent changes, health, metrics
and the OpenAPI document."""

from __future__ import annotations

import time

import pytest
from http_support import activity, window
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.both_engines


@pytest.fixture(scope="module")
def tokens(col):
    return {role: col.token(role) for role in ("viewer", "exporter", "admin", "enroll")}


def assert_error(resp, status: int, *words: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    message = resp.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


def test_healthz_is_open_and_ok(col):
    resp = col.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_missing_bad_and_malformed_tokens_get_401_with_challenge(col):
    for token in (None, "nonsense", "wl_abc_def", "wl_" + "0" * 12 + "_" + "x" * 43):
        resp = col.get("/api/v1/agents", token)
        assert_error(resp, 401)
        assert resp.headers["www-authenticate"].lower().startswith("bearer")
    resp = col.request("GET", "/api/v1/agents", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_error(resp, 401, "bearer")


def test_revoked_and_expired_tokens_get_401(col, tokens):
    revoked = col.token("admin", "to-revoke")
    assert col.get("/api/v1/agents", revoked).status_code == 200
    token_id = revoked.split("_")[1]
    resp = col.request("DELETE", f"/api/v1/tokens/{token_id}", tokens["admin"])
    assert resp.status_code == 200, resp.text
    assert_error(col.get("/api/v1/agents", revoked), 401)

    expiring = col.token("viewer", "short", expires_s=1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and col.get("/api/v1/agents", expiring).status_code == 200:
        time.sleep(0.2)
    assert_error(col.get("/api/v1/agents", expiring), 401)


@pytest.mark.parametrize(("role", "allowed"), [
    ("viewer", {"agents", "rules_get", "summary_params"}),
    ("exporter", {"agents", "rules_get", "summary_params", "export_params"}),
    ("admin", {"agents", "rules_get", "summary_params", "export_params", "tokens", "audit",
               "rules_put"}),
])
def test_each_role_can_do_exactly_what_it_should(col, tokens, role, allowed):
    token = tokens[role]
    # Requests whose parameters are invalid on purpose: a permitted caller gets 400
    # (it got past the role check), a refused one 403 — neither touches data.
    probes = {
        "agents": ("GET", "/api/v1/agents", {}),
        "rules_get": ("GET", "/api/v1/rules", {}),
        "summary_params": ("GET", "/api/v1/summary?from=nope&by=app", {}),
        "export_params": ("GET", "/api/v1/export/spans.csv?from=nope", {}),
        "tokens": ("GET", "/api/v1/tokens", {}),
        "audit": ("GET", "/api/v1/audit", {}),
        "rules_put": ("PUT", "/api/v1/rules", {"json": {"rules": [
            {"app": "(", "category": "Broken", "productivity": "productive"}]}}),
    }
    for name, (method, path, kw) in probes.items():
        resp = col.request(method, path, token, **kw)
        if name in allowed:
            assert resp.status_code not in (401, 403), (name, resp.status_code, resp.text)
        else:
            message = assert_error(resp, 403, role)
            assert "role" in message, message


def test_enroll_tokens_open_nothing(col, tokens):
    assert_error(col.get("/api/v1/agents", tokens["enroll"]), 403, "viewer")


def test_agents_lists_an_enrolled_agent_with_what_it_reported(col, tokens):
    agent = col.enroll_agent(hostname="ws-agents")
    now = int(time.time() * 1000) - 60_000
    acks = col.send(agent, "carol", [window(now, 30, "firefox")], [activity(now, 30)],
                    hostname="ws-agents")
    assert [a.sequence for a in acks] == [1]
    listed = col.get("/api/v1/agents", tokens["viewer"], params={"tz": "UTC"}).json()
    mine = [a for a in listed["agents"] if a["agent_id"] == agent.agent_id]
    assert len(mine) == 1
    assert mine[0]["hostname"] == "ws-agents" and mine[0]["username"] == "carol"
    assert mine[0]["last_sequence"] == 1 and mine[0]["revoked"] is False
    assert mine[0]["last_seen"].endswith("+00:00")
    assert "credential_hash" not in mine[0]


def test_admin_manages_tokens_and_every_change_is_audited(col, tokens):
    admin = tokens["admin"]
    resp = col.request("POST", "/api/v1/tokens", admin,
                       json={"role": "viewer", "name": "dashboard-kiosk", "expires": "30d"})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    secret, info = created["secret"], created["token"]
    assert info["role"] == "viewer" and info["expires_ms"] > time.time() * 1000 + 29 * 86400e3
    assert col.get("/api/v1/agents", secret).status_code == 200

    listed = col.get("/api/v1/tokens", admin).json()["tokens"]
    row = next(t for t in listed if t["id"] == info["id"])
    assert row["name"] == "dashboard-kiosk"
    assert all("secret" not in key and "hash" not in key for t in listed for key in t)

    assert col.request("DELETE", f"/api/v1/tokens/{info['id']}", admin).status_code == 200
    assert_error(col.get("/api/v1/agents", secret), 401)
    assert_error(col.request("DELETE", "/api/v1/tokens/doesnotexist", admin), 404, "doesnotexist")

    entries = col.get("/api/v1/audit", admin, params={"action": "token"}).json()["entries"]
    mine = [e for e in entries if e["params"].get("id") == info["id"]]
    assert [e["action"] for e in mine] == ["token.revoke", "token.create"]
    admin_id = admin.split("_")[1]
    assert all(e["token_id"] == admin_id and e["role"] == "admin" for e in mine)
    assert mine[1]["params"]["role"] == "viewer" and mine[1]["client"] == "127.0.0.1"


def test_bad_token_requests_are_400_or_422_naming_the_field(col, tokens):
    admin = tokens["admin"]
    assert_error(col.request("POST", "/api/v1/tokens", admin, json={"role": "root"}), 422,
                 "role")
    assert_error(col.request("POST", "/api/v1/tokens", admin,
                             json={"role": "viewer", "expires": "soon"}), 400, "expires")


def test_admin_can_revoke_an_agent_and_it_is_audited(col, tokens):
    agent = col.enroll_agent(hostname="ws-revoke")
    resp = col.request("POST", f"/api/v1/agents/{agent.agent_id}/revoke", tokens["admin"])
    assert resp.status_code == 200, resp.text
    listed = col.get("/api/v1/agents", tokens["viewer"]).json()["agents"]
    assert next(a for a in listed if a["agent_id"] == agent.agent_id)["revoked"] is True
    assert_error(col.request("POST", f"/api/v1/agents/{agent.agent_id}/revoke",
                             tokens["exporter"]), 403, "admin")
    entries = col.get("/api/v1/audit", tokens["admin"], params={"action": "agent"}).json()
    assert any(e["params"] == {"agent_id": agent.agent_id} for e in entries["entries"])


@pytest.mark.parametrize(("query", "status", "words"), [
    ("from=2024-13-01", 400, ["from", "YYYY-MM-DD"]),
    ("from=last-week", 400, ["from"]),
    ("from=2024-05-02&to=2024-05-01", 400, ["from", "after"]),
    ("from=today&to=someday", 400, ["to"]),
    ("from=today&tz=Mars/Olympus", 400, ["tz", "Mars/Olympus"]),
    ("from=today&by=colour", 400, ["by", "colour"]),
    ("to=today", 422, ["from"]),
])
def test_malformed_summary_parameters_name_the_parameter(col, tokens, query, status, words):
    if "by=" not in query:
        query += "&by=app"
    assert_error(col.get(f"/api/v1/summary?{query}", tokens["viewer"]), status, *words)


def test_malformed_export_and_timeline_parameters(col, tokens):
    assert_error(col.get("/api/v1/export/passwords.csv?from=today", tokens["exporter"]), 404,
                 "passwords")
    assert_error(col.get("/api/v1/export/spans.csv?from=today&tz=Nowhere", tokens["exporter"]),
                 400, "tz")
    assert_error(col.get("/api/v1/timeline?agent=x&date=31/12/2024", tokens["viewer"]), 400,
                 "date")
    assert_error(col.get("/api/v1/timeline?date=today", tokens["viewer"]), 422, "agent")


def test_unknown_paths_and_methods_are_json_errors(col, tokens):
    assert_error(col.get("/api/v1/nothing-here", tokens["viewer"]), 404)
    assert_error(col.request("PATCH", "/api/v1/agents", tokens["admin"]), 405)


def test_openapi_document_lists_the_api(col):
    doc = col.get("/api/v1/openapi.json").json()
    paths = set(doc["paths"])
    for path in ("/api/v1/agents", "/api/v1/summary", "/api/v1/timeline",
                 "/api/v1/export/{kind}.csv", "/api/v1/rules", "/api/v1/tokens",
                 "/api/v1/tokens/{token_id}", "/healthz", "/metrics"):
        assert path in paths, sorted(paths)
    assert {"get", "put"} <= set(doc["paths"]["/api/v1/rules"])
    params = {p["name"] for p in doc["paths"]["/api/v1/summary"]["get"]["parameters"]}
    assert {"from", "to", "by", "agent", "user", "tz"} <= params


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_metrics_are_prometheus_text_and_count_ingest(col):
    before = col.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    stored_before = _sample(before.text, "worklens_batches_total", result="stored") or 0.0
    events_before = _sample(before.text, "worklens_events_total") or 0.0
    assert _sample(before.text, "worklens_store_size_bytes") > 0

    agent = col.enroll_agent(hostname="ws-metrics")
    now = int(time.time() * 1000) - 120_000
    col.send(agent, "erin", [window(now, 10, "code"), window(now + 10_000, 5, "xterm")],
             [activity(now, 15, keys=12)])
    after = col.get("/metrics").text
    assert _sample(after, "worklens_batches_total", result="stored") == stored_before + 1
    assert _sample(after, "worklens_events_total") == events_before + 3
    assert _sample(after, "worklens_ack_latency_seconds_count") >= 1
    names = {f.name for f in text_string_to_metric_families(after)}
    assert {"worklens_connected_agents", "worklens_rejects"} <= names
