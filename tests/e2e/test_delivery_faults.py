"""Delivery under faults, with real processes and real sockets: a real
`worklens-collector serve` (killed with SIGKILL and restarted on the same
ports), agents enrolled with the real `worklens-agent enroll`, and agent
processes — the real `worklens-agent run`, or tests/e2e/agent_driver.py,
which feeds the real delivery pipeline spans whose titles the tests account
for one by one. Counts come from the collector's store."""

from __future__ import annotations

import collections
import itertools
import json
import socket
import subprocess
import time

import requests
from byteproxy import ByteCountingProxy
from certs import make_pki
from e2e_support import agent_command, clean_env
from polling import wait_for
from worklens.agent.spool import Spool

FAST = {"WORKLENS_DELIVERY_FLUSH_INTERVAL": "200ms"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spans(col, agent_id: str) -> list[tuple[str, int, int]]:
    """(title, start_ms, duration_ms) stored for the agent, oldest first."""
    return col.query("SELECT title, start_ms, duration_ms FROM window_spans WHERE agent = "
                     "(SELECT id FROM agents WHERE agent_id = ?) ORDER BY start_ms, title",
                     (agent_id,))


def sequences(col, agent_id: str) -> list[int]:
    return [r[0] for r in col.query("SELECT sequence FROM batches WHERE agent = (SELECT id "
                                    "FROM agents WHERE agent_id = ?) ORDER BY sequence",
                                    (agent_id,))]


def titles(col, agent_id: str) -> collections.Counter:
    return collections.Counter(t.rstrip(".") for t, _, _ in spans(col, agent_id))


def spooled_batches(data) -> int:
    depth, _ = spool_state(data)
    return depth.batches if depth else 0


def spool_state(data):
    """(depth, meta) of the agent's spool; (None, {}) while it is being created."""
    spool = Spool.inspect(data)
    if spool is None:
        return None, {}
    try:
        return spool.depth(), {k: spool.get(k) for k in ("dropped_total", "auth_error",
                                                          "last_ack_sequence")}
    finally:
        spool.close()


def agent_status(data, delivering: bool = True) -> dict:
    """``status --json``; it exits 1 exactly when the agent would not deliver."""
    done = subprocess.run(agent_command("status", "--json", "--data-dir", str(data)),
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == (0 if delivering else 1), done.stderr
    facts = json.loads(done.stdout)
    assert facts["ok"] is delivering
    return facts


def assert_exactly_once(col, agent_id: str, expected: list[str]) -> None:
    stored = titles(col, agent_id)
    duplicates = {t: c for t, c in stored.items() if c > 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    missing = [t for t in expected if t not in stored]
    assert not missing, f"never stored: {missing[:10]} ({len(missing)} in all)"
    assert sorted(stored) == sorted(expected)
    seqs = sequences(col, agent_id)
    assert seqs == list(range(1, len(seqs) + 1)), f"sequence gaps: {seqs}"


def test_agent_started_before_the_collector_delivers_everything_once_it_starts(
        tmp_path, collector_proc_factory, agents):
    """The real `worklens-agent run` (no desktop: window/idle backends 'none'),
    enrolling itself from its config, started while nothing listens."""
    col = collector_proc_factory()
    secret = col.create_token("enroll")          # works on the store; no server yet
    address = f"127.0.0.1:{free_port()}"
    data = tmp_path / "agent"
    agent = agents.run(data, env={
        "WORKLENS_COLLECTOR_ADDRESS": address, "WORKLENS_COLLECTOR_ENROLL_SECRET": secret,
        "WORKLENS_WINDOW_BACKEND": "none", "WORKLENS_IDLE_BACKEND": "none",
        "WORKLENS_SAMPLING_PROCESS_INTERVAL": "1s", "WORKLENS_DELIVERY_FLUSH_INTERVAL": "1s",
        "DISPLAY": ""})
    wait_for(lambda: spooled_batches(data) >= 3,
               what="batches spooled while the collector is down")
    assert not (data / "credential.json").exists()
    collector_started_ms = int(time.time() * 1000)
    col.start(grpc_listen=address)
    wait_for(lambda: (data / "credential.json").exists(), what="self-enrollment")
    agent_id = json.loads((data / "credential.json").read_text())["agent_id"]
    wait_for(lambda: spool_state(data)[0].batches == 0, timeout=120, what="the backlog acked")
    assert agent.terminate() == 0, agent.output
    depth, meta = spool_state(data)
    assert (depth.batches, depth.unsealed) == (0, 0), agent.output   # nothing left behind
    seqs = sequences(col, agent_id)
    assert seqs == list(range(1, meta["last_ack_sequence"] + 1))
    samples = [r[0] for r in col.query(
        "SELECT time_ms FROM system_totals WHERE agent = (SELECT id FROM agents WHERE "
        "agent_id = ?) ORDER BY time_ms", (agent_id,))]
    assert samples[0] < collector_started_ms         # recorded during the downtime
    gaps = [b - a for a, b in itertools.pairwise(samples)]
    assert max(gaps) < 10_000, f"a hole in the process samples: {gaps}"


def test_collector_killed_repeatedly_every_span_stored_exactly_once(
        collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    data, agent_id = agents.enroll(col)
    # No span count: on a loaded machine four restarts can outlast any fixed number of
    # spans, and a driver that has finished makes no more progress to wait for.
    driver = agents.driver(data, "--prefix", "steady", "--span", "0.03", env=FAST)
    for _ in range(4):
        closed_before = len(driver.events("closed"))
        wait_for(lambda: len(driver.events("closed")) > closed_before + 40,  # noqa: B023
                   what="the stream to progress")
        col.restart(kill=True)                     # SIGKILL, then the same ports again
    assert driver.terminate() == 0, driver.output  # closes the open span, drains, exits
    assert "drained" in driver.lines, driver.output
    closed = [f"steady {n}" for n, _, _ in driver.events("closed")]
    assert len(closed) > 160
    assert_exactly_once(col, agent_id, closed)


def test_agent_killed_loses_nothing_closed_and_at_most_a_flush_of_the_open_span(
        collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    data, agent_id = agents.enroll(col)
    flush_ms = 250
    env = {"WORKLENS_DELIVERY_FLUSH_INTERVAL": f"{flush_ms}ms"}
    first = agents.driver(data, "--prefix", "before", "--span", "1.5", env=env)

    def mid_span_checkpoint():
        closed = first.events("closed")
        points = [c for c in first.events("checkpoint") if c[2] >= 700]
        return closed and len(closed) >= 3 and points and points[-1][0] == closed[-1][0] + 1
    wait_for(mid_span_checkpoint, what="three closed spans and one well under way")
    first.kill()
    killed_ms = int(time.time() * 1000)
    closed = first.events("closed")
    open_n, open_start, checkpointed = first.events("checkpoint")[-1]
    assert open_n == closed[-1][0] + 1

    second = agents.driver(data, "--prefix", "after", "--span", "0.1", "--count", "5", env=env)
    assert second.wait() == 0 and "drained" in second.lines, second.output
    expected = [f"before {n}" for n, _, _ in closed] + [f"before {open_n}"] + \
               [f"after {i}" for i in range(6)]
    assert_exactly_once(col, agent_id, expected)
    [(_, start, duration)] = [s for s in spans(col, agent_id) if s[0] == f"before {open_n}"]
    assert start == open_start
    assert duration >= checkpointed                 # every checkpoint survives kill -9
    lost_ms = killed_ms - (start + duration)
    # by construction at most one flush interval; the slack absorbs a loaded machine
    assert lost_ms <= flush_ms + 2_000, lost_ms


def test_spool_cap_drops_the_oldest_and_the_collector_learns_how_many(
        collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    data, agent_id = agents.enroll(col)
    col.kill()                                      # the collector is gone for a while
    env = {"WORKLENS_DELIVERY_FLUSH_INTERVAL": "100ms",
           "WORKLENS_DELIVERY_SPOOL_MAX_MB": "0.02"}  # ~20 KB
    offline = agents.driver(data, "--prefix", "offline", "--span", "0.01", "--count", "200",
                            "--title-pad", "400", "--drain", "0", env=env)
    assert offline.wait() == 0, offline.output
    depth, meta = spool_state(data)
    assert meta["dropped_total"] > 0 and depth.bytes <= 20 * 1024 * 1.05
    col.restart(kill=True)
    online = agents.driver(data, "--prefix", "online", "--span", "0.05", "--count", "2",
                           env=env)
    assert online.wait() == 0 and "drained" in online.lines, online.output
    dropped = spool_state(data)[1]["dropped_total"]
    [(reported,)] = col.query("SELECT dropped_events FROM agents WHERE agent_id = ?",
                              (agent_id,))
    assert reported == dropped
    stored = titles(col, agent_id)
    kept = sorted(int(t.split()[1]) for t in stored if t.startswith("offline "))
    assert len(kept) + dropped == 201
    assert kept == list(range(201 - len(kept), 201))   # the oldest went first
    assert all(stored[f"online {i}"] == 1 for i in range(3))


def test_poisoned_batch_is_dead_lettered_and_later_batches_still_flow(
        collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    data, agent_id = agents.enroll(col)
    driver = agents.driver(data, "--prefix", "p", "--span", "0.05", "--count", "40",
                           "--poison", "15", env=FAST)
    assert driver.wait() == 0 and "drained" in driver.lines, driver.output
    spool = Spool.inspect(data)
    [(sequence, events, reason)] = spool.dead_letters()
    spool.close()
    assert reason.startswith("INVALID_ARGUMENT") and "title" in reason
    stored = titles(col, agent_id)
    assert "p 15" not in stored and stored["p 40"] == 1          # later batches flowed
    assert len(stored) + events == 41 and max(stored.values()) == 1
    assert sequence not in sequences(col, agent_id)
    facts = agent_status(data)["spool"]
    assert (facts["dead_letters"], facts["dead_letter_events"]) == (1, events)


def revoke(col, agent_id: str) -> None:
    admin = col.create_token("admin")
    resp = requests.post(f"{col.http_url}/api/v1/agents/{agent_id}/revoke",
                         headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert resp.status_code == 200, resp.text


def test_revoked_credential_stops_the_agent_and_it_says_so(collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start()
    network = ByteCountingProxy(col.grpc_address)     # lets the test drop the connection
    try:
        data, agent_id = agents.enroll(col, address=network.address)
        driver = agents.driver(data, "--prefix", "r", "--span", "0.1", env=FAST)
        wait_for(lambda: titles(col, agent_id)["r 3"] == 1, what="delivery before revoking")
        revoke(col, agent_id)
        network.cut()         # the agent's next connection meets the revocation
        wait_for(lambda: "re-enroll" in driver.output, what="the agent to say re-enroll")
        assert "stopped sending" in driver.output
        facts = agent_status(data, delivering=False)
        assert "re-enroll" in facts["spool"]["sending_stopped"]
        assert facts["collector"]["credential_accepted"] is False
        stored_then = sum(titles(col, agent_id).values())
        connections = network.connections
        time.sleep(1.5)                               # it keeps recording, not sending
        assert sum(titles(col, agent_id).values()) == stored_then
        assert network.connections == connections, "kept reconnecting with a dead credential"
        assert spool_state(data)[0].batches > 0
        assert driver.proc.poll() is None
    finally:
        network.close()


def test_revocation_reaches_an_agent_on_an_open_stream(collector_proc_factory, agents):
    """Revoked over the HTTP API while the agent's Upload stream stays open (no
    reconnect): the collector ends the stream and nothing more is stored."""
    col = collector_proc_factory()
    col.start()
    network = ByteCountingProxy(col.grpc_address)     # counts the agent's connections
    try:
        data, agent_id = agents.enroll(col, address=network.address)
        driver = agents.driver(data, "--prefix", "o", "--span", "0.1", env=FAST)
        wait_for(lambda: titles(col, agent_id)["o 3"] == 1, what="delivery before revoking")
        connections = network.connections
        revoke(col, agent_id)
        wait_for(lambda: "re-enroll" in driver.output, timeout=30,
                   what="the agent to say re-enroll")
        assert "revoked or replaced while the upload stream was open" in driver.output
        assert network.connections == connections, "the stream was not the one open before"
        stored_then = sum(titles(col, agent_id).values())
        time.sleep(1.5)                               # it keeps recording, not sending
        assert sum(titles(col, agent_id).values()) == stored_then
        assert spool_state(data)[0].batches > 0
    finally:
        network.close()


def enroll_cli(col, data, *extra: str):
    return subprocess.run(agent_command("enroll", "--collector", col.grpc_address, "--secret",
                                        col.create_token("enroll"), "--data-dir", str(data),
                                        *extra),
                          env=clean_env(), capture_output=True, text=True, timeout=60)


def test_tls_wrong_ca_and_mtls_without_client_certificate_are_refused_clearly(
        tmp_path, collector_proc_factory, agents):
    pki = make_pki(tmp_path / "pki")
    config = tmp_path / "collector.toml"
    config.write_text(f'[grpc]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
                      f'client_ca = "{pki.ca_cert}"\n')
    col = collector_proc_factory(config_path=config)
    col.start()

    wrong_ca = enroll_cli(col, tmp_path / "a1", "--ca-cert", str(pki.other_ca_cert),
                          "--client-cert", str(pki.client_cert),
                          "--client-key", str(pki.client_key))
    assert wrong_ca.returncode == 1
    assert wrong_ca.stderr.count("\n") == 1 and "Traceback" not in wrong_ca.stderr
    assert "its certificate is not signed by the CA in ca_cert" in wrong_ca.stderr

    no_client_cert = enroll_cli(col, tmp_path / "a2", "--ca-cert", str(pki.ca_cert))
    assert no_client_cert.returncode == 1 and no_client_cert.stderr.count("\n") == 1
    assert "requires a client certificate (mutual TLS)" in no_client_cert.stderr

    # and with the right CA and a client certificate, spans flow over mutual TLS
    data, agent_id = agents.enroll(col, "a3", "--ca-cert", str(pki.ca_cert), "--client-cert",
                                   str(pki.client_cert), "--client-key", str(pki.client_key))
    driver = agents.driver(data, "--prefix", "tls", "--span", "0.05", "--count", "10", env=FAST)
    assert driver.wait() == 0 and "drained" in driver.lines, driver.output
    assert_exactly_once(col, agent_id, [f"tls {i}" for i in range(11)])
    assert agent_status(data)["collector"]["transport"] == "mutual TLS"
