"""``worklens-agent enroll``: trade the enrollment secret IT deployed for this
agent's own credential, and remember where the collector is.

Safe to re-run: the install id in the data dir makes the collector hand back
the same agent id (with a fresh credential; the old one stops working), so
re-enrolling never creates a second agent for the same machine. The current
credential goes with the request: the collector re-enrolls an existing agent
only for the holder of its credential (or with an admin's approval), so that
the shared enrollment secret plus an install id cannot take over a machine.

With several collector addresses (``--collector a:50051,b:50051``) enrollment
tries them in order and stops at the first that answers (whatever it
answers: a refused secret is refused by every collector of the store); the
whole list is saved for ``run``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import grpc
from worklens.agent import credential
from worklens.agent.channel import connection, each_address, explain, open_channel
from worklens.agent.credential import Connection, Credential
from worklens.agent.failover import FAILOVER_CODES
from worklens.agent.hostinfo import host_info
from worklens.agent.spool import now_ms
from worklens.common.cli import UserError
from worklens.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

ENROLL_TIMEOUT_S = 15.0


class EnrollError(grpc.RpcError):
    """Enrollment failed at every address tried: the last answer (``code()``,
    ``details()``), the address it came from (``conn``) and what each earlier
    address said (``unreached``: address -> sentence)."""

    def __init__(self, error: grpc.RpcError, conn: Connection, unreached: dict[str, str]):
        super().__init__(str(error))
        self.error, self.conn, self.unreached = error, conn, unreached

    def code(self) -> grpc.StatusCode:
        return self.error.code() if hasattr(self.error, "code") else grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self.error.details() if hasattr(self.error, "details") else str(self.error)

    def trailing_metadata(self):
        return self.error.trailing_metadata() if hasattr(self.error, "trailing_metadata") \
            else ()


def enroll(conn: Connection, secret: str, data_dir: Path,
           timeout: float = ENROLL_TIMEOUT_S) -> Credential:
    """Enroll and store the credential; raises EnrollError (a grpc.RpcError) when
    the collector refuses or no address can be reached (callers decide whether
    to retry). Several addresses are tried in order."""
    install = credential.install_id(data_dir)
    current = _current_credential(data_dir)
    unreached: dict[str, str] = {}
    choices = each_address(conn) or [conn]
    for one in choices:
        try:
            reply = _enroll_at(one, secret, install, timeout, current)
            if len(choices) > 1:
                log.info("enrolled through the collector at %s", one.address)
            break
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            if code not in FAILOVER_CODES or one is choices[-1]:
                raise EnrollError(err, one, unreached) from None
            unreached[one.address] = explain(err, one)
    cred = Credential(agent_id=reply.agent_id, credential=reply.credential,
                      install_id=install, enrolled_ms=now_ms(), collector=conn)
    credential.save(data_dir, cred)
    return cred


def _enroll_at(conn: Connection, secret: str, install: str, timeout: float,
               current: str = "") -> agent_pb2.EnrollResponse:
    metadata = (("authorization", f"Bearer {current}"),) if current else ()
    channel = open_channel(conn)
    try:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        return stub.Enroll(agent_pb2.EnrollRequest(secret=secret, host=host_info(),
                                                   install_id=install), timeout=timeout,
                           metadata=metadata)
    finally:
        channel.close()


def _current_credential(data_dir: Path) -> str:
    """The credential this data dir holds, if any and readable ("" otherwise)."""
    try:
        saved = credential.load(data_dir)
    except UserError:
        return ""
    return saved.credential if saved is not None else ""


def refusal(err: grpc.RpcError, conn: Connection) -> str:
    """What a failed Enroll call means for the person running it."""
    earlier = ""
    if isinstance(err, EnrollError):
        conn = err.conn
        earlier = "".join(f"; before that, {said}" for said in err.unreached.values())
    if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return (f"the collector at {conn.address} refused the enrollment secret "
                f"({err.details()}): ask for a current one "
                f"(`worklens-collector token create --role enroll`){earlier}")
    return explain(err, conn) + earlier


def command(args: argparse.Namespace, cfg, data_dir: Path) -> int:
    # the flags were merged into cfg.collector by agent/cli.py; saved settings are
    # deliberately not reused: enrolling is how they are changed
    conn = connection(cfg.collector)
    if not args.secret.strip():
        raise UserError("--secret is empty: pass the enrollment secret from "
                        "`worklens-collector token create --role enroll`")
    try:
        cred = enroll(conn, args.secret.strip(), data_dir)
    except grpc.RpcError as err:
        raise UserError(refusal(err, conn)) from None
    print(f"enrolled as {cred.agent_id} with the collector at {conn.address}")
    print(f"credential stored in {data_dir / credential.CREDENTIAL_FILE} (readable only by you)")
    return 0
