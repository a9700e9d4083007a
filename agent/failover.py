"""Which collector the shipper talks to when ``[collector] address`` names
several (``a.example:50051,b.example:50051``, the preferred first).

This is delivery policy, so it belongs to the shipper (agent/shipper.py), as
retry and backoff do; the channel only ever opens one address and knows
nothing of the others.

- The shipper starts on the first (preferred) address.
- When the current address is unreachable, answers ``UNAVAILABLE`` or does not
  answer in time (``DEADLINE_EXCEEDED``), the shipper moves to the next one at
  once (the list wraps around). Only when every address has failed in a row —
  a full round with no ack in between — does it back off before the next try,
  so a fleet whose collectors are all down does not spin.
- Any other answer (``INTERNAL``, ``RESOURCE_EXHAUSTED``...) comes from a
  collector that is there: the shipper stays and follows its retry table.
- While on a fallback, every ``failback_after`` seconds it asks the addresses
  before the current one (the preferred first) for a short ``Hello``; the first
  that answers becomes current again. The stream on the fallback is finished
  gracefully (no new batches; those in flight are acknowledged first), so a
  move back costs no resend.

Nothing is lost or doubled by moving: a batch is deleted from the spool only
when acknowledged, every unacknowledged batch is sent again on the next stream,
wherever it goes, and the collectors' store keeps (agent, sequence) once.

A single name with several DNS records is one entry here: gRPC's resolver and
its ``pick_first`` policy try the records in order on each connection attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

# Answers that mean "this collector is not there for now": move on.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# How long the shipper stays on a fallback before asking the preferred address again.
FAILBACK_AFTER_S = 300.0
# The Hello that asks whether a preferred address is back.
PROBE_TIMEOUT_S = 5.0


@dataclass
class Rotation:
    """The configured addresses and which one is current. Used only from the
    shipper's own thread."""

    addresses: list[str]
    current: int = 0
    _misses: int = field(default=0, repr=False)   # failures since the last ack

    @property
    def address(self) -> str:
        return self.addresses[self.current]

    @property
    def next_address(self) -> str:
        return self.addresses[(self.current + 1) % len(self.addresses)]

    def earlier(self) -> list[tuple[int, str]]:
        """The addresses preferred to the current one, most preferred first."""
        return list(enumerate(self.addresses[:self.current]))

    def failed(self) -> bool:
        """The current address is down: move to the next. True when every address
        has now failed in a row (time to back off before trying again)."""
        self._misses += 1
        self.current = (self.current + 1) % len(self.addresses)
        return self._misses % len(self.addresses) == 0

    def delivered(self) -> None:
        """An ack arrived: the next failure starts a new round."""
        self._misses = 0

    def prefer(self, index: int) -> None:
        """An earlier address answered again: go back to it."""
        self.current = index
        self._misses = 0
