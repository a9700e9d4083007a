"""``worklens-agent``: enroll, run, status. Argument parsing only; each
subcommand's work lives in the module named for it."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from worklens import __version__
from worklens.agent import config as agent_config
from worklens.common.cli import run_main, setup_logging
from worklens.common.settings import default_data_dir, system_config_file

PROG = "worklens-agent"

# subcommand -> module whose ``command(args, cfg, data_dir) -> int`` does the work
COMMANDS = {"enroll": "worklens.agent.enroll", "run": "worklens.agent.runner",
            "status": "worklens.agent.status"}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config file (default: WORKLENS_CONFIG, else "
                             "/etc/worklens/agent.toml when it exists; WORKLENS_* "
                             "variables apply on top)")
    common.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the credential and spool live "
                             "(default: WORKLENS_DATA_DIR or the per-user data dir)")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Worklens agent: records focused windows, idle time and "
        "process usage (counts and durations only, never keystroke content).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enroll = sub.add_parser("enroll", parents=[common],
                            help="trade the enrollment secret for this agent's own credential")
    enroll.add_argument("--collector", required=True, metavar="HOST:PORT",
                        help="the collector's gRPC address; several, comma-separated, "
                             "are tried in order (the first is preferred)")
    enroll.add_argument("--secret", required=True, metavar="ENROLL_SECRET")
    enroll.add_argument("--ca-cert", type=Path, metavar="FILE",
                        help="CA certificate that signed the collector's TLS certificate")
    enroll.add_argument("--client-cert", type=Path, metavar="FILE", help="for mutual TLS")
    enroll.add_argument("--client-key", type=Path, metavar="FILE", help="for mutual TLS")
    enroll.add_argument("--insecure", action="store_true",
                        help="allow plain text to a collector that is not on this machine")

    run = sub.add_parser("run", parents=[common], help="run the agent (until SIGTERM/Ctrl-C)")
    run.add_argument("--print", action="store_true", dest="print_only",
                     help="write closed spans to stdout instead of sending them")

    status = sub.add_parser("status", parents=[common],
                            help="what is collected, enrollment, collector reachability, spool")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    if args.command != "enroll":
        return {}
    return {"collector": {"address": args.collector, "ca_cert": args.ca_cert,
                          "client_cert": args.client_cert, "client_key": args.client_key,
                          "insecure": True if args.insecure else None}}


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config_file = args.config or system_config_file("agent")
    cfg = agent_config.load(config_file, overrides=_overrides(args))
    setup_logging(cfg.log.level)
    data_dir = args.data_dir.expanduser() if args.data_dir else default_data_dir("agent")
    module = importlib.import_module(COMMANDS[args.command])
    return module.command(args, cfg, data_dir)


def main(argv: list[str] | None = None) -> int:
    sys.exit(run_main(PROG, _main, argv))
