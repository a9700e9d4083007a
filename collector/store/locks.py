"""PostgreSQL advisory locks: the only coordination between several collectors
sharing one database (no lock file, no leader election of our own).

Transaction-level locks (``take``) end with the transaction that took them:
migrations, partition creation, and one per agent in every ingest transaction
(taken in ascending key order, so two collectors never deadlock on them).
Session-level locks (``try_hold``) mark a long job such as retention or a rules
re-application that only one collector may run at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

# pg_advisory_xact_lock(int4, int4): the first number is ours, the second the lock
NAMESPACE = 0x574C            # "WL"
AGENT_NAMESPACE = 0x574D      # one lock per agent key
MIGRATIONS, PARTITIONS, MAINTENANCE = 1, 2, 3


def take(conn: Any, lock: int) -> None:
    """Wait for the transaction-level lock ``lock`` (released at COMMIT/ROLLBACK)."""
    conn.raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (NAMESPACE, lock))


def take_agents(conn: Any, keys: Iterable[int]) -> None:
    """Serialise the transactions that write these agents' records, across collectors:
    a batch resent through another collector then finds the first one committed (a
    duplicate), and the rollups read exactly the spans stored before."""
    ordered = sorted(set(keys))
    conn.raw.execute("SELECT pg_advisory_xact_lock(%s, k::int4) FROM unnest(%s::bigint[]) "
                     "AS k ORDER BY k", (AGENT_NAMESPACE, ordered))


@contextlib.contextmanager
def try_hold(conn: Any, lock: int) -> Iterator[bool]:
    """Hold the session-level lock ``lock`` for the ``with`` block if no other session
    holds it; yields whether it was taken (False: another collector is doing it)."""
    got = conn.raw.execute("SELECT pg_try_advisory_lock(%s, %s)",
                           (NAMESPACE, lock)).fetchone()[0]
    try:
        yield bool(got)
    finally:
        if got:
            conn.raw.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, lock))
