"""The spool keeps every closed record until the collector acks it, numbers
batches without ever reusing a sequence, survives kill -9 and a corrupt file,
and stays inside its size and age limits while telling the collector what it
dropped."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest
from worklens.agent import spool as spool_mod
from worklens.agent.spool import Spool, decode_records
from worklens.v1 import agent_pb2

DAY_MS = 86_400_000


def window(i: int, title: str = "") -> agent_pb2.WindowSpan:
    return agent_pb2.WindowSpan(start_ms=1_700_000_000_000 + i * 1000, duration_ms=1000,
                                app=f"app{i}", title=title or f"doc {i}", pid=100 + i)


def titles(batch: agent_pb2.Batch) -> list[str]:
    return [w.title for w in batch.windows]


def test_closed_records_survive_reopen_and_are_sealed_in_order(tmp_path):
    sp = Spool.open(tmp_path)
    sp.add([window(1), window(2)])
    sp.add([agent_pb2.ActivitySpan(start_ms=5, duration_ms=10,
                                   state=agent_pb2.ACTIVITY_STATE_ACTIVE, key_presses=7)])
    sp.close()

    sp = Spool.open(tmp_path)
    sealed_at = spool_mod.now_ms()
    assert sp.seal(created_ms=sealed_at) == [1]
    [pending] = sp.pending()
    assert pending.sequence == 1 and pending.events == 3
    assert titles(pending.batch) == ["doc 1", "doc 2"]
    assert pending.batch.activity[0].key_presses == 7
    assert pending.batch.created_ms == sealed_at
    assert sp.seal() == []            # nothing new: no empty batch


def test_a_heartbeat_is_an_empty_batch_only_when_nothing_else_waits(tmp_path):
    sp = Spool.open(tmp_path)
    assert sp.seal(heartbeat=True) == [1]            # nothing to say: "still here"
    [beat] = sp.pending()
    assert beat.events == 0 and beat.batch.ByteSize() < 16    # sequence and time only
    assert sp.seal(heartbeat=True) == []             # one unacknowledged is enough
    sp.ack(1)
    sp.add([window(1)])
    assert sp.seal(heartbeat=True) == [2]            # records: a batch of them, no extra
    assert [p.events for p in sp.pending()] == [1]
    sp.ack(2)
    assert sp.seal() == []                           # no heartbeat asked: nothing
    assert sp.seal(heartbeat=True) == [3]


def test_batch_leaves_only_on_ack_and_sequences_are_never_reused(tmp_path):
    sp = Spool.open(tmp_path)
    sp.add([window(1)])
    sp.seal()
    sp.add([window(2)])
    sp.seal()
    assert [p.sequence for p in sp.pending()] == [1, 2]
    assert [p.sequence for p in sp.pending(after=1)] == [2]
    assert sp.ack(1) is True
    assert sp.ack(1) is False         # a repeated ack is harmless
    assert [p.sequence for p in sp.pending()] == [2]
    assert sp.get("last_ack_sequence") == 1 and sp.get("last_ack_ms") > 0
    sp.ack(2)
    sp.close()

    sp = Spool.open(tmp_path)
    sp.add([window(3)])
    assert sp.seal() == [3]


def test_checkpoint_is_replaced_and_a_clean_stop_recovers_nothing(tmp_path):
    sp = Spool.open(tmp_path)
    sp.checkpoint([window(1, "first")])
    sp.checkpoint([window(2, "second")])
    sp.close()
    sp = Spool.open(tmp_path)           # as after a crash: the last checkpoint is closed
    sp.seal()
    assert titles(sp.pending()[0].batch) == ["second"]
    sp.checkpoint([])
    sp.close()
    sp = Spool.open(tmp_path)
    assert sp.seal() == []              # the clean stop left no open span behind
    assert [titles(p.batch) for p in sp.pending()] == [["second"]]


def test_kill_9_keeps_closed_records_and_the_last_checkpoint(tmp_path):
    child = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from worklens.v1 import agent_pb2
        from worklens.agent.spool import Spool
        sp = Spool.open(Path({str(tmp_path)!r}))
        sp.add([agent_pb2.WindowSpan(app="closed-a", title="A", duration_ms=1)])
        sp.seal()
        sp.add([agent_pb2.WindowSpan(app="closed-b", title="B", duration_ms=1)])
        sp.checkpoint([agent_pb2.WindowSpan(app="open", title="still focused",
                                            duration_ms=30000)])
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    sp = Spool.open(tmp_path)
    sp.seal()
    batches = [p.batch for p in sp.pending()]
    assert [b.sequence for b in batches] == [1, 2]
    assert [w.app for b in batches for w in b.windows] == ["closed-a", "closed-b", "open"]
    assert batches[1].windows[1].duration_ms == 30000


def test_size_cap_drops_oldest_batches_and_reports_the_count(tmp_path, caplog):
    sp = Spool.open(tmp_path, max_mb=4000 / (1024 * 1024))   # ~4 KB
    big = "x" * 900
    for i in range(10):
        sp.add([window(i, f"{big}{i}")])
        sp.seal()
    depth = sp.depth()
    assert depth.bytes <= 4000
    remaining = [p.sequence for p in sp.pending()]
    assert remaining == list(range(11 - len(remaining), 11))   # the newest survive
    dropped = 10 - len(remaining)
    assert dropped > 0
    assert sp.get("dropped_total") == dropped
    assert "spool over spool_max_mb: dropped unsent batch 1" in caplog.text
    # every drop so far is carried by a surviving batch or is still pending
    carried = sum(p.batch.dropped_events for p in sp.pending())
    assert carried + sp.get("pending_dropped") == dropped


def test_dropped_count_travels_even_when_its_carrier_is_dropped(tmp_path):
    sp = Spool.open(tmp_path, max_age_s=3600)
    sp.add([window(1), window(2)])
    sp.seal(created_ms=1_000)                     # batch 1: 2 events
    sp.add([window(3)])
    sp.seal(created_ms=1_000 + 3_601_000)         # batch 1 expired; batch 2 carries its 2
    sp.add([window(4)])
    sp.seal(created_ms=1_000 + 2 * 3_601_000)     # batch 2 (1 event, carrying 2) expired
    [pending] = sp.pending()
    # batch 3 carries the 2 events of batch 1 and the 1 event of batch 2
    assert pending.sequence == 3
    assert pending.batch.dropped_events == 3
    assert sp.get("dropped_total") == 3


def test_age_cap_drops_old_batches_and_an_empty_batch_carries_the_count(tmp_path):
    sp = Spool.open(tmp_path, max_age_s=60)
    sp.add([window(1), window(2), window(3)])
    sp.seal(created_ms=1_000)
    sp.seal(created_ms=1_000 + 61_000)          # nothing new, but something was dropped
    [pending] = sp.pending()
    assert pending.sequence == 2 and pending.events == 0
    assert pending.batch.dropped_events == 3


def test_corrupt_spool_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    (tmp_path / "spool.db").write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.ERROR):
        sp = Spool.open(tmp_path)
    assert "is unreadable" in caplog.text and "moved it aside" in caplog.text
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("spool.db.corrupt-")]
    assert len(aside) == 1
    sp.add([window(1)])
    assert sp.seal() == [1]


def test_dead_letters_are_kept_counted_and_skipped(tmp_path, caplog):
    sp = Spool.open(tmp_path)
    for i in range(3):
        sp.add([window(i)])
        sp.seal()
    assert sp.dead_letter(2, "INVALID_ARGUMENT: bad title") is True
    assert sp.dead_letter(2, "again") is False
    assert [p.sequence for p in sp.pending()] == [1, 3]
    depth = sp.depth()
    assert (depth.batches, depth.dead_letters, depth.dead_letter_events) == (2, 1, 1)
    assert sp.dead_letters() == [(2, 1, "INVALID_ARGUMENT: bad title")]
    assert "batch 2 rejected by the collector" in caplog.text


def test_fresh_spool_is_aligned_after_the_collectors_last_sequence(tmp_path):
    sp = Spool.open(tmp_path)
    for i in range(3):
        sp.add([window(i)])
        sp.seal()
    assert sp.align_sequences("ag-1", collector_last=10) == 10
    assert [p.sequence for p in sp.pending()] == [11, 12, 13]
    assert [titles(p.batch) for p in sp.pending()] == [["doc 0"], ["doc 1"], ["doc 2"]]
    assert sp.align_sequences("ag-1", collector_last=50) == 0    # once per agent id
    sp.add([window(9)])
    assert sp.seal() == [14]
    # a spool that is ahead of the collector keeps its numbers
    assert sp.align_sequences("ag-2", collector_last=0) == 0
    sp.add([window(10)])
    assert sp.seal() == [15]


def test_a_large_backlog_is_split_into_bounded_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "MAX_BATCH_EVENTS", 100)
    sp = Spool.open(tmp_path)
    sp.add([window(i) for i in range(250)])
    assert sp.seal() == [1, 2, 3]
    assert [p.events for p in sp.pending()] == [100, 100, 50]
    records = [r for p in sp.pending() for r in decode_records(p.batch)]
    assert [r.app for r in records] == [f"app{i}" for i in range(250)]


def test_unwritable_spool_counts_records_as_dropped_instead_of_crashing(tmp_path):
    sp = Spool.open(tmp_path)
    sp._conn.execute("PRAGMA query_only = ON")   # every write now fails like a full disk
    sp.add([window(1), window(2)])
    sp._conn.execute("PRAGMA query_only = OFF")
    sp.add([window(3)])
    sp.seal()
    [pending] = sp.pending()
    assert pending.events == 1 and pending.batch.dropped_events == 2


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_spool_dir_is_private(tmp_path):
    data = tmp_path / "agent"
    Spool.open(data).close()
    assert (data.stat().st_mode & 0o777) == 0o700


def test_a_cut_and_its_checkpoint_are_one_transaction(tmp_path):
    """The parts closed at a flush and the checkpoint that replaces the previous one
    land together, so a crash can never recover a checkpoint that overlaps a part
    already spooled."""
    sp = Spool.open(tmp_path)
    sp.checkpoint([window(1, "open since 0, as of the last flush")])
    sp._conn.execute("CREATE TRIGGER fail BEFORE DELETE ON open_records "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    sp.checkpoint([window(3, "rest")], [window(2, "cut part")])   # fails, logged
    sp._conn.execute("DROP TRIGGER fail")
    sp.close()
    sp = Spool.open(tmp_path)           # as after a crash
    sp.seal()
    assert [titles(p.batch) for p in sp.pending()] == [["open since 0, as of the last flush"]]
    sp.checkpoint([window(3, "rest")], [window(2, "cut part")])
    sp.close()
    sp = Spool.open(tmp_path)
    sp.seal()
    assert [titles(p.batch) for p in sp.pending()][-1] == ["cut part", "rest"]


def test_status_sees_no_spool_while_the_agent_is_creating_it(tmp_path):
    """The file exists a moment before its tables: ``status`` then reads 'no spool
    yet', not an error telling the user the spool is unreadable."""
    sqlite3.connect(tmp_path / spool_mod.SPOOL_FILE).close()     # created, no schema yet
    assert Spool.inspect(tmp_path) is None
    Spool.open(tmp_path).close()
    view = Spool.inspect(tmp_path)
    assert view is not None and view.depth().batches == 0
    view.close()


def test_a_foreign_file_in_the_spools_place_is_an_error(tmp_path):
    with sqlite3.connect(tmp_path / spool_mod.SPOOL_FILE) as db:
        db.execute("CREATE TABLE other(x)")
    with pytest.raises(sqlite3.DatabaseError):
        Spool.inspect(tmp_path)


def test_a_reader_never_sees_a_half_created_spool(tmp_path):
    """The agent creates its tables in one transaction: ``status`` polling meanwhile
    sees no spool or a whole one (before, 146 of 200 such races failed)."""
    for i in range(40):
        data, errors, done = tmp_path / str(i), [], threading.Event()

        def poll(data=data, errors=errors, done=done) -> None:
            while not done.is_set():
                try:
                    view = Spool.inspect(data)
                    if view is not None:
                        view.close()
                except sqlite3.Error as exc:
                    errors.append(exc)

        reader = threading.Thread(target=poll)
        reader.start()
        Spool.open(data).close()
        done.set()
        reader.join()
        assert errors == []
