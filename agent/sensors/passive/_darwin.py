"""Call on macOS: the default input device is running somewhere.

CoreAudio's documented ``kAudioDevicePropertyDeviceIsRunningSomewhere`` on the
default input device (``kAudioHardwarePropertyDefaultInputDevice`` of the
system object) is non-zero while any process records from it: the same fact
the menu bar's orange dot shows. Read with ``AudioObjectGetPropertyData``
through ctypes; only the yes/no is kept.

Written against the documented API and unit-tested on a fake; NOT verified on
a real Mac.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from worklens.agent.sensors.passive._base import CALL, Signal
from worklens.agent.sensors.window._base import WindowInfo


def _fourcc(code: str) -> int:
    return int.from_bytes(code.encode("ascii"), "big")


SYSTEM_OBJECT = 1
DEFAULT_INPUT_DEVICE = _fourcc("dIn ")
IS_RUNNING_SOMEWHERE = _fourcc("gone")
SCOPE_GLOBAL = _fourcc("glob")
ELEMENT_MAIN = 0

# query(object_id, selector) -> the UInt32 property value, or None on an error
Query = Callable[[int, int], int | None]


class _Address(ctypes.Structure):
    _fields_ = [("mSelector", ctypes.c_uint32), ("mScope", ctypes.c_uint32),
                ("mElement", ctypes.c_uint32)]


def _coreaudio_query() -> Query:
    path = ctypes.util.find_library("CoreAudio")
    if path is None:
        raise ImportError("CoreAudio framework not found")
    lib = ctypes.cdll.LoadLibrary(path)
    get = lib.AudioObjectGetPropertyData
    get.restype = ctypes.c_int32

    def query(object_id: int, selector: int) -> int | None:
        address = _Address(selector, SCOPE_GLOBAL, ELEMENT_MAIN)
        value = ctypes.c_uint32(0)
        size = ctypes.c_uint32(ctypes.sizeof(value))
        status = get(ctypes.c_uint32(object_id), ctypes.byref(address), ctypes.c_uint32(0),
                     None, ctypes.byref(size), ctypes.byref(value))
        return None if status != 0 else value.value
    return query


def microphone_running(query: Query) -> bool:
    device = query(SYSTEM_OBJECT, DEFAULT_INPUT_DEVICE)
    if not device:
        return False
    return bool(query(device, IS_RUNNING_SOMEWHERE))


class CoreAudioMicrophone(Signal):
    reason = CALL
    backend = "coreaudio"
    detail = "default input device running (not verified on a real Mac)"

    def __init__(self, query: Query | None = None) -> None:
        self._query = query
        if query is None:
            try:
                self._query = _coreaudio_query()
            except (ImportError, OSError, AttributeError) as exc:
                self.available = False
                self.detail = f"CoreAudio unavailable: {exc}"

    def engaged(self, window: WindowInfo | None) -> bool:
        return self._query is not None and microphone_running(self._query)
