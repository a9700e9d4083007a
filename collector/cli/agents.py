"""The ``worklens-collector agents`` command (admin, on the store directly):
``list`` the enrolled agents with their groups, ``set-group`` to replace an
agent's groups, ``revoke`` to make an agent's credential stop working.

Changes go through the same functions as the HTTP API (collector.groups,
collector.enrollment) and are written to the audit log as the local operator.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from worklens.collector.access import audit, enrollment, groups
from worklens.collector.config import CollectorConfig, store_url
from worklens.collector.reports.summary import list_agents
from worklens.collector.store import Store, open_store
from worklens.common.cli import UserError


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(store: Store, group: str | None) -> None:
    with store.reader() as conn:
        member = groups.memberships(conn)
        keys = dict(conn.execute("SELECT agent_id, id FROM agents").fetchall())
    rows = []
    for agent in list_agents(store):
        mine = member.get(keys[agent.agent_id], [])
        if group is not None and not any(groups.covers(group, g) for g in mine):
            continue
        rows.append((agent.agent_id, agent.hostname or "-", agent.username or "-",
                     agent.os or "-", ",".join(mine) or "-", _when(agent.last_seen_ms),
                     "revoked" if agent.revoked else "active"))
    if not rows:
        print("no agents" + (f" in group {group!r}" if group else "") +
              " (agents appear once they enroll with: worklens-agent enroll)")
        return
    header = ("AGENT", "HOST", "USER", "OS", "GROUPS", "LAST SEEN", "STATUS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _set_group(store: Store, agent_id: str, names: list[str]) -> None:
    try:
        checked = groups.set_agent_groups(store, agent_id, names)
    except groups.UnknownAgentId:
        raise UserError(f"no agent with id {agent_id!r} (see: worklens-collector agents "
                        "list)") from None
    audit.record(store, audit.local_operator(), "agent.groups",
                 {"agent_id": agent_id, "groups": list(checked)})
    print(f"{agent_id}: groups {', '.join(checked) if checked else '(none)'}")


def _revoke(store: Store, agent_id: str) -> None:
    if not enrollment.revoke_agent(store, agent_id):
        with store.reader() as conn:
            known = conn.execute("SELECT revoked_ms FROM agents WHERE agent_id = ?",
                                 (agent_id,)).fetchone()
        if known is None:
            raise UserError(f"no agent with id {agent_id!r} (see: worklens-collector agents "
                            "list)")
        print(f"agent {agent_id} was already revoked", file=sys.stderr)
        return
    audit.record(store, audit.local_operator(), "agent.revoke", {"agent_id": agent_id})
    print(f"revoked agent {agent_id}: its credential stops working now (a running collector "
          "refuses its batches within seconds); its data stays")


def command(args: argparse.Namespace, cfg: CollectorConfig, data_dir: Path) -> int:
    group = getattr(args, "group", None)
    if group is not None:
        group = groups.check_group(group)
    store = open_store(store_url(cfg, data_dir))
    try:
        if args.action == "list":
            _list(store, group)
        elif args.action == "set-group":
            _set_group(store, args.agent, args.groups)
        elif args.action == "revoke":
            _revoke(store, args.agent)
        else:  # argparse restricts the choices
            raise UserError(f"unknown agents action {args.action!r}")
    finally:
        store.close()
    return 0
