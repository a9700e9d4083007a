"""Agents with several collector addresses, end to end: a real
`worklens-collector serve` listening on 127.0.0.2, reached either directly or
through a TCP front door on 127.0.0.1 (tests/byteproxy.py) that the test shuts
and reopens, the delivery pipeline in its own process (tests/e2e/agent_driver.py)
and the real `worklens-agent run` and `status`. Counts come from the store.

One name with several DNS records is gRPC's to handle (its resolver and
``pick_first``): tested with the agent in a private mount namespace whose
/etc/hosts gives one name two loopback addresses."""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from byteproxy import ByteCountingProxy
from e2e_support import agent_command, clean_env
from polling import wait_for
from worklens.agent.spool import Spool

FAST = {"WORKLENS_DELIVERY_FLUSH_INTERVAL": "200ms"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stored(col, agent_id: str) -> tuple[list[int], collections.Counter]:
    key = "(SELECT id FROM agents WHERE agent_id = ?)"
    sequences = [r[0] for r in col.query(
        f"SELECT sequence FROM batches WHERE agent = {key} ORDER BY sequence", (agent_id,))]
    titles = collections.Counter(r[0] for r in col.query(
        f"SELECT title FROM window_spans WHERE agent = {key}", (agent_id,)))
    return sequences, titles


def test_a_front_door_shut_mid_stream_then_reopened_every_span_stored_once(
        collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start(grpc_listen="127.0.0.2:0")
    door = ByteCountingProxy(col.grpc_address)
    addresses = f"{door.address},{col.grpc_address}"      # the door preferred
    data, agent_id = agents.enroll(col, "agent", address=addresses)
    driver = agents.driver(data, "--prefix", "fo", "--span", "0.03", "--count", "400",
                           "--failback", "1", env=FAST)
    try:
        wait_for(lambda: len(driver.events("closed")) > 60 and door.sent > 0,
                 what="spans flowing through the door")
        before = len(stored(col, agent_id)[0])
        assert before > 0
        port = int(door.address.rsplit(":", 1)[1])
        door.close()                                   # mid-stream
        wait_for(lambda: len(stored(col, agent_id)[0]) > before + 10,
                 what="delivery straight to the collector")
        door = ByteCountingProxy(col.grpc_address, port=port)   # the door is back
        wait_for(lambda: door.sent > 2000, what="the agent back at the preferred door")
        assert driver.wait() == 0, driver.output
        assert "drained" in driver.lines, driver.output
    finally:
        door.close()
    sequences, titles = stored(col, agent_id)
    assert sequences == list(range(1, len(sequences) + 1)), "a batch missing or doubled"
    expected = {f"fo {i}" for i in range(401)}
    assert set(titles) == expected
    assert [t for t, n in titles.items() if n > 1] == []


def test_status_shows_the_address_the_running_agent_uses_and_asks_each(
        tmp_path, collector_proc_factory, agents):
    col = collector_proc_factory()
    col.start(grpc_listen="127.0.0.2:0")
    dead = f"127.0.0.1:{free_port()}"
    data = tmp_path / "agent"
    agent = agents.run(data, env={
        "WORKLENS_COLLECTOR_ADDRESS": f"{dead},{col.grpc_address}",
        "WORKLENS_COLLECTOR_ENROLL_SECRET": col.create_token("enroll"),
        "WORKLENS_SAMPLING_WINDOW_BACKEND": "none", "WORKLENS_SAMPLING_IDLE_BACKEND": "none",
        "WORKLENS_SAMPLING_PROCESS_INTERVAL": "1s", "WORKLENS_DELIVERY_FLUSH_INTERVAL": "1s",
        "DISPLAY": ""})

    def using() -> str:
        try:
            state = json.loads((data / "running.json").read_text())
        except (OSError, ValueError):
            return ""
        return (state.get("collector") or {}).get("address", "")

    wait_for(lambda: using() == col.grpc_address, what="the agent connected to the second")
    spool = Spool.inspect(data)
    try:
        wait_for(lambda: spool.get("last_ack_sequence"), what="a batch acknowledged")
    finally:
        spool.close()
    # `status` from another shell, the address list coming from the saved credential
    done = subprocess.run(agent_command("status", "--json", "--data-dir", str(data)),
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    # one address of two down is no reason to worry: the agent delivers
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True, done.stdout
    facts = json.loads(done.stdout)["collector"]
    assert facts["in_use"] == col.grpc_address
    assert facts["reachable"] and facts["credential_accepted"]
    assert [(a["address"], a["reachable"], a["credential_accepted"])
            for a in facts["addresses"]] == [(dead, False, None),
                                            (col.grpc_address, True, True)]
    assert "nothing answers there" in facts["addresses"][0]["problem"]
    text = subprocess.run(agent_command("status", "--data-dir", str(data)), env=clean_env(),
                          capture_output=True, text=True, timeout=60).stdout
    assert f"the agent is using {col.grpc_address}" in text
    assert f"{dead} (plain text) — NOT reachable" in text
    assert f"{col.grpc_address} (plain text) — reachable, credential accepted (in use)" in text
    assert agent.terminate() == 0, agent.output


# Runs "$@" with HOSTS (the first argument) mounted over /etc/hosts, in a mount
# namespace of its own: nothing outside the test sees the name.
WITH_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'


def private_hosts_works(hosts: Path) -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            WITH_HOSTS, str(hosts), "getent", "ahostsv4", "collectors.test"],
                           capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and "127.0.0.2" in probe.stdout


@pytest.mark.system
def test_one_name_with_two_records_gRPC_moves_to_the_other_record(
        tmp_path, collector_proc_factory, agents):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 collectors.test\n"
                     "127.0.0.2 collectors.test\n")
    if not private_hosts_works(hosts):
        pytest.skip("needs root and unshare (util-linux) for a private /etc/hosts")
    col = collector_proc_factory()
    col.start(grpc_listen="127.0.0.3:0")
    # two front doors on the same port, one per record of the name
    doors = [ByteCountingProxy(col.grpc_address)]
    port = int(doors[0].address.rsplit(":", 1)[1])
    doors.append(ByteCountingProxy(col.grpc_address, host="127.0.0.2", port=port))
    data, agent_id = agents.enroll(col, "agent", address=col.grpc_address)
    env = clean_env(**FAST, WORKLENS_COLLECTOR_ADDRESS=f"collectors.test:{port}",
                    WORKLENS_COLLECTOR_INSECURE="true")   # not a loopback NAME
    driver = [sys.executable, str(Path(__file__).parent / "agent_driver.py"), "--data-dir",
              str(data), "--prefix", "dns", "--span", "0.03", "--count", "300"]
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             WITH_HOSTS, str(hosts), *driver], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_for(lambda: sum(d.sent for d in doors) > 2000 and len(stored(col, agent_id)[0]),
                 what="delivery through one of the name's records")
        used = next(d for d in doors if d.sent)
        other = next(d for d in doors if d is not used)
        before = len(stored(col, agent_id)[0])
        used.close()                                   # that record's host goes away
        wait_for(lambda: other.sent > 2000 and len(stored(col, agent_id)[0]) > before + 5,
                 what="delivery through the other record")
        assert proc.wait(120) == 0, "".join(lines)
        assert any(line.strip() == "drained" for line in lines), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for door in doors:
            door.close()
    sequences, titles = stored(col, agent_id)
    assert sequences == list(range(1, len(sequences) + 1)), "a batch missing or doubled"
    assert set(titles) == {f"dns {i}" for i in range(301)}
    assert [t for t, n in titles.items() if n > 1] == []
