"""The focused window on GNOME (Wayland or X11), from the project's own GNOME
Shell extension over the session bus.

GNOME gives other programs no way to see the focused window on Wayland, so the
Linux packages install a small extension (``focus@worklens.org`` for GNOME Shell
45 and later, ``focus-legacy@worklens.org`` for 42 to 44; sources in
packaging/linux/gnome-shell-extension/) that exports it: name
``org.worklens.FocusedWindow``, object ``/org/worklens/FocusedWindow``,
interface ``org.worklens.FocusedWindow1`` with ``Get() -> (wm_class, title,
pid)`` and a ``Changed`` signal of the same three on every focus or title
change. The agent asks once, then follows the signal: nothing is sent while
nothing changes. When GNOME Shell restarts, the name's new owner is asked again.
The pid leads to the executable through psutil, as on X11.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from worklens.agent.sensors import _sessionbus
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.window._base import WindowInfo
from worklens.agent.sensors.window._pushed import PushedFocus

log = logging.getLogger(__name__)

BUS_NAME = "org.worklens.FocusedWindow"
OBJECT_PATH = "/org/worklens/FocusedWindow"
INTERFACE = "org.worklens.FocusedWindow1"
EXTENSION_UUID = "focus@worklens.org"            # GNOME Shell 45 and later
LEGACY_UUID = "focus-legacy@worklens.org"        # GNOME Shell 42 to 44
FIX = (f"the Worklens GNOME Shell extension is not running: install the worklens-agent "
       f"package (it ships the extension), run `gnome-extensions enable {EXTENSION_UUID}` "
       f"(GNOME 42-44: {LEGACY_UUID}) and log in again")


class GnomeWindow(PushedFocus):
    name = "gnome"

    def __init__(self, bus: _sessionbus.SessionBus) -> None:
        super().__init__()
        self._bus = bus
        self._resync = True
        self.detail = "the Worklens GNOME Shell extension over the session bus"
        bus.on(self._on_changed, type="signal", interface=INTERFACE, member="Changed",
               path=OBJECT_PATH)
        bus.on(self._on_owner, type="signal", sender=_sessionbus.BUS,
               interface=_sessionbus.BUS, member="NameOwnerChanged", args={0: BUS_NAME})

    def _on_changed(self, msg) -> None:
        wm_class, title, pid = msg.body
        self._set_focus(str(wm_class), str(title), int(pid))

    def _on_owner(self, msg) -> None:
        _name, _old, new = msg.body
        with self._lock:
            self._focus = None
            self._resync = bool(new)      # GNOME Shell (re)started: ask it again

    def active_window(self) -> WindowInfo | None:
        if self._bus is None:
            return None
        with self._lock:
            resync = self._resync
        if resync:
            self._ask()
        return self._focused_window()

    def _ask(self) -> None:
        try:
            wm_class, title, pid = self._bus.call(BUS_NAME, OBJECT_PATH, INTERFACE, "Get")
        except (OSError, _sessionbus.CallFailed) as exc:
            log.debug("GNOME Shell extension not answering: %s", exc)
            return
        with self._lock:
            self._focus = (str(wm_class), str(title), int(pid))
            self._resync = False

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None  # type: ignore[assignment]


def open(env: Mapping[str, str] | None = None, **_options) -> GnomeWindow:
    bus = _sessionbus.SessionBus(env)
    try:
        if not bus.name_has_owner(BUS_NAME):
            raise BackendUnavailable(FIX)
        backend = GnomeWindow(bus)
    except (OSError, _sessionbus.CallFailed) as exc:
        bus.close()
        raise BackendUnavailable(f"{FIX} ({exc})") from None
    except BackendUnavailable:
        bus.close()
        raise
    return backend
