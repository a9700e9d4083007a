"""The agent's identity on disk: its install id, and after enrollment its agent
id, credential and the collector it enrolled with.

The credential is a bearer secret: whoever reads it can write data as this
agent. So the data dir is 0700 and the files are 0600, created with those modes
from the start (never chmod'ed after being written world-readable), and written
atomically so a crash mid-write never leaves half a credential.

The install id is kept apart from the credential: it is what makes re-running
``enroll`` safe (same install id -> the collector hands back the same agent id),
so it must survive even when the credential file is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from worklens.common.cli import UserError

log = logging.getLogger(__name__)

INSTALL_ID_FILE = "install-id"
CREDENTIAL_FILE = "credential.json"


@dataclass
class Connection:
    """How to reach the collector; saved at enrollment so ``run`` and ``status``
    work without a config file. Paths are absolute."""

    address: str = ""
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    insecure: bool = False


@dataclass
class Credential:
    agent_id: str
    credential: str
    install_id: str
    enrolled_ms: int = 0
    collector: Connection = field(default_factory=Connection)


def ensure_private_dir(data_dir: Path) -> Path:
    """Create the data dir (0700) if needed; tighten it if it is group/world open."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix" and data_dir.stat().st_mode & 0o077:
            data_dir.chmod(0o700)
    except OSError as exc:
        raise UserError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from None
    return data_dir


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def install_id(data_dir: Path) -> str:
    """This installation's random id, created on first use and then kept."""
    path = ensure_private_dir(data_dir) / INSTALL_ID_FILE
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    value = secrets.token_hex(16)
    write_private(path, value + "\n")
    return value


def load(data_dir: Path) -> Credential | None:
    """The stored credential, or None when this agent has not enrolled yet."""
    path = data_dir / CREDENTIAL_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied "
                        f"(run as the user that enrolled the agent)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is damaged ({exc}); re-enroll with "
                        f"`worklens-agent enroll --collector HOST:PORT --secret SECRET`") from None
    try:
        conn = Connection(**raw.get("collector", {}))
        return Credential(agent_id=raw["agent_id"], credential=raw["credential"],
                          install_id=raw.get("install_id", ""),
                          enrolled_ms=int(raw.get("enrolled_ms", 0)), collector=conn)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is damaged (missing {exc}); re-enroll with "
                        f"`worklens-agent enroll --collector HOST:PORT --secret SECRET`") from None


def save(data_dir: Path, cred: Credential) -> Path:
    path = ensure_private_dir(data_dir) / CREDENTIAL_FILE
    write_private(path, json.dumps(asdict(cred), indent=2) + "\n")
    log.info("credential for %s stored in %s", cred.agent_id, path)
    return path


def stamp(data_dir: Path) -> float:
    """Modification time of the credential file (0 when absent): lets a stopped
    shipper notice that someone re-enrolled."""
    try:
        return (data_dir / CREDENTIAL_FILE).stat().st_mtime
    except OSError:
        return 0.0
