"""The operators' progress line (worklens.collector.cli.progress): rows done, of
how many, and the rate, on a terminal only; and what `rollups rebuild` and
`rules load` show on a real terminal (a pty) and, piped, do not."""

from __future__ import annotations

import io
import os
import pty
import re
import sqlite3
import subprocess
import sys

import dataset as ds
from worklens.collector.cli.progress import Progress
from worklens.collector.rollup.rules import to_toml, validate


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_rows_of_total_and_rate_and_a_last_line():
    screen = Terminal()
    progress = Progress("rebuilding rollups:", stream=screen, every_s=3600)
    progress.set_total(1_000_000)
    progress.add(0)                        # the first call shows at once
    progress.add(250_000)                  # then not more often than every_s
    progress.add(800_000)                  # a rebuild re-reads a little: never above total
    progress.finish()
    lines = screen.getvalue().split("\r")[1:]
    assert len(lines) == 2
    assert lines[0].startswith("rebuilding rollups: 0 of 1,000,000 rows (0%), ")
    assert re.fullmatch(r"rebuilding rollups: 1,000,000 of 1,000,000 rows \(100%\), "
                        r"[\d,]+ rows/s\x1b\[K\n", lines[1]), lines[1]


def test_without_a_total_it_counts_and_shows_the_detail():
    screen = Terminal()
    progress = Progress("exported", stream=screen, every_s=0)
    progress.add(1234, "0.1 MB")
    assert re.fullmatch(r"\rexported 1,234 rows, 0\.1 MB, [\d,]+ rows/s\x1b\[K",
                        screen.getvalue()), screen.getvalue()


def test_nothing_is_written_when_stderr_is_not_a_terminal():
    piped = io.StringIO()
    progress = Progress("exported", stream=piped, every_s=0)
    assert not progress.enabled
    progress.set_total(10)
    progress.add(5)
    progress.finish()
    assert piped.getvalue() == ""


# -- the commands, as an operator runs them ----------------------------------------------------

def _on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run `worklens-collector ARGS` with stderr on a pty: (exit code, stdout, screen)."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "worklens.collector", *args],
                                stdout=subprocess.PIPE, stderr=secondary, text=True)
        os.close(secondary)
        stdout, _ = proc.communicate(timeout=120)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    return proc.returncode, stdout, shown.decode()


def _piped(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worklens.collector", *args],
                          capture_output=True, text=True, timeout=120)


def _count(db_file, *tables: str) -> int:
    with sqlite3.connect(db_file) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


def test_rollups_rebuild_shows_rows_of_total_on_a_terminal_only(tmp_path):
    store = ds.open_store(tmp_path)
    ds.load(store)
    store.close()
    db = f"sqlite:///{tmp_path}/worklens.db"
    rows = _count(tmp_path / "worklens.db", "window_spans", "activity_spans", "process_blocks")
    assert rows > 10
    code, stdout, screen = _on_a_terminal("rollups", "rebuild", "--db", db)
    assert code == 0 and "rebuilt rollups for 2 agent(s)" in stdout
    last = screen.replace("\r\n", "\n").split("\r")[-1]   # the pty turns \n into \r\n
    assert re.fullmatch(rf"rebuilding rollups: {rows:,} of {rows:,} rows \(100%\), [\d,]+ "
                        r"rows/s\x1b\[K\n", last), screen
    piped = _piped("rollups", "rebuild", "--db", db)
    assert piped.returncode == 0 and piped.stderr == ""


def test_rules_load_shows_progress_when_titles_make_it_recompute_history(tmp_path):
    store = ds.open_store(tmp_path)
    ds.load(store, rules=False)
    store.close()
    db = f"sqlite:///{tmp_path}/worklens.db"
    rules = tmp_path / "rules.toml"
    rules.write_text(to_toml(validate(ds.RULES)))        # a title rule: history recomputed
    windows = _count(tmp_path / "worklens.db", "window_spans")
    code, stdout, screen = _on_a_terminal("rules", "load", str(rules), "--db", db)
    assert code == 0 and "loaded 3 rule(s)" in stdout
    assert f"re-categorising history: {windows:,} of {windows:,} rows (100%)" in screen, screen
    piped = _piped("rules", "load", str(rules), "--db", db)
    assert piped.returncode == 0 and "re-categorising" not in piped.stderr
