"""``worklens-collector``: argument parsing only. Each subcommand's work lives in
a module of this package (``function(args, cfg, data_dir) -> int``), imported
only when that subcommand runs, so that ``summary`` starts without the server's
libraries and ``serve`` without ``requests``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from worklens import __version__
from worklens.collector import config as collector_config
from worklens.common.cli import run_main, setup_logging
from worklens.common.settings import default_data_dir, system_config_file

PROG = "worklens-collector"

COMMANDS = {
    "serve": "worklens.collector.cli.serve:command",
    "token": "worklens.collector.cli.tokens:command",
    "summary": "worklens.collector.cli.client:command",
    "export": "worklens.collector.cli.client:command",
    "purge": "worklens.collector.cli.maintenance:purge_command",
    "rollups": "worklens.collector.cli.maintenance:rollups_command",
    "rules": "worklens.collector.cli.maintenance:rules_command",
}
# Operator client commands talk to the HTTP API and take no store options.
CLIENT_COMMANDS = {"summary", "export"}
ROLES = ("enroll", "viewer", "exporter", "admin")
SUMMARY_BY = ("app", "agent", "user", "day", "hour", "category")
EXPORT_KINDS = ("spans", "activity", "processes", "daily", "apps")


def _store_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config file (default: WORKLENS_CONFIG, else "
                             "/etc/worklens/collector.toml when it exists)")
    common.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="default home of the SQLite store (default: WORKLENS_DATA_DIR "
                             "or the per-user data dir)")
    common.add_argument("--db", metavar="URL",
                        help="store URL: sqlite:///PATH (default) or postgresql://...")
    return common


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("WORKLENS_URL", "http://127.0.0.1:8080"),
                        help="collector HTTP API (default: %(default)s)")
    common.add_argument("--token", default=os.environ.get("WORKLENS_TOKEN"),
                        help="API token (default: WORKLENS_TOKEN)")
    common.add_argument("--ca-cert", type=Path, metavar="FILE",
                        help="CA certificate for an https:// collector")
    common.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                        help="YYYY-MM-DD, today, yesterday or 7d")
    common.add_argument("--to", dest="date_to", default="today", metavar="DATE",
                        help="inclusive end date (default: today)")
    common.add_argument("--tz", help="IANA time zone for dates and output "
                                     "(default: the collector's)")
    return common


def build_parser() -> argparse.ArgumentParser:
    store, client = _store_options(), _client_options()
    parser = argparse.ArgumentParser(prog=PROG, description="Worklens collector and operator "
                                     "commands.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[store], help="run the collector")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="default 127.0.0.1:50051")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="default 127.0.0.1:8080")

    token = sub.add_parser("token", help="create, list and revoke secrets")
    token_sub = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", parents=[store], help="print a new secret once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--expires", metavar="DURATION", help="e.g. 30d (default: never)")
    token_sub.add_parser("list", parents=[store], help="list tokens (never their secrets)")
    revoke = token_sub.add_parser("revoke", parents=[store], help="revoke a token")
    revoke.add_argument("id")

    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--agent", help="only this agent id")
    scope.add_argument("--user", help="only this user")

    summary = sub.add_parser("summary", parents=[client, scope],
                             help="active/idle time summaries")
    summary.add_argument("--by", required=True, choices=SUMMARY_BY)
    summary.add_argument("--format", choices=("table", "json", "csv"), default="table")

    export = sub.add_parser("export", parents=[client, scope], help="CSV export")
    export.add_argument("kind", choices=EXPORT_KINDS)
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE (default: stdout)")

    purge = sub.add_parser("purge", parents=[store], help="delete data older than a duration")
    purge.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 400d")

    rollups = sub.add_parser("rollups", help="maintain summary rollups")
    rollups_sub = rollups.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = rollups_sub.add_parser("rebuild", parents=[store],
                                     help="recompute rollups from raw records")
    rebuild.add_argument("--from", dest="date_from", metavar="DATE")
    rebuild.add_argument("--to", dest="date_to", metavar="DATE")

    rules = sub.add_parser("rules", help="productivity categories")
    rules_sub = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    rules_sub.add_parser("show", parents=[store], help="print the rules as TOML")
    load = rules_sub.add_parser("load", parents=[store], help="replace the rules from a file")
    load.add_argument("file", type=Path)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    return {
        "grpc": {"listen": getattr(args, "grpc_listen", None)},
        "http": {"listen": getattr(args, "http_listen", None)},
        "store": {"url": getattr(args, "db", None)},
    }


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config_file = None
    if args.command not in CLIENT_COMMANDS:
        config_file = args.config or system_config_file("collector")
    cfg = collector_config.load(config_file, overrides=_overrides(args))
    setup_logging(cfg.log.level)
    data_dir = getattr(args, "data_dir", None)
    data_dir = data_dir.expanduser() if data_dir else default_data_dir("collector")
    module, function = COMMANDS[args.command].split(":")
    return getattr(importlib.import_module(module), function)(args, cfg, data_dir)


def main(argv: list[str] | None = None) -> int:
    sys.exit(run_main(PROG, _main, argv))
