"""``worklens-collector token create|list|revoke``: secrets are printed once and
stored hashed (``worklens.collector.access.tokens``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from worklens.collector.access import audit, tokens
from worklens.collector.config import CollectorConfig, store_url
from worklens.collector.store import open_store
from worklens.common.cli import UserError
from worklens.common.durations import parse_duration


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_expires(text: str | None) -> float | None:
    if not text:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UserError(f"--expires: {exc}") from None
    problem = tokens.expires_problem(seconds)
    if problem:
        raise UserError(f"--expires: {problem}")
    return seconds


def _print_table(infos: list[tokens.TokenInfo]) -> None:
    if not infos:
        print("no tokens (create one with: worklens-collector token create --role enroll)")
        return
    header = ("ID", "ROLE", "NAME", "STATUS", "CREATED", "EXPIRES", "LAST USED", "GROUPS")
    rows = [(t.id, t.role, t.name or "-", t.status(), _when(t.created_ms), _when(t.expires_ms),
             _when(t.last_used_ms), ",".join(t.groups) or "-") for t in infos]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def command(args: argparse.Namespace, cfg: CollectorConfig, data_dir: Path) -> int:
    expires = _parse_expires(getattr(args, "expires", None)) if args.action == "create" else None
    store = open_store(store_url(cfg, data_dir))
    try:
        if args.action == "create":
            info, secret = tokens.create_token(store, args.role, args.name or "", expires,
                                               groups=args.group or ())
            audit.record(store, audit.local_operator(), "token.create",
                         {"id": info.id, "role": info.role, "name": info.name,
                          "expires_ms": info.expires_ms, "groups": list(info.groups)})
            print(secret)
            until = f", expires {_when(info.expires_ms)}" if info.expires_ms else ""
            print(f"created {info.role} token {info.id}{until}. The secret above is shown only "
                  "once: the collector keeps only its hash.", file=sys.stderr)
        elif args.action == "list":
            _print_table(tokens.list_tokens(store))
        elif args.action == "revoke":
            if not tokens.revoke_token(store, args.id):
                raise UserError(f"no active token with id {args.id!r} (see: worklens-collector "
                                "token list)")
            audit.record(store, audit.local_operator(), "token.revoke", {"id": args.id})
            print(f"revoked token {args.id}")
        else:  # argparse restricts the choices; this is a programming error
            raise UserError(f"unknown token action {args.action!r}")
    finally:
        store.close()
    return 0
