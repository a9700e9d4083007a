"""Where closed records go: the seam between the sensor side (sensors -> spans)
and the delivery side (spool -> shipper -> wire).

Records are the wire messages themselves (``worklens.v1`` WindowSpan,
ActivitySpan, ProcessSample, SystemTotals), already filtered by the privacy
rules: nothing that crosses this seam may carry data the employee's
configuration excludes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worklens.v1 import agent_pb2

Record = (agent_pb2.WindowSpan | agent_pb2.ActivitySpan | agent_pb2.ProcessSample
          | agent_pb2.SystemTotals)


class Sink(Protocol):
    def write(self, records: Sequence[Record]) -> None:
        """Take closed records, in the order they closed. Must not block for long."""

    def checkpoint(self, open_records: Sequence[Record],
                   closed: Sequence[Record] = (), heartbeat: bool = False) -> None:
        """The flush: take ``closed`` (the parts of open spans cut at this flush, see
        ``agent.spans.SpanTracker.cut``) and remember the still-open spans (as if
        they ended now), replacing the last checkpoint, both at once — a crash
        between the two would count the cut part twice. A ``kill -9`` loses at
        most one flush interval: after a crash the delivery side turns the last
        checkpoint into closed records; a clean shutdown writes the closed spans
        and checkpoints ``[]``. Closed parts should reach the collector now.
        ``heartbeat``: nothing was sent for a while; let the collector know the
        agent runs (an empty batch) unless something is on its way already."""

    def close(self) -> None:
        """Flush and release resources; called once, after the last write."""
