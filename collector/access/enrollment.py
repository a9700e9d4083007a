"""Agents: trading an enrollment secret for an agent id + credential, and
recognising an agent from its credential.

The credential reads ``<agent_id>.<secret>``: the agent id finds the row, the
secret (32 random bytes, stored as a SHA-256 hash, compared in constant time)
proves it. The agent id used for storing data always comes from here, never
from a batch's payload.
"""

from __future__ import annotations

import itertools
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass

from worklens.collector.access.groups import put_agent_groups
from worklens.collector.access.tokens import hash_secret, new_secret, same_hash, verify_token
from worklens.collector.store import AgentRow, Store
from worklens.v1 import agent_pb2

AGENT_ID_PREFIX = "ag-"
_ALPHABET = string.ascii_lowercase + string.digits
MAX_INSTALL_ID = 128


class EnrollmentRefused(Exception):
    """The enrollment secret is unknown, revoked, expired or not an enroll token."""


class AgentRevoked(Exception):
    """This install was enrolled before and its agent has been revoked."""


@dataclass(frozen=True)
class Enrolled:
    agent: AgentRow
    credential: str
    new: bool


# Bumped (after the commit) whenever this process revokes an agent or rotates its
# credential, so that open Upload streams re-check their credential before their
# next batch instead of waiting for the periodic re-check (ingest.service).
_changes = itertools.count(1)
_changes_seen = 0
_changes_lock = threading.Lock()


def credential_changes() -> int:
    """How many credential changes (revoke, re-enroll) this process has made."""
    return _changes_seen


def _credentials_changed() -> None:
    global _changes_seen
    with _changes_lock:
        _changes_seen = next(_changes)


def new_agent_id() -> str:
    return AGENT_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def enroll(store: Store, secret: str, install_id: str,
                 host: agent_pb2.HostInfo) -> Enrolled:
    """A new agent (or, for a known ``install_id``, the same agent with a fresh
    credential: the old one stops working)."""
    token = verify_token(store, secret)
    if token is None or token.role != "enroll":
        raise EnrollmentRefused("the enrollment secret is unknown, revoked or expired")
    secret_part = new_secret()
    now = _now_ms()

    def upsert(conn: sqlite3.Connection) -> Enrolled:
        row = conn.execute(f"SELECT {AgentRow.COLUMNS} FROM agents WHERE install_id = ?",
                           (install_id,)).fetchone()
        if row is not None:
            agent = AgentRow.from_row(row)
            if agent.revoked_ms is not None:
                raise AgentRevoked(f"agent {agent.agent_id} was revoked; remove the agent's "
                                   "data directory to enroll it as a new agent")
            credential = f"{agent.agent_id}.{secret_part}"
            conn.execute("UPDATE agents SET credential_hash = ? WHERE id = ?",
                         (hash_secret(secret_part), agent.key))
            return Enrolled(agent, credential, new=False)
        while True:
            agent_id = new_agent_id()
            if not conn.execute("SELECT 1 FROM agents WHERE agent_id = ?",
                                (agent_id,)).fetchone():
                break
        cur = conn.execute(
            "INSERT INTO agents (agent_id, install_id, credential_hash, hostname, os, "
            "os_version, username, agent_version, enrolled_ms) VALUES (?,?,?,?,?,?,?,?,?)",
            (agent_id, install_id, hash_secret(secret_part), host.hostname, host.os,
             host.os_version, host.user, host.agent_version, now))
        # The enroll secret's groups, at enrollment only: a re-enroll keeps what an
        # admin may have changed since.
        put_agent_groups(conn, cur.lastrowid, token.groups)
        agent = AgentRow(cur.lastrowid, agent_id, install_id, "", host.hostname, host.os,
                         host.os_version, host.user, host.agent_version, now)
        return Enrolled(agent, f"{agent_id}.{secret_part}", new=True)

    enrolled = await store.write_async(upsert)
    if not enrolled.new:
        _credentials_changed()   # the old credential stopped working just now
    return enrolled


def authenticate(store: Store, credential: str) -> AgentRow | None:
    """The agent whose credential this is, or None (unknown, wrong or revoked)."""
    agent_id, dot, secret = (credential or "").partition(".")
    if not dot or not agent_id.startswith(AGENT_ID_PREFIX) or not secret:
        return None
    with store.reader() as conn:
        row = conn.execute(f"SELECT {AgentRow.COLUMNS} FROM agents WHERE agent_id = ?",
                           (agent_id,)).fetchone()
    if row is None:
        return None
    agent = AgentRow.from_row(row)
    if not same_hash(secret, agent.credential_hash) or agent.revoked_ms is not None:
        return None
    return agent


def revoke_agent(store: Store, agent_id: str) -> bool:
    """Make an agent's credential stop working (its data stays)."""
    now = _now_ms()
    revoked = store.write(lambda conn: conn.execute(
        "UPDATE agents SET revoked_ms = ? WHERE agent_id = ? AND revoked_ms IS NULL",
        (now, agent_id)).rowcount > 0)
    if revoked:
        _credentials_changed()
    return revoked
