"""From a window's process id to the application's name and executable, via
psutil. Shared by the window backends that only learn a pid from the OS."""

from __future__ import annotations

import psutil


def process_identity(pid: int) -> tuple[str, str]:
    """``(name, exe)`` of ``pid``; blanks for what cannot be read.

    A process that exits mid-read or belongs to another user is normal on a
    desktop, so this never raises.
    """
    if pid <= 0:
        return "", ""
    try:
        proc = psutil.Process(pid)
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "", ""
    try:
        exe = proc.exe()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        exe = ""
    return name, exe
