"""Groups of agents and the scopes built from them (tables ``agent_groups`` and
``token_groups``, migration 0006).

An agent belongs to zero or more groups: those of the enrollment secret it
enrolled with, changed later by an admin. A viewer or exporter token may carry
groups too: its **scope**. A scoped token sees only the agents of its groups,
and an agent outside them must look exactly like an agent that does not exist
(404, absent from lists, totals and CSVs). Group names are paths: ``eng``
covers ``eng`` and ``eng/backend``, so a team lead's token can cover a
department without listing every team.

Why scopes resolve to a set of agent keys (integers) before any query: every
read path (summaries over rollups, timelines, CSV walks) already filters by
agent key, so one ``agent IN (...)`` is the whole change to each query and no
path can forget a join. A fleet is thousands of agents, not millions: reading
``agent_groups`` whole is a millisecond.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from worklens.collector.store import Connection
from worklens.common.cli import UserError

GROUP_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")
MAX_GROUP = 100
MAX_GROUPS = 50
# Rows of an agent with no group show this in by=group summaries (never a valid name).
NO_GROUP = "(no group)"


class GroupError(UserError):
    """A group name or a group change that cannot be used; the message says why."""


def check_group(name: str) -> str:
    """A valid group name, or GroupError naming what is allowed."""
    text = (name or "").strip()
    if not text or len(text) > MAX_GROUP or not GROUP_PATTERN.match(text):
        raise GroupError(f"group {name!r}: expected letters, digits, '.', '_', '-' in parts "
                         f"separated by '/' (e.g. sales or eng/backend), at most {MAX_GROUP} "
                         "characters")
    return text


def check_groups(names: Iterable[str]) -> tuple[str, ...]:
    """Valid, de-duplicated, sorted; at most MAX_GROUPS."""
    out = tuple(sorted({check_group(n) for n in names}))
    if len(out) > MAX_GROUPS:
        raise GroupError(f"at most {MAX_GROUPS} groups, got {len(out)}")
    return out


def covers(scope_group: str, group: str) -> bool:
    """``eng`` covers ``eng`` and ``eng/backend`` but not ``engineering``."""
    return group == scope_group or group.startswith(scope_group + "/")


@dataclass(frozen=True)
class Scope:
    """What a caller may see: ``groups`` None = every agent (admin, unscoped tokens)."""

    groups: tuple[str, ...] | None = None

    @property
    def everything(self) -> bool:
        return self.groups is None

    def covers(self, group: str) -> bool:
        return self.groups is None or any(covers(s, group) for s in self.groups)

    def to_json(self) -> list[str] | None:
        return None if self.groups is None else list(self.groups)


EVERYTHING = Scope(None)


def scope_for(role: str, groups: Iterable[str]) -> Scope:
    """A token's scope: its groups, unless it has none (or is admin: admins see all)."""
    groups = tuple(groups)
    return EVERYTHING if role == "admin" or not groups else Scope(groups)


# -- reading ----------------------------------------------------------------------------------

# Group names are sorted here, not by the database: PostgreSQL's collation may order
# text unlike SQLite (e.g. "Sales" after "eng"), and names are shown and compared as
# check_groups sorts them.

def memberships(conn: Connection) -> dict[int, list[str]]:
    """Agent key -> its groups, sorted (agents without a group are absent)."""
    out: dict[int, list[str]] = defaultdict(list)
    for key, grp in conn.execute("SELECT agent, grp FROM agent_groups ORDER BY agent"):
        out[key].append(grp)
    return {key: sorted(names) for key, names in out.items()}


@dataclass(frozen=True)
class Visible:
    """The agents a request may see, resolved: ``keys`` None = all of them, and
    each visible agent's groups as this scope may show them (out-of-scope
    groups of a visible agent are not shown either)."""

    keys: frozenset[int] | None
    groups_of: dict[int, list[str]]

    def allows(self, key: int) -> bool:
        return self.keys is None or key in self.keys

    def group_text(self, key: int) -> str:
        return ";".join(self.groups_of.get(key, ()))


def visible(conn: Connection, scope: Scope, group: str | None = None) -> Visible:
    """Resolve a scope (and an optional ``group`` filter, itself covering subgroups)
    to agent keys. An unknown group - or one the scope does not cover - selects no
    agent; the caller decides whether that is a 404."""
    member = memberships(conn)
    groups_of = {k: [g for g in gs if scope.covers(g)] for k, gs in member.items()}
    groups_of = {k: gs for k, gs in groups_of.items() if gs}
    if scope.everything and group is None:
        return Visible(None, groups_of)
    keys = set(groups_of) if not scope.everything else {
        k for (k,) in conn.execute("SELECT id FROM agents")}
    if group is not None:
        keys = {k for k in keys if any(covers(group, g) for g in groups_of.get(k, ()))}
    return Visible(frozenset(keys), groups_of)


def group_exists(conn: Connection, scope: Scope, group: str) -> bool:
    """Some agent the scope may see is in ``group`` or one of its subgroups."""
    return bool(visible(conn, scope, group).keys)


def list_groups(conn: Connection, scope: Scope = EVERYTHING) -> list[dict[str, Any]]:
    """Each group the scope covers with how many (non-revoked) agents are in it."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for grp, revoked in conn.execute(
            "SELECT g.grp, a.revoked_ms IS NOT NULL FROM agent_groups g "
            "JOIN agents a ON a.id = g.agent"):
        if scope.covers(grp):
            counts[grp][1 if revoked else 0] += 1
    return [{"group": g, "agents": c[0], "revoked_agents": c[1]}
            for g, c in sorted(counts.items())]


def token_groups(conn: Connection, token_id: str) -> tuple[str, ...]:
    return tuple(sorted(g for (g,) in conn.execute(
        "SELECT grp FROM token_groups WHERE token_id = ?", (token_id,))))


def all_token_groups(conn: Connection) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for token_id, grp in conn.execute("SELECT token_id, grp FROM token_groups"):
        out[token_id].append(grp)
    return {k: tuple(sorted(v)) for k, v in out.items()}


# -- writing (inside a store write transaction) -----------------------------------------------

def put_token_groups(conn: Connection, token_id: str, groups: Iterable[str]) -> None:
    conn.executemany("INSERT OR IGNORE INTO token_groups (token_id, grp) VALUES (?, ?)",
                     [(token_id, g) for g in groups])


def put_agent_groups(conn: Connection, key: int, groups: Iterable[str]) -> None:
    conn.executemany("INSERT OR IGNORE INTO agent_groups (agent, grp) VALUES (?, ?)",
                     [(key, g) for g in groups])


def replace_agent_groups(conn: Connection, key: int, groups: Iterable[str]) -> None:
    conn.execute("DELETE FROM agent_groups WHERE agent = ?", (key,))
    put_agent_groups(conn, key, groups)


class UnknownAgentId(LookupError):
    """No agent with that public id."""


def set_agent_groups(store: Any, agent_id: str, groups: Iterable[str]) -> tuple[str, ...]:
    """Replace an agent's groups (validated); UnknownAgentId when there is no such agent."""
    checked = check_groups(groups)

    def change(conn: Connection) -> None:
        row = conn.execute("SELECT id FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None:
            raise UnknownAgentId(agent_id)
        replace_agent_groups(conn, row[0], checked)

    store.write(change)
    return checked
