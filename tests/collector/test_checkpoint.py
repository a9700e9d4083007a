"""WAL checkpoints beside the commits (collector.store.checkpoint), on real SQLite files."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time

import pytest
from worklens.collector.store import commit
from worklens.collector.store.checkpoint import Checkpointer
from worklens.collector.store.commit import GroupCommitter
from worklens.collector.store.connect import BUSY_TIMEOUT_MS, connect_writer

ROW = b"x" * 4000   # about half a page: every transaction adds pages


def writer(tmp_path) -> sqlite3.Connection:
    conn = connect_writer(tmp_path / "worklens.db")
    conn.execute("CREATE TABLE bench (id INTEGER PRIMARY KEY, data BLOB)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # the file has the (empty) table
    return conn


def commit_rows(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO bench (data) VALUES (?)", [(ROW,)] * rows)
    conn.execute("COMMIT")


def rows_in_database_file(tmp_path, checkpointer: Checkpointer) -> int:
    """Rows in the database file alone (a copy of it without its WAL)."""
    alone = tmp_path / "alone"
    alone.mkdir(exist_ok=True)
    with checkpointer.paused():   # no checkpoint writing the file while it is copied
        shutil.copy(tmp_path / "worklens.db", alone / "copy.db")
    conn = sqlite3.connect(alone / "copy.db")
    try:
        return conn.execute("SELECT count(*) FROM bench").fetchone()[0]
    finally:
        conn.close()
        for path in alone.iterdir():
            path.unlink()


def test_the_thread_copies_commits_into_the_database_file_while_the_writer_never_does(
        tmp_path):
    conn = writer(tmp_path)
    checkpointer = Checkpointer(tmp_path / "worklens.db", BUSY_TIMEOUT_MS)
    checkpointer.start()
    try:
        for _ in range(20):
            commit_rows(conn, 10)
        deadline = time.monotonic() + 10
        while rows_in_database_file(tmp_path, checkpointer) < 200:
            assert time.monotonic() < deadline, "the thread never checkpointed the commits"
            time.sleep(0.05)
    finally:
        checkpointer.stop()
        conn.close()


@pytest.fixture
def every_time(monkeypatch):
    """The writer's own checkpoint due after every transaction (instead of every second)."""
    monkeypatch.setattr(commit, "CHECKPOINT_INTERVAL_S", 0.0)


def test_the_wal_is_reused_from_its_start_while_writes_go_on(tmp_path, every_time):
    """The thread alone never lets the WAL start over (the writer goes from commit to
    commit); the writer's checkpoint between its transactions finishes the copy, so
    the WAL stays about one transaction long instead of holding everything written."""
    conn = writer(tmp_path)
    checkpointer = Checkpointer(tmp_path / "worklens.db", BUSY_TIMEOUT_MS)
    committer = GroupCommitter(conn, tmp_path / "worklens.db", background=checkpointer)
    checkpointer.start()
    wal = tmp_path / "worklens.db-wal"
    try:
        largest = 0
        for _ in range(150):
            commit_rows(conn, 20)     # ~80 KB a transaction, ~12 MB in all
            committer.checkpoint()
            largest = max(largest, wal.stat().st_size)
    finally:
        checkpointer.stop()
    written = 150 * 20 * len(ROW)
    assert largest < written / 10, f"the WAL grew to {largest} bytes"
    assert conn.execute("SELECT count(*) FROM bench").fetchone()[0] == 3000
    conn.close()


def test_a_checkpointer_that_cannot_open_the_database_leaves_the_writer_working(
        tmp_path, caplog):
    conn = writer(tmp_path)
    checkpointer = Checkpointer(tmp_path / "missing" / "worklens.db", BUSY_TIMEOUT_MS)
    committer = GroupCommitter(conn, tmp_path / "worklens.db", background=checkpointer)
    checkpointer.start()
    checkpointer.stop()
    assert "no background WAL checkpoints" in caplog.text
    commit_rows(conn, 5)
    committer._last_checkpoint = 0.0     # due
    committer.checkpoint()               # the writer's own checkpoint still runs
    assert rows_in_database_file(tmp_path, checkpointer) == 5
    conn.close()


def test_the_writer_does_not_wait_for_a_checkpoint_in_progress(tmp_path, every_time):
    """A checkpoint of the thread is under way: the writer goes on with its next
    commit and finishes the copy after that one instead of stalling every ack."""
    conn = writer(tmp_path)
    checkpointer = Checkpointer(tmp_path / "worklens.db", BUSY_TIMEOUT_MS)  # not started
    committer = GroupCommitter(conn, tmp_path / "worklens.db", background=checkpointer)
    commit_rows(conn, 5)
    with checkpointer.paused():              # as the thread holds it while copying
        attempt = threading.Thread(target=committer.checkpoint)
        attempt.start()
        attempt.join(10)
        assert not attempt.is_alive(), "the writer waited for the thread's checkpoint"
    assert rows_in_database_file(tmp_path, checkpointer) == 0
    committer.checkpoint()                   # after the next commit: the thread is done
    assert rows_in_database_file(tmp_path, checkpointer) == 5
    conn.close()
