"""What the ingest bad-input tests share: a bystander agent whose stream stays
open across a test, and helpers to send batches and read what was stored."""

from __future__ import annotations

import queue
import threading

import grpc
import pytest
from collector_harness import AgentCredentials, make_batch
from worklens.v1 import agent_pb2

REJECTED = "worklens-rejected-sequence"


class Bystander:
    """Another agent with one Upload stream open across the whole test."""

    def __init__(self, collector) -> None:
        self.collector = collector
        self.agent = collector.enroll_agent(hostname="bystander")
        self.channel = collector.channel()
        self._out: queue.Queue = queue.Queue()
        self._acks: queue.Queue = queue.Queue()
        self._sequence = 0
        self._call = collector.stub(self.channel).Upload(iter(self._out.get, None),
                                                         metadata=self.agent.metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for ack in self._call:
                self._acks.put(ack)
        except grpc.RpcError as exc:
            self._acks.put(exc)

    def roundtrip(self) -> None:
        """Send the next batch on the same stream; it must be acked as new."""
        self._sequence += 1
        self._out.put(make_batch(self.agent.agent_id, self._sequence))
        ack = self._acks.get(timeout=60)
        assert isinstance(ack, agent_pb2.Ack), f"bystander stream failed: {ack}"
        assert (ack.sequence, ack.duplicate) == (self._sequence, False)

    def close(self) -> None:
        self._out.put(None)
        self.channel.close()
        assert self.collector.count("batches", self.agent.agent_id) == self._sequence


def upload_error(collector, agent: AgentCredentials, batches, raw: bool = False):
    """Send ``batches`` on one stream; return (acks received, the RpcError)."""
    acks = []
    with collector.channel() as channel:
        if raw:
            call = channel.stream_stream("/worklens.v1.AgentService/Upload",
                                         request_serializer=None,
                                         response_deserializer=agent_pb2.Ack.FromString)
        else:
            call = collector.stub(channel).Upload
        with pytest.raises(grpc.RpcError) as info:
            for ack in call(iter(batches), metadata=agent.metadata, timeout=60):
                acks.append(ack)
    return acks, info.value


def rejected_sequence(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(REJECTED)


def stored(collector, agent: AgentCredentials) -> tuple[int, ...]:
    return tuple(collector.count(table, agent.agent_id) for table in
                 ("batches", "window_spans", "activity_spans", "process_samples",
                  "system_totals"))


NOTHING = (0, 0, 0, 0, 0)
