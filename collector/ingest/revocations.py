"""Ending the open Upload streams of agents whose credential stopped working,
wherever that happened: through this collector, another collector sharing the
database, the ``agents revoke`` CLI, an enrollment that replaced the credential,
or SQL typed by hand.

Why a poll and not a notification: every way of revoking is a committed change to
the ``agents`` row, and only the database sees them all. One query a second asks,
for every credential this collector's streams hold, whether its agent is revoked,
re-keyed or gone; it answers with those pairs only, so a thousand idle streams
cost one small query, not a thousand. A stream that is found ends with
UNAUTHENTICATED even when its agent sends nothing (the check before each batch
only saw it at the next batch). A revocation made by this process is seen at the
next tick (``TICK_S``) instead of waiting for the second.

The store being down is not a revocation: the poll logs it once and tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable

from worklens.collector.access.enrollment import credential_changes
from worklens.collector.store import Connection, Store, StoreError

log = logging.getLogger(__name__)

# How often the open streams' credentials are checked against the database: the
# bound (plus one query) on how long a revocation made anywhere takes to end them.
WATCH_EVERY_S = 1.0
# How often this process's own revocations are looked for between two polls.
TICK_S = 0.1
# Credentials per query (two bound values each; SQLite allows 32,766 per statement).
CHUNK = 500

Held = tuple[int, str]   # (agent key, credential hash the stream authenticated with)


def no_longer_valid(conn: Connection, held: Iterable[Held]) -> set[Held]:
    """Those of ``held`` whose agent is revoked, has another credential now, or is gone.
    One statement per CHUNK pairs, in the SQL both engines read."""
    pairs = sorted(set(held))
    out: set[Held] = set()
    for i in range(0, len(pairs), CHUNK):
        part = pairs[i:i + CHUNK]
        values = ", ".join(["(?, ?)"] * len(part))
        params = [value for pair in part for value in pair]
        rows = conn.execute(
            f"WITH held (id, hash) AS (VALUES {values}) "
            "SELECT held.id, held.hash FROM held LEFT JOIN agents a ON a.id = held.id "
            "WHERE a.id IS NULL OR a.revoked_ms IS NOT NULL OR a.credential_hash <> held.hash",
            params).fetchall()
        out.update((int(key), str(digest)) for key, digest in rows)
    return out


class RevocationWatcher:
    """Polls the credentials ``streams()`` hold and calls ``end(pair)`` for each one
    that stopped working. Run ``await watcher.run()`` as a task; cancel it to stop."""

    def __init__(self, store: Store, streams: Callable[[], Iterable[Held]],
                 end: Callable[[Held], None], every_s: float = WATCH_EVERY_S) -> None:
        self.store = store
        self.streams = streams
        self.end = end
        self.every_s = every_s
        self._failing = False
        # one thread: SQLite readers are per thread, so it keeps reusing one connection
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "credential-watch")

    async def run(self) -> None:
        seen = credential_changes()
        last = time.monotonic()
        try:
            while True:
                await asyncio.sleep(TICK_S)
                changes = credential_changes()
                if changes == seen and time.monotonic() - last < self.every_s:
                    continue
                seen, last = changes, time.monotonic()
                await self.check()
        finally:
            self._thread.shutdown(wait=False, cancel_futures=True)

    async def check(self) -> None:
        """One poll: end the streams whose credential no longer holds."""
        held = set(self.streams())
        if not held:
            return
        loop = asyncio.get_running_loop()
        try:
            gone = await loop.run_in_executor(self._thread, self._query, held)
        except Exception as exc:  # StoreError, or e.g. a connection closed under it
            self._failed(exc)
            return
        if self._failing:
            log.info("credential checks of open upload streams work again")
            self._failing = False
        for pair in gone:
            self.end(pair)

    def _query(self, held: set[Held]) -> set[Held]:
        with self.store.reader() as conn:
            return no_longer_valid(conn, held)

    def _failed(self, exc: Exception) -> None:
        """Say it once per outage (the poll retries every ``every_s``)."""
        if not self._failing:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            level = logging.WARNING if isinstance(exc, StoreError) else logging.ERROR
            log.log(level, "cannot check the open upload streams' credentials (retrying "
                    "every %.0f s): %s", self.every_s, why, exc_info=level == logging.ERROR)
        self._failing = True
