"""What every store backend shares: errors, result types and the row types
other layers receive. Nothing here knows SQL or gRPC."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worklens.common.cli import UserError


class Connection(Protocol):
    """What a connection the store lends (``reader()``, ``write(fn)``, hooks) offers,
    whichever the engine: a ``sqlite3.Connection`` or a ``store.pgsql.PgConnection``.
    SQL written for it uses ``?`` placeholders and the subset both engines read
    (store/pgsql.py says which)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def dialect(conn: object) -> str:
    """Which engine a connection the store lent talks to: ``"postgresql"`` (a
    ``store.pgsql.PgConnection``) or ``"sqlite"``. For the few statements that cannot
    be written once for both (see store/pgsql.py)."""
    return getattr(conn, "dialect", SQLITE)


class StoreError(UserError):
    """The store cannot be used (locked by another collector, read-only,
    corrupt, unknown URL...). A ``UserError`` so that every CLI command that
    opens the store prints it as one line and exits 1 without extra code."""


class StoreUnavailable(StoreError):
    """A write could not be made durable right now (e.g. the disk is full).
    Nothing of the affected batches was stored; the caller may retry later."""


class StoreBusy(StoreError):
    """Too much is waiting for the writer: back off and retry after
    ``retry_after_ms``. Nothing was queued."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class IngestResult:
    duplicate: bool


@dataclass(frozen=True)
class AgentRow:
    """One row of ``agents``; ``key`` is the internal integer id used by all
    record tables, ``agent_id`` the public id shown to people."""

    key: int
    agent_id: str
    install_id: str | None
    credential_hash: str
    hostname: str = ""
    os: str = ""
    os_version: str = ""
    username: str = ""
    agent_version: str = ""
    enrolled_ms: int = 0
    last_seen_ms: int | None = None
    last_sequence: int = 0
    dropped_events: int = 0
    revoked_ms: int | None = None

    COLUMNS = ("id, agent_id, install_id, credential_hash, hostname, os, os_version, username, "
               "agent_version, enrolled_ms, last_seen_ms, last_sequence, dropped_events, "
               "revoked_ms")

    @classmethod
    def from_row(cls, row: tuple) -> AgentRow:
        return cls(*row)
