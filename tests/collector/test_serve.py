"""`worklens-collector serve` as a process: where it listens, what it refuses to
start with, clean shutdown on SIGTERM, and durability through kill -9."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import grpc
import pytest
from collector_harness import make_batch


def test_serve_logs_where_it_listens_and_stops_cleanly_on_sigterm(collector_proc):
    assert "gRPC listening on 127.0.0.1:" in collector_proc.output
    agent = collector_proc.enroll_agent()
    acks = collector_proc.upload(agent, [make_batch(agent.agent_id, s) for s in (1, 2, 3)])
    assert [a.sequence for a in acks] == [1, 2, 3]
    assert collector_proc.terminate() == 0
    assert "stopped" in collector_proc.output
    assert "Traceback" not in collector_proc.output
    assert collector_proc.count("batches", agent.agent_id) == 3


def test_sigint_also_stops_cleanly(collector_proc):
    collector_proc.proc.send_signal(signal.SIGINT)
    assert collector_proc.proc.wait(60) == 0


def test_everything_acked_survives_kill_9_and_duplicates_are_known_after_restart(
        collector_proc):
    agent = collector_proc.enroll_agent()
    collector_proc.upload(agent, [make_batch(agent.agent_id, s) for s in range(1, 11)])
    address = collector_proc.grpc_address
    collector_proc.restart(kill=True)
    assert collector_proc.grpc_address == address  # same port: agents need no new config
    acks = collector_proc.upload(agent, [make_batch(agent.agent_id, s) for s in (10, 11)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(10, True), (11, False)]
    assert collector_proc.count("batches", agent.agent_id) == 11
    assert collector_proc.count("window_spans", agent.agent_id) == 33


def test_a_second_collector_on_the_same_database_fails_with_one_line(
        collector_proc, collector_proc_factory):
    second = collector_proc_factory(data_dir=collector_proc.data_dir)
    done = second.cli("serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
    assert done.returncode == 1
    assert "already serving" in done.stderr and "Traceback" not in done.stderr


def test_a_busy_port_fails_with_one_line(collector_proc, collector_proc_factory):
    other = collector_proc_factory()
    done = other.cli("serve", "--grpc-listen", collector_proc.grpc_address,
                     "--http-listen", "127.0.0.1:0")
    assert done.returncode == 1, done.stderr
    assert "cannot listen" in done.stderr and "Traceback" not in done.stderr


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            return s.getsockname()[0]
        except OSError:
            return None


def test_plain_text_on_a_non_loopback_address_is_refused(collector_proc_factory):
    proc = collector_proc_factory()
    done = proc.cli("serve", "--grpc-listen", "0.0.0.0:0", "--http-listen", "127.0.0.1:0")
    assert done.returncode == 1
    assert "refusing plain-text grpc on 0.0.0.0:0" in done.stderr
    assert "insecure = true" in done.stderr
    done = proc.cli("serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0")
    assert done.returncode == 1 and "refusing plain-text http" in done.stderr


def test_insecure_true_allows_plain_text_off_loopback(collector_proc_factory, tmp_path):
    host = _non_loopback_address() or "0.0.0.0"
    config = tmp_path / "collector.toml"
    config.write_text("[grpc]\ninsecure = true\n")
    proc = collector_proc_factory(config_path=config)
    proc.start(grpc_listen=f"{host}:0")
    assert proc.grpc_address.startswith(f"{host}:")
    with grpc.insecure_channel(proc.grpc_address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
    assert proc.terminate() == 0


def test_sigterm_during_a_busy_stream_loses_nothing_that_was_acked(collector_proc):
    import queue
    import threading

    agent = collector_proc.enroll_agent()
    acked: list[int] = []
    outgoing: queue.Queue = queue.Queue()
    sequences = iter(range(1, 100_000))

    def requests():
        while True:
            item = outgoing.get()
            if item is None:
                return
            yield make_batch(agent.agent_id, next(sequences), windows=50, activity=50)

    def stream():
        with collector_proc.channel() as channel:
            try:
                for ack in collector_proc.stub(channel).Upload(requests(),
                                                               metadata=agent.metadata):
                    acked.append(ack.sequence)
                    outgoing.put(True)
            except grpc.RpcError:
                pass

    for _ in range(8):  # keep 8 batches in flight
        outgoing.put(True)
    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    while len(acked) < 20:
        assert reader.is_alive()
        time.sleep(0.01)
    collector_proc.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert collector_proc.proc.wait(60) == 0
    assert time.monotonic() - started < 8  # open streams are wound down, not waited out
    outgoing.put(None)
    reader.join(60)
    stored = {s for (s,) in collector_proc.query("SELECT sequence FROM batches")}
    assert set(acked) <= stored
    assert collector_proc.count("window_spans") == 50 * len(stored)


# Loaded into the collector process through PYTHONPATH: the writer thread dies at its
# first WAL checkpoint after a group commit, i.e. right after that commit's acks.
WRITER_FAULT = """
import collector.store.sqlite as sqlite_store

_commit_group = sqlite_store.SqliteStore._commit_group


def commit_group(self, group, events):
    _commit_group(self, group, events)
    self.injected_fault = True


def checkpoint(self):
    if getattr(self, "injected_fault", False):
        raise RuntimeError("injected writer fault")


sqlite_store.SqliteStore._commit_group = commit_group
sqlite_store.SqliteStore._checkpoint = checkpoint
"""


def test_a_dead_store_writer_makes_the_collector_exit_and_loses_nothing(
        tmp_path, collector_proc_factory):
    fault = tmp_path / "fault"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(WRITER_FAULT)
    proc = collector_proc_factory()
    proc.env["PYTHONPATH"] = str(fault)
    proc.start()
    agent = proc.enroll_agent()
    acks = proc.upload(agent, [make_batch(agent.agent_id, 1)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, False)]
    # a collector without a writer would refuse every batch forever: it exits instead,
    # non-zero, for systemd (Restart=on-failure) to start it again
    assert proc.proc.wait(60) == 1
    assert "store writer stopped unexpectedly" in proc.output
    assert "exiting so that the service manager restarts the collector" in proc.output
    del proc.env["PYTHONPATH"]
    proc.start()
    acks = proc.upload(agent, [make_batch(agent.agent_id, s) for s in (1, 2)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, True), (2, False)]
    assert proc.count("window_spans", agent.agent_id) == 6


def test_serve_lifts_a_low_open_files_limit_for_thousands_of_agents(tmp_path):
    """A login shell's soft limit of 1024 open files would refuse the 1,000th agent."""
    import resource
    import subprocess

    from collector_harness import collector_command

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard limit on open files is only {hard}")
    proc = subprocess.Popen(
        collector_command("serve", "--data-dir", str(tmp_path), "--grpc-listen", "127.0.0.1:0",
                          "--http-listen", "127.0.0.1:0"),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "collector ready" in line:
                break
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        soft = next(line.split()[3] for line in limits.splitlines()
                    if line.startswith("Max open files"))
        expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        assert soft == str(expected), limits
        assert any("open files limit raised from 256" in line for line in lines), lines
    finally:
        proc.terminate()
        proc.wait(60)
