"""Agents: trading an enrollment secret for an agent id + credential, and
recognising an agent from its credential.

The credential reads ``<agent_id>.<secret>``: the agent id finds the row, the
secret (32 random bytes, stored as a SHA-256 hash, compared in constant time)
proves it. The agent id used for storing data always comes from here, never
from a batch's payload.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import string
import threading
import time
from dataclasses import dataclass

from worklens.collector.access.groups import put_agent_groups
from worklens.collector.access.tokens import hash_secret, new_secret, same_hash, verify_token
from worklens.collector.store import AgentRow, Connection, Store
from worklens.v1 import agent_pb2

AGENT_ID_PREFIX = "ag-"
_ALPHABET = string.ascii_lowercase + string.digits
MAX_INSTALL_ID = 128


class EnrollmentRefused(Exception):
    """The enrollment secret is unknown, revoked, expired or not an enroll token."""


class AgentRevoked(Exception):
    """This install was enrolled before and its agent has been revoked."""


class ReenrollRefused(Exception):
    """This install is enrolled and the caller did not prove it is that agent."""


# A just-enrolled agent that never made an authenticated call may enroll again
# without its credential for this long (the reply to its first Enroll may have
# been lost); after that, re-enrolling needs the current credential or an
# admin's approval (``allow_reenroll``).
UNUSED_REENROLL_MS = 15 * 60_000
REENROLL_APPROVAL_MS = 24 * 3_600_000
INSTALL_HASH_PREFIX = "sha256:"


def install_key(install_id: str) -> str:
    """How an install id is stored: hashed, so that reading the store (or a backup)
    does not give what re-enrolling as that machine would need."""
    return INSTALL_HASH_PREFIX + hash_secret(install_id)


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
                 host: agent_pb2.HostInfo, credential: str = "") -> Enrolled:
    """A new agent, or, for a known ``install_id``, the same agent with a fresh
    credential (the old one stops working) when the caller proves it is that agent:
    ``credential`` is its current one, an admin allowed it (``allow_reenroll``), or
    the agent was enrolled minutes ago and never used its credential."""
    # on a thread: with PostgreSQL a lookup is a round trip, or a wait while it is down
    token = await asyncio.to_thread(verify_token, store, secret)
    if token is None or token.role != "enroll":
        raise EnrollmentRefused("the enrollment secret is unknown, revoked or expired")
    secret_part = new_secret()
    now = _now_ms()
    key = install_key(install_id)

    def upsert(conn: Connection) -> Enrolled:
        # install ids stored before they were hashed are found as written, then hashed
        row = conn.execute(f"SELECT {AgentRow.COLUMNS}, reenroll_until_ms FROM agents "
                           "WHERE install_id IN (?, ?)", (key, install_id)).fetchone()
        if row is not None:
            agent, approved_until = AgentRow.from_row(row[:-1]), row[-1]
            if agent.revoked_ms is not None:
                raise AgentRevoked(f"agent {agent.agent_id} was revoked; remove the agent's "
                                   "data directory to enroll it as a new agent")
            if not _may_reenroll(agent, credential, approved_until, now):
                raise ReenrollRefused(
                    f"this install is already enrolled as agent {agent.agent_id}: "
                    "re-enrolling needs that agent's current credential, or an admin's "
                    f"approval (POST /api/v1/agents/{agent.agent_id}/allow-reenroll)")
            conn.execute("UPDATE agents SET credential_hash = ?, install_id = ?, "
                         "reenroll_until_ms = NULL WHERE id = ?",
                         (hash_secret(secret_part), key, agent.key))
            return Enrolled(agent, f"{agent.agent_id}.{secret_part}", new=False)
        while True:
            agent_id = new_agent_id()
            if not conn.execute("SELECT 1 FROM agents WHERE agent_id = ?",
                                (agent_id,)).fetchone():
                break
        new_key = conn.execute(
            "INSERT INTO agents (agent_id, install_id, credential_hash, hostname, os, "
            "os_version, username, agent_version, enrolled_ms) VALUES (?,?,?,?,?,?,?,?,?) "
            "RETURNING id",
            (agent_id, key, hash_secret(secret_part), host.hostname, host.os,
             host.os_version, host.user, host.agent_version, now)).fetchone()[0]
        # The enroll secret's groups, at enrollment only: a re-enroll keeps what an
        # admin may have changed since.
        put_agent_groups(conn, new_key, token.groups)
        agent = AgentRow(new_key, agent_id, key, "", host.hostname, host.os,
                         host.os_version, host.user, host.agent_version, now)
        return Enrolled(agent, f"{agent_id}.{secret_part}", new=True)

    enrolled = await store.write_async(upsert)
    if not enrolled.new:
        _credentials_changed()   # the old credential stopped working just now
    return enrolled


def _may_reenroll(agent: AgentRow, credential: str, approved_until: int | None,
                  now: int) -> bool:
    agent_id, dot, secret = (credential or "").partition(".")
    if dot and agent_id == agent.agent_id and secret and \
            same_hash(secret, agent.credential_hash):
        return True
    if approved_until is not None and approved_until >= now:
        return True
    return agent.last_seen_ms is None and now - agent.enrolled_ms <= UNUSED_REENROLL_MS


def allow_reenroll(store: Store, agent_id: str) -> bool:
    """An admin's approval: the agent may enroll again without its credential (for
    REENROLL_APPROVAL_MS), e.g. after its data directory was lost."""
    until = _now_ms() + REENROLL_APPROVAL_MS
    return store.write(lambda conn: conn.execute(
        "UPDATE agents SET reenroll_until_ms = ? WHERE agent_id = ? AND revoked_ms IS NULL",
        (until, agent_id)).rowcount > 0)


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
