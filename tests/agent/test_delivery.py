"""open_delivery(): the Sink the runner writes to, backed by the spool and the
shipper, against a real collector on a free port."""

from __future__ import annotations

import pytest
from collector_harness import InProcessCollector, collector_config
from delivery_support import fast_backoff, free_port, window
from polling import wait_for
from worklens.agent import config as agent_config
from worklens.agent.channel import connection
from worklens.agent.delivery import open_delivery
from worklens.agent.enroll import enroll
from worklens.agent.spool import Spool
from worklens.common import settings as wl_config
from worklens.common.cli import UserError


def agent_cfg(**sections):
    return wl_config.load(agent_config.AgentConfig, None, env={}, overrides=sections)


def titles(collector) -> list[str]:
    return [r[0] for r in collector.query("SELECT title FROM window_spans ORDER BY start_ms")]


@pytest.fixture
def collector(tmp_path):
    instance = InProcessCollector(tmp_path / "collector")
    yield instance
    instance.stop()


def test_not_enrolled_and_no_secret_says_how_to_enroll(tmp_path):
    with pytest.raises(UserError) as caught:
        open_delivery(agent_cfg(), tmp_path / "agent")
    assert str(caught.value) == ("not enrolled: run `worklens-agent enroll --collector "
                                 "HOST:PORT --secret SECRET`")


def test_records_flow_every_flush_interval_and_close_drains(tmp_path, collector):
    data = tmp_path / "agent"
    cfg = agent_cfg(collector={"address": collector.grpc_address},
                    delivery={"flush_interval": 0.2})
    enroll(connection(cfg.collector), collector.create_token("enroll"), data)
    sink = open_delivery(agent_cfg(delivery={"flush_interval": 0.2}), data,
                         backoff=fast_backoff())   # address comes from the enrollment
    try:
        sink.write([window(1, "first")])
        wait_for(lambda: titles(collector) == ["first"], what="the flusher to ship")
        sink.write([window(2, "second")])
        sink.checkpoint([window(3, "open at close")])
        sink.checkpoint([])
    finally:
        sink.close()
    assert titles(collector) == ["first", "second"]     # close sealed and drained
    reopened = Spool.open(data)                          # and left no open span behind
    assert reopened.seal() == [] and reopened.depth().batches == 0


def test_a_second_agent_on_the_same_data_dir_is_refused(tmp_path, collector):
    data = tmp_path / "agent"
    cfg = agent_cfg(collector={"address": collector.grpc_address})
    enroll(connection(cfg.collector), collector.create_token("enroll"), data)
    sink = open_delivery(cfg, data, backoff=fast_backoff())
    try:
        with pytest.raises(UserError, match="already running with data dir"):
            open_delivery(cfg, data)
    finally:
        sink.close()
    open_delivery(cfg, data).close()      # free again after close


def test_self_enrolls_with_the_secret_once_the_collector_comes_up(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    col_cfg = collector_config(grpc={"listen": address})
    # make the enrollment secret, then take the collector down: the agent starts first
    first = InProcessCollector(tmp_path / "collector", col_cfg)
    secret = first.create_token("enroll")
    first.stop()
    data = tmp_path / "agent"
    cfg = agent_cfg(collector={"address": address, "enroll_secret": secret},
                    delivery={"flush_interval": 0.2})
    sink = open_delivery(cfg, data, backoff=fast_backoff())
    col = None
    try:
        sink.write([window(1, "recorded while the collector was down")])
        wait_for(lambda: sink.spool.depth().batches >= 1, what="a sealed batch")
        assert not (data / "credential.json").exists()
        col = InProcessCollector(tmp_path / "collector", col_cfg)
        wait_for(lambda: titles(col) == ["recorded while the collector was down"],
                   what="self-enrollment and delivery")
        assert (data / "credential.json").exists()
    finally:
        sink.close()
        if col is not None:
            col.stop()


def _run_agent(data, lines: list[str]):
    """`worklens-agent run` as a service starts it (no desktop needed: processes only)."""
    import os
    import subprocess
    import sys
    import threading
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")
           and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["WORKLENS_DELIVERY_FLUSH_INTERVAL"] = "1s"
    proc = subprocess.Popen([sys.executable, "-c", "from worklens.agent.cli import main; main()",
                             "run", "--data-dir", str(data)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc


def test_an_agent_restarted_during_an_outage_says_at_once_why_it_cannot_deliver(tmp_path,
                                                                               collector):
    """The warning of the first failure must not be swallowed because the spool still
    holds the same error from the run before."""
    import signal
    data = tmp_path / "agent"
    cfg = agent_cfg(collector={"address": collector.grpc_address})
    enroll(connection(cfg.collector), collector.create_token("enroll"), data)
    collector.stop()
    for run in ("first run", "restarted"):
        lines: list[str] = []
        proc = _run_agent(data, lines)
        try:
            warned = wait_for(
                lambda lines=lines, proc=proc: next(
                    (line for line in lines if "retrying in" in line), None)
                or proc.poll() is not None, timeout=30,
                what=f"the {run} agent to warn that the collector is down")
            assert proc.poll() is None, "".join(lines)
            assert " WARNING " in warned and "nothing answers there" in warned, warned
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, "".join(lines)
    spool = Spool.open(data)
    try:
        assert "nothing answers there" in spool.get("last_error")   # still there for `status`
    finally:
        spool.close()
