"""`worklens-collector serve` as a process: where it listens, what it refuses to
start with, clean shutdown on SIGTERM, and durability through kill -9."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import grpc
import psutil
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
import worklens.collector.store.sqlite as sqlite_store

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


# Loaded into the collector's processes through PYTHONPATH: before each group commit
# the writer applies the page limit written in LIMIT_FILE. SQLite's max_page_count
# makes the database full exactly as a full disk does (SQLITE_FULL, "database or
# disk is full"); it is a setting of one connection, the one in the writer process.
DISK_LIMIT = """
from pathlib import Path

import worklens.collector.store.commit as commit

_commit = commit.GroupCommitter.commit
LIMIT_FILE = Path({limit_file!r})


def commit_with_limit(self, group, received):
    if LIMIT_FILE.exists():
        self.conn.execute(f"PRAGMA max_page_count = {{LIMIT_FILE.read_text().strip()}}")
    return _commit(self, group, received)


commit.GroupCommitter.commit = commit_with_limit
"""


def test_a_full_disk_is_not_acknowledged_and_the_collector_keeps_running(
        tmp_path, collector_proc_factory):
    fault, limit = tmp_path / "fault", tmp_path / "max_pages"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(DISK_LIMIT.format(limit_file=str(limit)))
    proc = collector_proc_factory()
    proc.env["PYTHONPATH"] = str(fault)
    proc.start()
    agent = proc.enroll_agent()
    proc.upload(agent, [make_batch(agent.agent_id, 1)])
    limit.write_text(str(proc.query("PRAGMA page_count")[0][0]))
    big = make_batch(agent.agent_id, 2, windows=2000, activity=2000, title="t" * 500)
    with pytest.raises(grpc.RpcError) as error:
        proc.upload(agent, [big])
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "full" in error.value.details()
    assert proc.count("batches", agent.agent_id) == 1
    assert proc.count("window_spans", agent.agent_id) == 3
    limit.write_text("1073741823")
    acks = proc.upload(agent, [big])  # space again: the agent's retry succeeds
    assert [(a.sequence, a.duplicate) for a in acks] == [(2, False)]
    assert proc.count("window_spans", agent.agent_id) == 2003
    assert proc.terminate() == 0


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


def _writer_process(proc) -> psutil.Process:
    """The store's writer process of a serving collector (multiprocessing spawn)."""
    children = psutil.Process(proc.proc.pid).children()
    writers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(writers) == 1, [c.cmdline() for c in children]
    return writers[0]


def test_group_commits_run_in_a_writer_process_that_leaves_with_the_collector(
        collector_proc_factory):
    proc = collector_proc_factory()
    proc.start()
    agent = proc.enroll_agent()
    writer = _writer_process(proc)
    acks = proc.upload(agent, [make_batch(agent.agent_id, s) for s in (1, 2)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, False), (2, False)]
    # a service manager signals every process of the service: the writer leaves the
    # shutdown to the collector, which finishes its commits first
    writer.send_signal(signal.SIGTERM)
    acks = proc.upload(agent, [make_batch(agent.agent_id, 3)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(3, False)]
    assert proc.terminate() == 0
    writer.wait(30)   # gone with the collector (raises if it lingers)
    proc.start()
    writer = _writer_process(proc)
    proc.kill()  # kill -9 of the collector: the writer must not linger holding the store
    writer.wait(30)
    assert proc.count("window_spans", agent.agent_id) == 9


def test_a_killed_writer_process_makes_the_collector_exit_and_loses_nothing(
        collector_proc_factory):
    proc = collector_proc_factory()
    proc.start()
    agent = proc.enroll_agent()
    acks = proc.upload(agent, [make_batch(agent.agent_id, 1)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, False)]
    _writer_process(proc).kill()
    assert proc.proc.wait(60) == 1   # systemd (Restart=on-failure) starts it again
    assert "store writer" in proc.output
    assert "Traceback" not in proc.output
    proc.start()
    acks = proc.upload(agent, [make_batch(agent.agent_id, s) for s in (1, 2)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, True), (2, False)]
    assert proc.count("window_spans", agent.agent_id) == 6
