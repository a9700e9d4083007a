"""Facts about this machine that travel with every batch and enrollment: the
collector shows them next to the agent id, and ``host.user`` is the person
the spans belong to (the "user" summary dimension)."""

from __future__ import annotations

import getpass
import platform
import socket
import sys
from functools import lru_cache

from worklens import __version__
from worklens.v1 import agent_pb2


def _os_name() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    return sys.platform


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no passwd entry (containers) and no USER variable
        return ""


@lru_cache(maxsize=1)
def host_info() -> agent_pb2.HostInfo:
    """Computed once per process: none of this changes while the agent runs."""
    return agent_pb2.HostInfo(hostname=socket.gethostname(), os=_os_name(),
                              os_version=platform.release(), user=_user(),
                              agent_version=__version__)
