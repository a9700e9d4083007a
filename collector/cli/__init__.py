"""``worklens-collector``: argument parsing only. Each subcommand's work lives in
a module of this package (``function(args, cfg, data_dir) -> int``), imported
only when that subcommand runs."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from worklens import __version__
from worklens.collector import config as collector_config
from worklens.collector.access import tokens
from worklens.collector.reports import csvexport
from worklens.collector.reports import summary as summaries
from worklens.common.cli import UserError, run_main, setup_logging
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
    "agents": "worklens.collector.cli.agents:command",
    "migrate": "worklens.collector.cli.migrate:command",
}
# Operator client commands talk to the HTTP API and take no store options.
CLIENT_COMMANDS = {"summary", "export"}


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
    create.add_argument("--role", required=True, choices=tokens.ROLES)
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--expires", metavar="DURATION", help="e.g. 30d (default: never)")
    create.add_argument("--group", action="append", metavar="G",
                        help="repeatable: enroll = groups of the agents it enrolls; "
                             "viewer/exporter = sees only agents in these groups")
    token_sub.add_parser("list", parents=[store], help="list tokens (never their secrets)")
    revoke = token_sub.add_parser("revoke", parents=[store], help="revoke a token")
    revoke.add_argument("id")

    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--agent", help="only this agent id")
    scope.add_argument("--user", help="only this user")
    scope.add_argument("--group", help="only agents in this group (and its subgroups)")

    summary = sub.add_parser("summary", parents=[client, scope],
                             help="active/idle time summaries")
    summary.add_argument("--by", required=True, choices=summaries.BY)
    summary.add_argument("--format", choices=("table", "json", "csv"), default="table")

    export = sub.add_parser("export", parents=[client, scope], help="CSV export")
    export.add_argument("kind", choices=csvexport.KINDS)
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

    agents = sub.add_parser("agents", help="list agents, set their groups, revoke them")
    agents_sub = agents.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = agents_sub.add_parser("list", parents=[store], help="agents with their groups")
    listing.add_argument("--group", help="only agents in this group (and its subgroups)")
    set_group = agents_sub.add_parser("set-group", parents=[store],
                                      help="replace an agent's groups")
    set_group.add_argument("agent", metavar="AGENT")
    set_group.add_argument("groups", nargs="*", metavar="GROUP",
                           help="the new groups (none: the agent leaves every group)")
    revoke_agent = agents_sub.add_parser("revoke", parents=[store],
                                         help="revoke an agent's credential (its data stays)")
    revoke_agent.add_argument("agent", metavar="AGENT")

    migrate = sub.add_parser(
        "migrate", parents=[store], help="move the SQLite store into PostgreSQL",
        description="Copy the SQLite store (--db, else the configured one) into an EMPTY "
                    "PostgreSQL database: agents and their credentials (no re-enrollment), "
                    "tokens, groups, the batch ledger, records, rollups, rules and the audit "
                    "log. Stop the collector first. The SQLite file is only read; the copy "
                    "is one transaction whose row counts are checked before it commits.")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="the PostgreSQL database: postgresql://USER@HOST:PORT/DB "
                              "(password from the URL, PGPASSFILE or PGPASSWORD)")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    return {
        "grpc": {"listen": getattr(args, "grpc_listen", None)},
        "http": {"listen": getattr(args, "http_listen", None)},
        "store": {"url": getattr(args, "db", None)},
    }


# What `pip install 'worklens[collector]'` adds to the agent's install (import names).
COLLECTOR_LIBRARIES = ("fastapi", "uvicorn", "prometheus_client", "orjson", "requests")


def check_collector_libraries() -> None:
    """One line, not an ImportError traceback, on an agent-only install."""
    missing = [name for name in COLLECTOR_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"the collector's libraries are not installed ({', '.join(missing)}): "
                        "pip install 'worklens[collector]'")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_collector_libraries()
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
