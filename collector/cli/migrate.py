"""``worklens-collector migrate --to postgresql://...``: move the SQLite store (``--db``,
else the configured one) into an empty PostgreSQL database, with a progress line on
a terminal and a table of row counts at the end. The copying is
``collector.store.transfer``'s; this module checks the two URLs and prints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from worklens.collector.cli.progress import Progress
from worklens.collector.config import store_url
from worklens.collector.store import open_store, sqlite_path, transfer
from worklens.collector.store.pgsql import redact
from worklens.common.cli import UserError


def command(args: Any, cfg: Any, data_dir: Path) -> int:
    source = store_url(cfg, data_dir)
    if not source.lower().startswith("sqlite:"):
        raise UserError(f"the store to move must be SQLite (--db sqlite:///PATH); got "
                        f"{redact(source)}")
    if args.to.split(":", 1)[0].lower() not in ("postgresql", "postgres"):
        raise UserError(f"--to: expected a postgresql:// URL, got {redact(args.to)}")
    path = sqlite_path(source)
    progress = Progress("copying to PostgreSQL:")
    started = time.monotonic()
    with transfer.open_source(path) as src:
        target = open_store(args.to)
        try:
            moved = transfer.copy(src, target, progress)
        except transfer.CountMismatch as exc:
            progress.finish()
            print_counts(exc.counts)
            raise
        finally:
            target.close()
    progress.finish()
    print_counts(moved.counts)
    print(f"moved {moved.rows:,} rows from {path} to {target.path} in "
          f"{time.monotonic() - started:.1f}s ({moved.partitions} day partitions made); "
          f"{path} is unchanged")
    if moved.unrolled:
        print(f"note: {moved.unrolled:,} rows of the SQLite store were not in its rollups "
              f"yet: run worklens-collector rollups rebuild --db {target.path}")
    print(f"next: point the collectors at it ([store] url or --db {target.path})")
    return 0


def print_counts(counts: list[transfer.TableCount]) -> None:
    """One line per table: its rows in SQLite and in PostgreSQL, flagged if they differ."""
    rows = [("TABLE", "SQLITE", "POSTGRESQL", "")]
    rows += [(c.table, f"{c.source:,}", f"{c.target:,}",
              "differs" if c.source != c.target else "") for c in counts]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, source, target, flag in rows:
        print(f"{name.ljust(widths[0])}  {source.rjust(widths[1])}  "
              f"{target.rjust(widths[2])}  {flag}".rstrip())

