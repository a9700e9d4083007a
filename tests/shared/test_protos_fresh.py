"""The generated protobuf/gRPC code is committed; it must match the .proto."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
PROTO = "worklens/v1/agent.proto"


def _generate(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
         f"--pyi_out={out}", f"--grpc_python_out={out}", str(PROTOS / PROTO)],
        check=True,
    )


def _descriptor(pb2_source: str) -> descriptor_pb2.FileDescriptorProto:
    """The serialized FileDescriptorProto embedded in a generated _pb2.py."""
    match = re.search(r"AddSerializedFile\((b'.*?')\)", pb2_source, re.S)
    assert match, "generated module has no serialized descriptor"
    fd = descriptor_pb2.FileDescriptorProto()
    fd.ParseFromString(eval(match.group(1)))  # a bytes literal written by protoc
    return fd


def _without_versions(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not re.search(r"\d+\.\d+\.\d+", line))


def test_generated_code_matches_proto(tmp_path):
    _generate(tmp_path)
    fresh = tmp_path / "worklens/v1"
    committed = PROTOS / "worklens/v1"
    assert _descriptor((fresh / "agent_pb2.py").read_text()) == _descriptor(
        (committed / "agent_pb2.py").read_text()
    ), "agent_pb2.py is stale: run `make protos` and commit the result"
    for name in ("agent_pb2_grpc.py", "agent_pb2.pyi"):
        assert _without_versions((fresh / name).read_text()) == _without_versions(
            (committed / name).read_text()
        ), f"{name} is stale: run `make protos` and commit the result"
