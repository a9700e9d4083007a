"""Several `worklens-collector serve` processes sharing one real PostgreSQL
(tests/pgserver.py), as an operator runs them behind a load balancer: agents
with both addresses (the real delivery pipeline, tests/e2e/fleet_driver.py), a
collector killed with SIGKILL mid-stream, the database stopped under load, a
revocation made through one collector reaching a stream open on the other,
collectors starting together on an empty database, scheduled maintenance
taking turns, and back-pressure when the database falls behind. Every count
comes from the database itself."""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from byteproxy import ByteCountingProxy
from collector_harness import AgentCredentials, CollectorProcess, make_batch
from e2e_support import AgentProcess, clean_env
from polling import wait_for
from worklens.collector.ingest.service import REVOKED_ON_STREAM
from worklens.collector.store.migrate import POSTGRESQL_DIR, available
from worklens.v1 import agent_pb2

HERE = Path(__file__).parent
FAST = {"WORKLENS_DELIVERY_FLUSH_INTERVAL": "200ms"}
REVOCATION_BOUND_S = 5.0


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """What an operator's psql would show (%s placeholders)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def stored(url: str, agent_id: str) -> tuple[list[int], collections.Counter]:
    """The agent's stored batch sequences (in order) and window span titles."""
    key = "(SELECT id FROM agents WHERE agent_id = %s)"
    sequences = [r[0] for r in rows(
        url, f"SELECT sequence FROM batches WHERE agent = {key} ORDER BY sequence",
        (agent_id,))]
    titles = collections.Counter(r[0] for r in rows(
        url, f"SELECT title FROM window_spans WHERE agent = {key}", (agent_id,)))
    return sequences, titles


def assert_exactly_once(url: str, agent_id: str, expected: set[str]) -> None:
    sequences, titles = stored(url, agent_id)
    assert sequences == list(range(1, len(sequences) + 1)), \
        f"{agent_id}: a batch missing or doubled: {sequences}"
    assert set(titles) == expected, f"{agent_id}: spans missing: {expected - set(titles)}"
    assert [t for t, n in titles.items() if n > 1] == [], f"{agent_id}: spans stored twice"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator:
    """``fleet.collector(url)`` starts a `serve` process on that database;
    ``fleet.agents(secret, n, addresses, *args)`` starts a fleet_driver.py;
    everything is killed at teardown."""
    procs: list[CollectorProcess] = []
    drivers: list[AgentProcess] = []

    class Fleet:
        @staticmethod
        def collector(url: str, start: bool = True) -> CollectorProcess:
            col = CollectorProcess(tmp_path / f"collector-{len(procs)}", db_url=url)
            procs.append(col)
            if start:
                col.start()
            return col

        @staticmethod
        def agents(secret: str, count: int, addresses: list[str], *args: str) -> AgentProcess:
            argv = [sys.executable, str(HERE / "fleet_driver.py"), "--base",
                    str(tmp_path / "agents"), "--agents", str(count)]
            for choice in addresses:
                argv += ["--addresses", choice]
            driver = AgentProcess([*argv, *args], clean_env(
                **FAST, WORKLENS_COLLECTOR_ENROLL_SECRET=secret)).start()
            drivers.append(driver)
            return driver

        @staticmethod
        def agent_ids(count: int) -> list[str]:
            def ids() -> list[str] | None:
                found = []
                for i in range(count):
                    path = tmp_path / "agents" / f"agent-{i}" / "credential.json"
                    try:
                        found.append(json.loads(path.read_text())["agent_id"])
                    except (OSError, ValueError, KeyError):
                        return None
                return found
            return wait_for(ids, what=f"{count} agents enrolled")

    yield Fleet()
    for driver in drivers:
        driver.kill()
    for col in procs:
        col.kill()


def batches_by_agent(url: str) -> dict[str, int]:
    return dict(rows(url, "SELECT a.agent_id, count(b.sequence) FROM agents a "
                          "LEFT JOIN batches b ON b.agent = a.id GROUP BY a.agent_id"))


class _Gated:
    """A socket whose ``sendall`` waits while ``gate`` is closed (everything else as is)."""

    def __init__(self, sock: socket.socket, gate: threading.Event) -> None:
        self._sock, self._gate = sock, gate

    def sendall(self, data: bytes) -> None:
        self._gate.wait()
        self._sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class AckDam(ByteCountingProxy):
    """A front door that can hold back what the collector sends (its acks) while
    it still receives and commits batches: the moment before a crash, stretched."""

    def __init__(self, upstream: str) -> None:
        self.gate = threading.Event()
        self.gate.set()
        super().__init__(upstream)

    def _pump(self, src, dst, counter, frames) -> None:
        if counter == "received":
            dst = _Gated(dst, self.gate)
        super()._pump(src, dst, counter, frames)


def duplicates_acked(col: CollectorProcess) -> float:
    with urllib.request.urlopen(f"{col.http_url}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    line = next(x for x in text.splitlines()
                if x.startswith('worklens_batches_total{result="duplicate"}'))
    return float(line.split()[-1])


def test_a_collector_killed_mid_stream_every_acked_batch_stored_once(postgres_url, fleet):
    """20 agents over two collectors (half prefer each); a's acks are held back for
    a moment (its commits go on), then a is SIGKILLed: the agents carry on through
    b, resending what a stored but never acknowledged (b acks those as duplicates),
    and once their spools are drained every batch is in the database exactly once,
    with every span."""
    a, b = fleet.collector(postgres_url), fleet.collector(postgres_url)
    dam = AckDam(a.grpc_address)
    count, spans = 20, 150
    driver = fleet.agents(a.create_token("enroll"), count,
                          [f"{dam.address},{b.grpc_address}",
                           f"{b.grpc_address},{dam.address}"],
                          "--prefix", "k", "--span", "0.05", "--count", str(spans))
    try:
        ids = fleet.agent_ids(count)
        wait_for(lambda: (lambda n: len(n) == count and min(n.values()) >= 3)(
            batches_by_agent(postgres_url)), what="every agent delivering")
        dam.gate.clear()                              # a commits, its acks go nowhere
        time.sleep(1.5)
        assert "written" not in driver.lines, "the agents finished before the kill"
        a.kill()
        killed_at = int(time.time() * 1000)
        dam.cut()
        dam.gate.set()                                # the held acks die with the door
    finally:
        dam.close()
    assert driver.proc.wait(120) == 0, driver.output
    assert [line for line in driver.lines if line.startswith("undrained")] == []
    assert sum(line.startswith("drained") for line in driver.lines) == count
    for agent_id in ids:
        assert_exactly_once(postgres_url, agent_id, {f"k {n}" for n in range(spans)})
    # every agent went on storing after the kill (through b, the only one left)
    after = dict(rows(postgres_url, "SELECT a.agent_id, count(*) FROM batches b JOIN agents "
                                    "a ON a.id = b.agent WHERE b.received_ms > %s "
                                    "GROUP BY a.agent_id", (killed_at,)))
    assert sorted(after) == sorted(ids)
    assert duplicates_acked(b) > 0, "no batch stored by a was resent through b"
    assert b.proc.poll() is None and "Traceback" not in b.output, b.output[-3000:]


def healthz(col: CollectorProcess) -> int:
    try:
        with urllib.request.urlopen(f"{col.http_url}/healthz", timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def api_status(col: CollectorProcess, token: str) -> int:
    request = urllib.request.Request(f"{col.http_url}/api/v1/agents",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def upload_code(col: CollectorProcess, agent: AgentCredentials, sequence: int
                ) -> grpc.StatusCode:
    try:
        col.upload(agent, [make_batch(agent.agent_id, sequence)], timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_postgresql_down_under_load_collectors_answer_unavailable_and_recover(
        postgres_server_factory, fleet, how):
    """The database stopped (a clean shutdown) or killed (SIGKILL, crash recovery at
    the restart) for 10 s while 8 agents stream through two collectors: meanwhile
    ingest answers UNAVAILABLE, /healthz and the API 503; when it is back, both collectors
    (the same processes) store again, and nothing acked is lost."""
    server = postgres_server_factory()
    url = server.create_database()
    a, b = fleet.collector(url), fleet.collector(url)
    probe = a.enroll_agent()
    viewer = b.create_token("viewer")
    count, spans = 8, 400
    driver = fleet.agents(a.create_token("enroll"), count,
                          [f"{a.grpc_address},{b.grpc_address}",
                           f"{b.grpc_address},{a.grpc_address}"],
                          "--prefix", "d", "--span", "0.05", "--count", str(spans))
    ids = fleet.agent_ids(count)
    wait_for(lambda: len(batches_by_agent(url)) == count + 1, what="every agent delivering")
    assert upload_code(b, probe, 1) == grpc.StatusCode.OK
    getattr(server, how)()
    stopped = time.monotonic()
    assert [upload_code(col, probe, 2) for col in (a, b)] == [grpc.StatusCode.UNAVAILABLE] * 2
    assert [healthz(col) for col in (a, b)] == [503, 503]
    assert api_status(b, viewer) == 503
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    assert "written" not in driver.lines, "the agents finished during the outage"
    server.start()
    wait_for(lambda: upload_code(a, probe, 2) == grpc.StatusCode.OK, timeout=30,
             what="collector a storing again")
    wait_for(lambda: upload_code(b, probe, 3) == grpc.StatusCode.OK, timeout=30,
             what="collector b storing again")
    assert [healthz(col) for col in (a, b)] == [200, 200]
    assert api_status(b, viewer) == 200
    assert driver.proc.wait(120) == 0, driver.output
    assert sum(line.startswith("drained") for line in driver.lines) == count, driver.output
    for agent_id in ids:
        assert_exactly_once(url, agent_id, {f"d {n}" for n in range(spans)})
    assert stored(url, probe.agent_id)[0] == [1, 2, 3]
    for col in (a, b):
        assert col.proc.poll() is None, col.output[-3000:]
        assert "is not reachable" in col.output and "is reachable again" in col.output
        assert "Traceback" not in col.output, col.output[-3000:]


class OpenStream:
    """An Upload stream held open (and idle) by a test, as a connected agent's is."""

    def __init__(self, col: CollectorProcess, agent: AgentCredentials) -> None:
        self.channel = col.channel()
        self.requests: queue.Queue = queue.Queue()
        self.call = col.stub(self.channel).Upload(iter(self.requests.get, None),
                                                  metadata=agent.metadata, timeout=60)
        self.requests.put(make_batch(agent.agent_id, 1))
        assert next(self.call).sequence == 1

    def ended_after(self, started: float) -> tuple[grpc.StatusCode, str, float]:
        """Wait (sending nothing) for the collector to end the stream."""
        with pytest.raises(grpc.RpcError) as error:
            next(self.call)
        elapsed = time.monotonic() - started
        self.channel.close()
        return error.value.code(), error.value.details(), elapsed


def test_a_revocation_through_one_collector_ends_the_stream_on_the_other(postgres_url,
                                                                          fleet):
    """Streams open on collector b while their agents send nothing; each agent
    loses its credential through collector a's HTTP API, the `agents revoke` CLI,
    or a re-enrollment through a: b ends each stream within 5 s."""
    a, b = fleet.collector(postgres_url), fleet.collector(postgres_url)
    secret = a.create_token("enroll")
    admin = a.create_token("admin")
    agents = [a.enroll_agent(secret) for _ in range(3)]
    survivor = a.enroll_agent(secret)
    streams = [OpenStream(b, agent) for agent in agents]
    untouched = OpenStream(b, survivor)

    def over_http(agent: AgentCredentials) -> None:
        request = urllib.request.Request(
            f"{a.http_url}/api/v1/agents/{agent.agent_id}/revoke", method="POST",
            headers={"Authorization": f"Bearer {admin}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200

    def over_cli(agent: AgentCredentials) -> None:
        a.cli("agents", "revoke", agent.agent_id, check=True)

    def by_reenrolling(agent: AgentCredentials) -> None:
        with a.channel() as channel:
            a.stub(channel).Enroll(agent_pb2.EnrollRequest(
                secret=secret, install_id=agent.install_id,
                host=agent_pb2.HostInfo(hostname="ws-17", os="linux", user="alice")),
                metadata=agent.metadata, timeout=30)

    for stream, revoke, agent in zip(streams, (over_http, over_cli, by_reenrolling),
                                     agents, strict=True):
        revoke(agent)
        code, details, elapsed = stream.ended_after(time.monotonic())
        assert code == grpc.StatusCode.UNAUTHENTICATED, (revoke.__name__, details)
        assert details == REVOKED_ON_STREAM
        assert elapsed < REVOCATION_BOUND_S, f"{revoke.__name__}: ended after {elapsed:.1f}s"
    # the other agent's stream on b is still open and stores
    untouched.requests.put(make_batch(survivor.agent_id, 2))
    assert next(untouched.call).sequence == 2
    untouched.requests.put(None)
    untouched.channel.close()
    # an API token revoked through a is refused by b at the next request
    viewer = a.create_token("viewer")
    assert api_status(b, viewer) == 200
    a.cli("token", "revoke", viewer.split("_")[1], check=True)
    assert api_status(b, viewer) == 401
    assert "Traceback" not in a.output + b.output


def test_a_revocation_by_another_process_ends_an_idle_stream_on_sqlite_too(
        collector_proc_factory):
    """The same watcher serves the embedded store: `agents revoke` run beside the
    collector (its own process) ends the agent's idle stream within 5 s."""
    col = collector_proc_factory()
    col.start()
    agent = col.enroll_agent()
    stream = OpenStream(col, agent)
    col.cli("agents", "revoke", agent.agent_id, check=True)
    code, details, elapsed = stream.ended_after(time.monotonic())
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, REVOKED_ON_STREAM)
    assert elapsed < REVOCATION_BOUND_S


def test_collectors_starting_together_on_an_empty_database_migrate_once(postgres_url,
                                                                         fleet):
    cols = [fleet.collector(postgres_url, start=False) for _ in range(3)]
    starters = [threading.Thread(target=col.start) for col in cols]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(120)
    assert all(col.proc.poll() is None and col.grpc_address for col in cols), \
        "\n".join(col.output[-2000:] for col in cols)
    versions = rows(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(m.version,) for m in available(POSTGRESQL_DIR)]
    for col in cols:
        assert "ERROR" not in col.output and "Traceback" not in col.output, col.output
    # ... and they serve one database: enrolled through one, stored through another
    agent = cols[0].enroll_agent()
    assert cols[2].upload(agent, [make_batch(agent.agent_id, 1)])[0].sequence == 1
    assert stored(postgres_url, agent.agent_id)[0] == [1]


def test_scheduled_maintenance_runs_on_one_collector_at_a_time(postgres_url, tmp_path,
                                                               monkeypatch, caplog):
    """Two collectors on one database, retention scheduled every 0.2 s and each run
    taking 0.5 s: the runs never overlap, and each collector skips the runs that
    come while the other holds the turn."""
    from collector_harness import InProcessCollector
    from worklens.collector import retention

    runs: list[tuple[int, float, float]] = []

    def purge(store, keep_s):   # the real one's SQL is not what this test is about
        started = time.monotonic()
        time.sleep(0.5)
        runs.append((id(store), started, time.monotonic()))

    monkeypatch.setattr(retention, "FIRST_RUN_S", 0.0)
    monkeypatch.setattr(retention, "PURGE_EVERY_S", 0.2)
    monkeypatch.setattr(retention, "purge", purge)
    caplog.set_level("INFO", logger="worklens.collector.retention")
    cols = [InProcessCollector(tmp_path / f"in-{i}", db_url=postgres_url) for i in range(2)]
    try:
        wait_for(lambda: len(runs) >= 6, timeout=30, what="six maintenance runs")
    finally:
        for col in cols:
            col.stop()
    runs.sort(key=lambda run: run[1])
    overlaps = [(one, two) for one, two in itertools.pairwise(runs) if two[1] < one[2]]
    assert overlaps == [], "two collectors ran maintenance at once"
    assert "another collector is running maintenance" in caplog.text


HOLD_TURN = """
import sys, time
from worklens.collector.retention import maintenance_turn
from worklens.collector.store import open_store
store = open_store(sys.argv[1])
with maintenance_turn(store) as mine:
    print("holding" if mine else "refused", flush=True)
    time.sleep(600)
"""


def test_a_collector_killed_during_maintenance_leaves_the_turn_to_the_others(postgres_url):
    """The turn is not a row someone must clean up: the database releases it when
    the process holding it dies."""
    from worklens.collector.retention import maintenance_turn
    from worklens.collector.store import open_store

    holder = AgentProcess([sys.executable, "-c", HOLD_TURN, postgres_url], clean_env()).start()
    store = open_store(postgres_url)
    try:
        wait_for(lambda: "holding" in holder.lines, timeout=30, what="the other process's turn")
        with maintenance_turn(store) as mine:
            assert mine is False
        holder.kill()

        def my_turn() -> bool:
            with maintenance_turn(store) as turn:
                return turn
        wait_for(my_turn, timeout=30, what="the turn released by the database")
    finally:
        holder.kill()
        store.close()


def test_a_database_falling_behind_answers_resource_exhausted_with_retry_after(
        postgres_url, tmp_path, monkeypatch):
    """Another session holds what an ingest transaction needs (here the agent's
    advisory lock), so batches wait for the database: past the queue's limit the
    collector answers RESOURCE_EXHAUSTED with retry-after-ms, stores nothing of
    that batch, and takes it once the database moves again."""
    from collector_harness import InProcessCollector
    from worklens.collector.store import locks
    from worklens.collector.store import postgresql as pg_store

    monkeypatch.setattr(pg_store, "MAX_PENDING_EVENTS", 10)
    col = InProcessCollector(tmp_path / "in", db_url=postgres_url)
    try:
        first, second = col.enroll_agent(), col.enroll_agent()
        key = rows(postgres_url, "SELECT id FROM agents WHERE agent_id = %s",
                   (first.agent_id,))[0][0]
        with psycopg.connect(postgres_url, autocommit=True) as blocker:
            blocker.execute("SELECT pg_advisory_lock(%s, %s)", (locks.AGENT_NAMESPACE, key))
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(col.upload, first, [make_batch(first.agent_id, 1)])
                wait_for(lambda: col.store._pending_events > 0, what="the batch queued")
                with pytest.raises(grpc.RpcError) as error:
                    col.upload(second, [make_batch(second.agent_id, 1)])
                blocker.execute("SELECT pg_advisory_unlock(%s, %s)",
                                (locks.AGENT_NAMESPACE, key))
                assert [a.sequence for a in pending.result(60)] == [1]
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(error.value.trailing_metadata())["retry-after-ms"]) > 0
        assert stored(postgres_url, second.agent_id)[0] == []
        assert [a.sequence for a in col.upload(second, [make_batch(second.agent_id, 1)])] == [1]
    finally:
        col.stop()
