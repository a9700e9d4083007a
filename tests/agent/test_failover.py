"""Several collector addresses (`[collector] address = "a:50051,b:50051"`), over
real sockets: a real collector behind two front doors (tests/byteproxy.py, one
on 127.0.0.1 and one on 127.0.0.2), dead ports, and a scripted collector that
answers UNAVAILABLE or INTERNAL. What a user checks: every batch stored
exactly once whichever door it went through, the agent carries on through the
other address when one goes away, and returns to the preferred one when it is
back."""

from __future__ import annotations

import collections
import json
import threading
import time
from concurrent import futures

import grpc
import pytest
from byteproxy import ByteCountingProxy
from collector_harness import InProcessCollector
from delivery_support import agent_cli, free_port, make_shipper, spool_with, window
from polling import wait_for
from worklens.agent import config as agent_config
from worklens.agent import runstate
from worklens.agent.channel import check
from worklens.agent.credential import Connection
from worklens.agent.failover import Rotation
from worklens.common.cli import UserError
from worklens.common.settings import ConfigError
from worklens.v1 import agent_pb2, agent_pb2_grpc


@pytest.fixture
def collector(tmp_path):
    instance = InProcessCollector(tmp_path / "collector")
    yield instance
    instance.stop()


@pytest.fixture
def agent(collector):
    return collector.enroll_agent()


@pytest.fixture
def doors(collector):
    """Two front doors to the one collector: 127.0.0.1:P and 127.0.0.2:Q."""
    opened = [ByteCountingProxy(collector.grpc_address),
              ByteCountingProxy(collector.grpc_address, host="127.0.0.2")]
    yield opened
    for door in opened:
        door.close()


def stored(collector, agent_id: str) -> tuple[list[int], list[str]]:
    """(batch sequences, window titles) in the collector's store, oldest first."""
    key = "(SELECT id FROM agents WHERE agent_id = ?)"
    sequences = [r[0] for r in collector.query(
        f"SELECT sequence FROM batches WHERE agent = {key} ORDER BY sequence", (agent_id,))]
    titles = [r[0] for r in collector.query(
        f"SELECT title FROM window_spans WHERE agent = {key} ORDER BY start_ms", (agent_id,))]
    return sequences, titles


def add(spool, shipper, first: int, count: int) -> None:
    for i in range(first, first + count):
        spool.add([window(i, f"span {i}")])
        spool.seal()
    shipper.wake()


# -- configuration -----------------------------------------------------------------------


def test_a_list_of_addresses_is_accepted_and_a_bad_entry_names_the_key():
    cfg = agent_config.load(None, overrides={"collector": {
        "address": "a.example:50051, b.example:50051,[::1]:50051"}})
    assert cfg.collector.address == "a.example:50051, b.example:50051,[::1]:50051"
    for bad in ("a.example:50051,b.example", "a.example:50051,,b.example:50051",
                "a.example:50051,b.example:0", "a.example:50051,:50051"):
        with pytest.raises(ConfigError) as caught:
            agent_config.load(None, overrides={"collector": {"address": bad}})
        message = str(caught.value)
        assert "[collector] address" in message and "HOST:PORT" in message
        assert "\n" not in message


def test_enroll_with_a_bad_list_is_one_line_naming_the_key(tmp_path):
    done = agent_cli("enroll", "--collector", "127.0.0.1:50051,127.0.0.2", "--secret", "x",
                     "--data-dir", str(tmp_path / "agent"))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "[collector] address" in line and "HOST:PORT" in line and "Traceback" not in line
    env = agent_cli("status", "--data-dir", str(tmp_path / "agent"),
                    env={"WORKLENS_COLLECTOR_ADDRESS": "127.0.0.1:50051;127.0.0.2:50051"})
    assert env.returncode == 1 and "WORKLENS_COLLECTOR_ADDRESS" in env.stderr


def test_plain_text_is_allowed_only_to_loopback_checked_for_each_address():
    check(Connection(address="127.0.0.1:50051,127.0.0.2:50051,localhost:50051"))
    with pytest.raises(UserError, match=r"refusing plain text to collector\.example:50051"):
        check(Connection(address="127.0.0.1:50051,collector.example:50051"))
    check(Connection(address="127.0.0.1:50051,collector.example:50051", insecure=True))


def test_rotation_moves_on_wraps_and_asks_for_a_backoff_after_a_full_round():
    rotation = Rotation(["a:1", "b:2", "c:3"])
    assert rotation.address == "a:1" and rotation.earlier() == []
    assert rotation.failed() is False and rotation.address == "b:2"
    assert rotation.earlier() == [(0, "a:1")]
    rotation.delivered()                          # b works for a while, then fails
    assert rotation.failed() is False and rotation.address == "c:3"
    assert rotation.failed() is False and rotation.address == "a:1"
    assert rotation.failed() is True and rotation.address == "b:2"   # a, b... all failed
    rotation.prefer(0)
    assert rotation.address == "a:1" and rotation.failed() is False
    single = Rotation(["a:1"])
    assert single.failed() is True and single.address == "a:1"       # one: back off as before


# -- delivery over real sockets ------------------------------------------------------------


def test_a_dead_first_address_is_skipped_and_everything_arrives_once(tmp_path, collector,
                                                                     agent):
    dead = f"127.0.0.1:{free_port()}"
    spool = spool_with(tmp_path / "agent", [[window(i, f"span {i}")] for i in range(10)])
    used: list[str] = []
    shipper = make_shipper(spool, f"{dead},{collector.grpc_address}", agent.agent_id,
                           agent.credential, on_address=used.append)
    shipper.start()
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery through the second")
        assert stored(collector, agent.agent_id) == (list(range(1, 11)),
                                                     [f"span {i}" for i in range(10)])
        assert used == [collector.grpc_address]
    finally:
        shipper.stop()


def test_a_door_closing_mid_stream_moves_the_agent_to_the_other_and_back_when_it_returns(
        tmp_path, collector, agent, doors):
    first, second = doors
    spool = spool_with(tmp_path / "agent", [])
    used: list[str] = []
    shipper = make_shipper(spool, f"{first.address},{second.address}", agent.agent_id,
                           agent.credential, failback_after=0.5, on_address=used.append,
                           max_in_flight=4)
    shipper.start()
    feeding = threading.Event()
    fed = [0]

    def feed() -> None:     # a batch every 10 ms, as a busy agent with a short flush would
        while not feeding.is_set():
            add(spool, shipper, fed[0], 1)
            fed[0] += 1
            feeding.wait(0.01)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_for(lambda: len(stored(collector, agent.agent_id)[0]) >= 40,
                 what="delivery through the first door")
        assert used == [first.address] and second.connections == 0
        port = int(first.address.rsplit(":", 1)[1])
        first.close()                       # mid-stream: open connection cut, door shut
        at_close = len(stored(collector, agent.agent_id)[0])
        wait_for(lambda: len(stored(collector, agent.agent_id)[0]) >= at_close + 40,
                 what="delivery through the second door")
        assert used[-1] == second.address and second.connections >= 1

        back = ByteCountingProxy(collector.grpc_address, port=port)   # the first returns
        doors.append(back)
        wait_for(lambda: used[-1] == first.address, what="the move back to the first door")
        via_back = back.sent
        wait_for(lambda: back.sent > via_back + 2000, what="batches through the first again")
        feeding.set()
        feeder.join(5)
        wait_for(lambda: spool.depth().batches == 0, what="the rest acknowledged")
        sequences, titles = stored(collector, agent.agent_id)
        # every batch exactly once, none missing, whatever door it went through
        assert sequences == list(range(1, fed[0] + 1))
        assert titles == [f"span {i}" for i in range(fed[0])]
        assert spool.dead_letters() == []
    finally:
        feeding.set()
        shipper.stop()


def test_both_doors_down_backs_off_and_delivers_once_one_returns(tmp_path, collector, agent,
                                                                 doors):
    first, second = doors
    ports = [int(d.address.rsplit(":", 1)[1]) for d in doors]
    for door in doors:
        door.close()
    spool = spool_with(tmp_path / "agent", [[window(i, f"span {i}")] for i in range(5)])
    shipper = make_shipper(spool, f"{first.address},{second.address}", agent.agent_id,
                           agent.credential)
    shipper.start()
    try:
        wait_for(lambda: spool.get("last_error"), what="the failure recorded")
        assert spool.depth().batches == 5
        doors.append(ByteCountingProxy(collector.grpc_address, host="127.0.0.2",
                                       port=ports[1]))
        wait_for(lambda: spool.depth().batches == 0, what="delivery through the second")
        assert stored(collector, agent.agent_id) == ([1, 2, 3, 4, 5],
                                                     [f"span {i}" for i in range(5)])
    finally:
        shipper.stop()


class Answering(agent_pb2_grpc.AgentServiceServicer):
    """A collector that is there but ends every Upload with ``code``."""

    def __init__(self, code: grpc.StatusCode):
        self.code = code
        self.uploads = 0

    def Hello(self, request, context):
        return agent_pb2.HelloResponse(agent_id="ag-scripted", last_sequence=0)

    def Upload(self, request_iterator, context):
        self.uploads += 1
        next(request_iterator, None)
        context.abort(self.code, f"scripted {self.code.name}")


@pytest.fixture
def answering():
    servers = []

    def start(code: grpc.StatusCode):
        servicer = Answering(code)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return servicer, f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_unavailable_moves_to_the_next_address_but_internal_stays(tmp_path, collector, agent,
                                                                  answering):
    unavailable, first = answering(grpc.StatusCode.UNAVAILABLE)
    spool = spool_with(tmp_path / "agent", [[window(i, f"span {i}")] for i in range(3)])
    shipper = make_shipper(spool, f"{first},{collector.grpc_address}", agent.agent_id,
                           agent.credential)
    shipper.start()
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery through the second")
        assert unavailable.uploads >= 1
        assert stored(collector, agent.agent_id)[0] == [1, 2, 3]
    finally:
        shipper.stop()

    internal, first = answering(grpc.StatusCode.INTERNAL)
    spool = spool_with(tmp_path / "agent2", [[window(9, "kept")]])
    other = collector.enroll_agent()
    shipper = make_shipper(spool, f"{first},{collector.grpc_address}", other.agent_id,
                           other.credential)
    shipper.start()
    try:
        wait_for(lambda: internal.uploads >= 3, what="retries on the first address")
        assert spool.depth().batches == 1          # a collector that is there: no move
        assert stored(collector, other.agent_id)[0] == []
    finally:
        shipper.stop()


class Storing(agent_pb2_grpc.AgentServiceServicer):
    """Acks every batch and counts how often each sequence arrived."""

    def __init__(self):
        self.received: collections.Counter[int] = collections.Counter()

    def Hello(self, request, context):
        return agent_pb2.HelloResponse(agent_id="ag-scripted", last_sequence=0)

    def Upload(self, request_iterator, context):
        for batch in request_iterator:
            self.received[batch.sequence] += 1
            yield agent_pb2.Ack(sequence=batch.sequence)


class NeverEnding(Storing):
    """Acks every batch but never ends the call, even once the agent half-closed."""

    def Upload(self, request_iterator, context):
        yield from super().Upload(request_iterator, context)
        while context.is_active():
            time.sleep(0.05)


@pytest.mark.parametrize("fallback_kind", [Storing, NeverEnding])
def test_moving_back_to_the_preferred_address_resends_nothing(tmp_path, fallback_kind):
    servers, collectors = [], []
    for kind in (Storing, fallback_kind):
        servicer = kind()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        collectors.append((servicer, f"127.0.0.1:{port}"))
    (preferred, preferred_address), (fallback, fallback_address) = collectors
    door = ByteCountingProxy(preferred_address)
    door_port = int(door.address.rsplit(":", 1)[1])
    door.close()                                    # the preferred one is down at first
    spool = spool_with(tmp_path / "agent", [])
    shipper = make_shipper(spool, f"{door.address},{fallback_address}", "ag-scripted",
                           "ag-scripted.x", failback_after=0.3, max_in_flight=8,
                           ack_timeout=2.0)
    shipper.start()
    stop = threading.Event()
    fed = [0]

    def feed() -> None:
        while not stop.is_set():
            add(spool, shipper, fed[0], 1)
            fed[0] += 1
            stop.wait(0.005)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_for(lambda: len(fallback.received) > 30, what="delivery to the fallback")
        door = ByteCountingProxy(preferred_address, port=door_port)
        wait_for(lambda: len(preferred.received) > 30, what="delivery back at the preferred")
        stop.set()
        feeder.join(5)
        wait_for(lambda: spool.depth().batches == 0, what="the rest acknowledged")
    finally:
        stop.set()
        shipper.stop()
        door.close()
        for server in servers:
            server.stop(0)
    both = preferred.received + fallback.received
    assert sorted(both) == list(range(1, fed[0] + 1))
    assert set(both.values()) == {1}, "a batch was sent twice"
    assert max(fallback.received) < min(preferred.received)   # a clean hand-over


# -- enrollment and status -------------------------------------------------------------------


def test_enroll_tries_the_addresses_in_order_and_saves_them_all(tmp_path, collector, doors):
    dead = f"127.0.0.1:{free_port()}"
    addresses = f"{dead},{doors[1].address}"
    data = tmp_path / "agent"
    done = agent_cli("enroll", "--collector", addresses, "--secret",
                     collector.create_token("enroll"), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    saved = json.loads((data / "credential.json").read_text())
    assert saved["collector"]["address"] == addresses
    assert doors[1].connections == 1

    refused = agent_cli("enroll", "--collector", f"{dead},{doors[0].address}", "--secret",
                        "wl_nope", "--data-dir", str(tmp_path / "other"))
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert f"the collector at {doors[0].address} refused the enrollment secret" in line
    assert dead in line and "nothing answers there" in line

    nowhere = agent_cli("enroll", "--collector", f"{dead},127.0.0.2:{free_port()}",
                        "--secret", "x", "--data-dir", str(tmp_path / "third"))
    assert nowhere.returncode == 1
    [line] = nowhere.stderr.strip().splitlines()
    assert line.count("nothing answers there") == 2 and dead in line
    assert not (tmp_path / "third" / "credential.json").exists()


def test_the_running_agent_records_the_address_it_uses(tmp_path):
    runstate.record_collector(tmp_path, "127.0.0.2:50051")   # before the state file exists
    runstate.write(tmp_path, [])
    assert runstate.read(tmp_path).collector["address"] == "127.0.0.2:50051"
    runstate.record_collector(tmp_path, "127.0.0.1:50051")   # moved: written at once
    state = runstate.read(tmp_path)
    assert state.collector["address"] == "127.0.0.1:50051" and state.collector["since_ms"] > 0
    runstate.clear(tmp_path)


def test_status_with_every_address_down_says_so_for_each(tmp_path, collector, doors):
    data = tmp_path / "agent"
    done = agent_cli("enroll", "--collector", ",".join(d.address for d in doors), "--secret",
                     collector.create_token("enroll"), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    for door in doors:
        door.close()
    shown = agent_cli("status", "--data-dir", str(data))
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert "2 addresses, the first preferred" in shown.stdout
    for door in doors:
        assert f"{door.address} (plain text) — NOT reachable" in shown.stdout
    assert shown.stdout.count("nothing answers there") == 2
    assert "delivering:     NO" in shown.stdout
