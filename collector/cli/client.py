"""``worklens-collector summary`` and ``export``: the operator's client for the
collector's HTTP API (``requests``). Arguments are parsed in cli/__init__.py.

Dates are checked here with the server's own rules (reports.dates) so a
typo fails at once, but relative words (``today``, ``7d``) are sent as typed
and resolved by the collector in the requested (or its default) time zone.
Every expected failure is one line and exit code 1 (worklens.common.cli.UserError).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import requests
from worklens.collector.cli.progress import Progress
from worklens.collector.reports.csvexport import safe
from worklens.collector.reports.dates import DateError, parse_date, parse_tz
from worklens.common.cli import UserError

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 300
CHUNK_BYTES = 256 * 1024
ROLE_FOR = {"summary": "viewer", "export": "exporter"}


# -- talking to the collector -------------------------------------------------------------

def base_url(url: str) -> str:
    """``--url`` as people type it: a bare HOST:PORT means ``http://`` (the HTTP
    port's default, plain text on loopback); any other scheme is one line."""
    typed = url.strip()
    url = typed if "://" in typed else f"http://{typed}"
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise UserError(f"--url {typed!r}: expected HOST:PORT, http://HOST:PORT or "
                        "https://HOST:PORT")
    return url


def _session(args: argparse.Namespace) -> requests.Session:
    if not args.token:
        raise UserError("no API token: set --token or WORKLENS_TOKEN")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.token}"
    session.headers["User-Agent"] = "worklens-collector-client"
    if args.ca_cert:
        if not Path(args.ca_cert).is_file():
            raise UserError(f"--ca-cert: no such file {args.ca_cert}")
        session.verify = str(args.ca_cert)
    return session


def _server_message(resp: requests.Response) -> str:
    try:
        message = resp.json().get("error")
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or resp.text or resp.reason).split())[:300]


def _check(resp: requests.Response, url: str, command: str) -> None:
    if resp.ok:
        return
    message = _server_message(resp)
    if resp.status_code == 401:
        raise UserError(f"the collector refused the token ({message}): set --token or "
                        "WORKLENS_TOKEN to a valid token")
    if resp.status_code == 403:
        role = ROLE_FOR[command]   # said once: the collector's message names it already
        hint = "" if role in message else \
            f" (`{command}` needs {'an' if role[0] in 'aeiou' else 'a'} {role} token)"
        raise UserError(f"permission denied: {message}{hint}")
    if resp.status_code in (400, 404, 422):
        raise UserError(message)
    raise UserError(f"the collector at {url} answered {resp.status_code}: {message}")


def _get(session: requests.Session, base: str, path: str, params: dict[str, str], command: str,
         stream: bool = False) -> requests.Response:
    url = base.rstrip("/") + path
    try:
        # verify= per request: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override
        # session.verify, which would silently drop --ca-cert.
        resp = session.get(url, params=params, stream=stream, verify=session.verify,
                           timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except requests.exceptions.SSLError as exc:
        raise UserError(f"cannot reach the collector at {base}: TLS failed ({_reason(exc)}); "
                        "check --ca-cert") from None
    except requests.exceptions.RequestException as exc:
        raise UserError(f"cannot reach the collector at {base}: {_reason(exc)}") from None
    _check(resp, base, command)
    return resp


def _reason(exc: BaseException) -> str:
    """The innermost readable cause (urllib3 nests several layers of wrappers)."""
    text = str(exc)
    for marker in ("] ", "Errno "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return " ".join(text.split()).rstrip(")'\"")[:200] or type(exc).__name__


def _query(args: argparse.Namespace) -> dict[str, str]:
    """The date/tz parameters, checked locally with the server's rules, and the
    --agent/--user scope."""
    try:
        zone = parse_tz(args.tz) if args.tz else parse_tz("UTC")
    except DateError as exc:
        raise UserError(f"--tz: {exc}") from None
    for flag, value in (("--from", args.date_from), ("--to", args.date_to)):
        try:
            parse_date(value, zone)
        except DateError as exc:
            raise UserError(f"{flag}: {exc}") from None
    params = {"from": args.date_from, "to": args.date_to}
    for name in ("tz", "agent", "user", "group"):
        if getattr(args, name, None):
            params[name] = getattr(args, name)
    return params


# -- summary --------------------------------------------------------------------------------

def hmm(seconds: float | None) -> str:
    """Seconds as h:mm (rounded to the minute), the way people read durations."""
    if seconds is None:
        return "-"
    minutes = round(float(seconds) / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _is_seconds(column: str) -> bool:
    return column.endswith("_s") or column.endswith("_seconds")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if _is_seconds(column) and isinstance(value, int | float):
        return hmm(value)
    if (column.endswith("share") or column.endswith("_pct")) and isinstance(value, float):
        return f"{value * 100:.0f}%" if column.endswith("share") else f"{value:.0f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return " ".join(str(value).split())


def _header(column: str) -> str:
    for suffix in ("_seconds", "_share", "_s"):
        if column.endswith(suffix):
            column = column[: -len(suffix)]
    return column.replace("_", " ").upper()


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Columns in first-seen order; nested values (lists/dicts) are left out of tables."""
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if not isinstance(value, dict | list):
                seen.setdefault(key, None)
    return list(seen)


def render_table(rows: list[dict[str, Any]], totals: dict[str, Any] | None = None,
                 cols: list[str] | None = None) -> str:
    """Aligned columns; numbers right-aligned, text left-aligned; a TOTAL line."""
    if not rows:
        return "no data for this range"
    cols = cols or columns_of(rows)
    body = [[_cell(c, r.get(c)) for c in cols] for r in rows]
    lines = [[_header(c) for c in cols], *body]
    if totals:
        lines.append([_cell(c, totals.get(c)) if c in totals else ("TOTAL" if i == 0 else "")
                      for i, c in enumerate(cols)])
    numeric = [all(_numeric(r.get(c)) for r in rows) for c in cols]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    out = []
    for n, line in enumerate(lines):
        cells = [cell.rjust(w) if num else cell.ljust(w)
                 for cell, w, num in zip(line, widths, numeric, strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0 or (totals and n == len(lines) - 2):
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def render_csv(rows: list[dict[str, Any]]) -> str:
    cols = columns_of(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([safe(v) if isinstance(v, str) else v
                         for v in (row.get(c) for c in cols)])
    return out.getvalue()


def run_summary(args: argparse.Namespace) -> int:
    params = _query(args)
    params["by"] = args.by
    session = _session(args)
    data = _get(session, args.url, "/api/v1/summary", params, "summary").json()
    rows = data.get("rows", [])
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(render_csv(rows))
    else:
        print(_title(data))
        print(render_table(rows, data.get("total"), _table_columns(args.by, rows)))
    return 0


def _table_columns(by: str, rows: list[dict[str, Any]]) -> list[str]:
    """What fits a terminal: the group, active/idle h:mm, spans and the class shares."""
    wanted = [by, "active_seconds", "idle_seconds", "spans", *(f"{c}_share" for c in
              ("productive", "neutral", "unproductive", "unclassified"))]
    present = set(columns_of(rows))
    return [c for c in wanted if c in present] or columns_of(rows)


def _title(data: dict[str, Any]) -> str:
    scope = "".join(f", {k} {data[k]}" for k in ("agent", "user") if data.get(k))
    return (f"Active/idle time by {data.get('by')} from {data.get('from')} to {data.get('to')} "
            f"({data.get('tz')}{scope}); durations h:mm")


# -- export ---------------------------------------------------------------------------------

def _copy(chunks: Iterable[bytes], out: BinaryIO, progress: Progress) -> None:
    size = 0
    for chunk in chunks:
        if chunk:
            out.write(chunk)
            size += len(chunk)
            progress.add(chunk.count(b"\n"), f"{size / 1e6:.1f} MB")


def run_export(args: argparse.Namespace) -> int:
    params = _query(args)
    session = _session(args)
    resp = _get(session, args.url, f"/api/v1/export/{args.kind}.csv", params, "export",
                stream=True)
    progress = Progress("exported")
    progress.done = -1    # the header line is not a row
    progress.add(0)       # a person sees at once that the export started
    try:
        chunks = resp.iter_content(chunk_size=CHUNK_BYTES)
        if args.output is None:
            _copy(chunks, sys.stdout.buffer, progress)
            sys.stdout.buffer.flush()
        else:
            _write_file(Path(args.output), chunks, progress)
    except requests.exceptions.RequestException as exc:
        raise UserError(f"the export from {args.url} broke off: {_reason(exc)}") from None
    finally:
        resp.close()
        progress.finish()   # on a terminal: the count so far, then any error on its own line
    return 0


def _write_file(path: Path, chunks: Iterable[bytes], progress: Progress) -> None:
    """Write to FILE.part and rename at the end: a broken export never looks complete."""
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as out:
            _copy(chunks, out, progress)
        os.replace(partial, path)
    except OSError as exc:
        raise UserError(f"-o {path}: {exc.strerror or exc}") from None
    finally:
        if partial.exists():
            partial.unlink()


def command(args: argparse.Namespace, cfg: Any, data_dir: Path) -> int:
    args.url = base_url(args.url)
    if args.command == "summary":
        return run_summary(args)
    if args.command == "export":
        return run_export(args)
    raise UserError(f"unknown client command {args.command!r}")
