"""The store maintenance commands: ``purge``, ``rollups rebuild`` and ``rules
show|load``. Each opens the store directly (``--config``/``--data-dir``/``--db``)
and can run while the collector serves."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from worklens.collector import retention
from worklens.collector.access import audit
from worklens.collector.cli.progress import Progress
from worklens.collector.config import store_url
from worklens.collector.reports.dates import DateError, midnight_ms, parse_date, parse_tz
from worklens.collector.rollup import buckets, rules
from worklens.collector.store import open_store
from worklens.common.cli import UserError
from worklens.common.durations import MAX_SECONDS, parse_duration


def purge_command(args: Any, cfg: Any, data_dir: Path) -> int:
    """``purge --older-than DURATION``."""
    try:
        seconds = parse_duration(args.older_than)
    except ValueError as exc:
        raise UserError(f"--older-than: {exc}") from None
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError("--older-than: expected a duration above zero and at most 36500d, "
                        "e.g. 400d")
    store = open_store(store_url(cfg, data_dir))
    try:
        result = retention.purge(store, seconds)
    finally:
        store.close()
    cutoff = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(result.cutoff_ms / 1000))
    print(f"deleted {result.total} rows older than {cutoff}")
    return 0


def rollups_command(args: Any, cfg: Any, data_dir: Path) -> int:
    """``rollups rebuild [--from DATE] [--to DATE]`` (dates in [summary] timezone)."""
    try:
        tz = parse_tz(None, cfg.summary.timezone)
    except DateError as exc:
        raise UserError(str(exc)) from None
    first = _date("--from", args.date_from, tz)
    last = _date("--to", args.date_to, tz)
    if first and last and first > last:
        raise UserError(f"--from {first} is after --to {last}")
    from_ms = midnight_ms(first, tz) if first else None
    to_ms = midnight_ms(last + timedelta(days=1), tz) if last else None
    store = open_store(store_url(cfg, data_dir))
    progress = Progress("rebuilding rollups:")
    try:
        started = time.monotonic()
        agents = buckets.rebuild(store, from_ms, to_ms, progress)
    finally:
        store.close()
    progress.finish()
    span = f"{first or 'the beginning'} to {last or 'now'}"
    print(f"rebuilt rollups for {agents} agent(s), {span}, in {time.monotonic() - started:.1f}s")
    return 0


def _date(flag: str, text: str | None, tz: Any) -> date | None:
    """A --from/--to date; the error names the flag, as summary's and export's do."""
    try:
        return parse_date(text, tz) if text else None
    except DateError as exc:
        raise UserError(f"{flag}: {exc}") from None


def rules_command(args: Any, cfg: Any, data_dir: Path) -> int:
    """``rules show`` prints TOML; ``rules load FILE`` validates and replaces."""
    if args.action == "load":
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}"
                            ) from None
        loaded = rules.parse_text(text, str(args.file))
    store = open_store(store_url(cfg, data_dir))
    try:
        if args.action == "show":
            print(rules.to_toml(rules.get_rules(store)), end="")
            return 0
        progress = Progress("re-categorising history:")
        buckets.set_rules(store, loaded, progress)
        if progress.total is not None:   # titles decide: the window rollups were recomputed
            progress.finish()
        audit.record(store, audit.local_operator(), "rules.load",
                     {"file": str(args.file), "rules": [r.to_dict() for r in loaded]})
        print(f"loaded {len(loaded)} rule(s); history re-categorised")
        return 0
    finally:
        store.close()
