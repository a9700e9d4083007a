"""``worklens-agent run --print``: closed records as JSON lines on stdout.

This is how an employee or IT sees exactly what the agent would send: one
JSON object per record, as it closes, with the wire fields unchanged plus a
``record`` kind and a readable local ``start``/``time``. Nothing is stored
and no collector is contacted.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from worklens.agent.sink import Record

log = logging.getLogger(__name__)

KINDS = {"WindowSpan": "window", "ActivitySpan": "activity", "ProcessSample": "process",
         "SystemTotals": "system"}
# Fields only the packed encoding sets, on the wire between agent and collector
# (docs/protocol.md, "Extensions"); a record as it closes never has them.
PACKING_ONLY = frozenset({"same_window"})


def record_to_dict(record: Record) -> dict[str, Any]:
    """The record's wire fields (all of them, defaults included, those of the packed
    encoding aside) as plain JSON values."""
    out: dict[str, Any] = {"record": KINDS[type(record).__name__]}
    for fd in record.DESCRIPTOR.fields:
        if fd.name in PACKING_ONLY:
            continue
        value = getattr(record, fd.name)
        if fd.enum_type is not None:
            value = fd.enum_type.values_by_number[value].name.removeprefix(
                "ACTIVITY_STATE_").removeprefix("PASSIVE_REASON_")
        elif isinstance(value, float):
            value = round(value, 3)
        out[fd.name] = value
    for field, label in (("start_ms", "start"), ("time_ms", "time")):
        if field in out:
            out[label] = datetime.fromtimestamp(out[field] / 1000).astimezone() \
                .isoformat(timespec="milliseconds")
    return out


class PrintSink:
    """A Sink (see ``agent.sink``) that prints instead of delivering."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._broken = False

    def write(self, records: Sequence[Record]) -> None:
        if self._broken or not records:
            return
        try:
            for record in records:
                self._stream.write(json.dumps(record_to_dict(record), ensure_ascii=False) + "\n")
            self._stream.flush()
        except BrokenPipeError:  # `worklens-agent run --print | head`: stop printing
            self._broken = True
            log.info("stdout closed; no longer printing records")

    def checkpoint(self, open_records: Sequence[Record],
                   closed: Sequence[Record] = (), heartbeat: bool = False) -> None:
        """Print the parts cut at this flush (``"continued": true`` on the later
        ones); print mode keeps nothing, so there is nothing to recover, and has
        no collector to tell that it runs."""
        self.write(closed)

    def close(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._broken = True

