"""The focused window on KDE Plasma 5 and 6 (Wayland or X11), from a KWin script.

KWin shows no focused window to other programs on Wayland, but it runs
scripts: at start the agent owns its own session-bus name
(``org.worklens.Agent``) and loads ``kwin_focus.js`` through
``org.kde.KWin`` ``/Scripting`` ``loadScript``, then starts it with ``run`` on
the script's object (Plasma 6: ``/Scripting/Script<N>``; Plasma 5: ``/<N>``).
The script calls ``org.worklens.KWin1.Focus(class, caption, pid)`` on
``/org/worklens/KWin`` at every focus or title change, so nothing is sent while
nothing changes. When KWin restarts the script is loaded again; when the
agent stops it is unloaded. Idle on Plasma comes from the ``wayland`` idle
backend (ext-idle-notify on Plasma >= 5.27, else org_kde_kwin_idle).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from worklens.agent.sensors import _sessionbus
from worklens.agent.sensors._select import BackendUnavailable
from worklens.agent.sensors.window._base import WindowInfo
from worklens.agent.sensors.window._pushed import PushedFocus

log = logging.getLogger(__name__)

KWIN = "org.kde.KWin"
SCRIPTING_PATH = "/Scripting"
SCRIPTING = "org.kde.kwin.Scripting"
SCRIPT = "org.kde.kwin.Script"
PLUGIN = "worklens-focus"
AGENT_NAME = "org.worklens.Agent"
CALLBACK_PATH = "/org/worklens/KWin"
CALLBACK_INTERFACE = "org.worklens.KWin1"
# where each Plasma generation puts a loaded script's object, newest first
SCRIPT_PATHS = (("6", "/Scripting/Script{}"), ("5", "/{}"))


def script_path() -> Path:
    return Path(str(resources.files("worklens.agent.sensors.window").joinpath("kwin_focus.js")))


class KdeWindow(PushedFocus):
    name = "kde"

    def __init__(self, bus: _sessionbus.SessionBus) -> None:
        super().__init__()
        self._bus = bus
        self._reload = False
        self.plasma = ""
        self.detail = "KWin script"
        bus.on(self._on_focus, add_match=False, type="method_call", path=CALLBACK_PATH,
               interface=CALLBACK_INTERFACE, member="Focus")
        bus.on(self._on_kwin_owner, type="signal", sender=_sessionbus.BUS,
               interface=_sessionbus.BUS, member="NameOwnerChanged", args={0: KWIN})

    def load(self) -> None:
        """Load and start the script (replacing a stale one of an earlier agent)."""
        bus = self._bus
        if bus.call(KWIN, SCRIPTING_PATH, SCRIPTING, "isScriptLoaded", "s", (PLUGIN,))[0]:
            bus.call(KWIN, SCRIPTING_PATH, SCRIPTING, "unloadScript", "s", (PLUGIN,))
        number = bus.call(KWIN, SCRIPTING_PATH, SCRIPTING, "loadScript", "ss",
                          (str(script_path()), PLUGIN))[0]
        errors = []
        for plasma, pattern in SCRIPT_PATHS:
            try:
                bus.call(KWIN, pattern.format(number), SCRIPT, "run")
            except _sessionbus.CallFailed as exc:
                errors.append(f"Plasma {plasma}: {exc}")
                continue
            self.plasma = plasma
            self.detail = (f"KWin script {PLUGIN} (Plasma {plasma} paths) calling back "
                           f"{AGENT_NAME} on the session bus")
            return
        raise BackendUnavailable("KWin loaded the script but would not run it: "
                                 + "; ".join(errors))

    def _on_focus(self, msg) -> None:
        klass, caption, pid = (str(v) for v in [*msg.body, "", "", "0"][:3])
        self._set_focus(klass, caption, int(pid) if pid.isdigit() else 0)
        bus = self._bus
        if bus is not None:         # a call that arrived while the agent stops
            bus.reply(msg)

    def _on_kwin_owner(self, msg) -> None:
        _name, _old, new = msg.body
        with self._lock:
            self._focus = None
            self._reload = bool(new)       # KWin restarted: its scripts are gone

    def active_window(self) -> WindowInfo | None:
        if self._bus is None:
            return None
        with self._lock:
            reload, self._reload = self._reload, False
        if reload:
            try:
                self.load()
            except (OSError, _sessionbus.CallFailed, BackendUnavailable) as exc:
                log.warning("could not load the KWin script again: %s", exc)
        return self._focused_window()

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        try:
            bus.call(KWIN, SCRIPTING_PATH, SCRIPTING, "unloadScript", "s", (PLUGIN,),
                     timeout=1.0)
        except (OSError, _sessionbus.CallFailed) as exc:
            log.debug("unloading the KWin script: %s", exc)
        bus.close()


def open(env: Mapping[str, str] | None = None, **_options) -> KdeWindow:
    bus = _sessionbus.SessionBus(env)
    try:
        if not bus.name_has_owner(KWIN):
            raise BackendUnavailable(f"no {KWIN} on the session bus (not KDE Plasma)")
        if not bus.request_name(AGENT_NAME):
            raise BackendUnavailable(f"another Worklens agent of this user owns {AGENT_NAME}")
        backend = KdeWindow(bus)
        backend.load()
    except (OSError, _sessionbus.CallFailed) as exc:
        bus.close()
        raise BackendUnavailable(f"KWin scripting failed: {exc}") from None
    except BackendUnavailable:
        bus.close()
        raise
    return backend
