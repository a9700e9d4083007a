"""Stand-ins for desktop services this machine cannot run (GNOME Shell with the
project's extension, KWin), on a real session bus: they export exactly the
interfaces the real ones do, so the agent's D-Bus side runs for real."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from jeepney import DBusAddress, new_signal

from agent.sensors._sessionbus import SessionBus

REPO = Path(__file__).resolve().parents[2]
GNOME_EXTENSION = REPO / "packaging/linux/gnome-shell-extension/focus@worklens.org"


def interface_of(xml_path: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """(interface name, {method: out signature}, {signal: signature}) from an
    introspection XML file."""
    iface = ET.parse(xml_path).getroot().find("interface")
    methods = {m.get("name"): "".join(a.get("type") for a in m.findall("arg")
                                      if a.get("direction") == "out")
               for m in iface.findall("method")}
    signals = {s.get("name"): "".join(a.get("type") for a in s.findall("arg"))
               for s in iface.findall("signal")}
    return iface.get("name"), methods, signals


class GnomeExtensionStandIn:
    """What ``focus@worklens.org`` exports inside GNOME Shell, driven by the test:
    ``focus(wm_class, title, pid)`` changes the focus and emits ``Changed``."""

    BUS_NAME = "org.worklens.FocusedWindow"
    OBJECT_PATH = "/org/worklens/FocusedWindow"

    def __init__(self, env: dict[str, str]) -> None:
        self.interface, self.methods, self.signals = interface_of(
            GNOME_EXTENSION / "org.worklens.FocusedWindow1.xml")
        self.current = ("", "", 0)
        self.calls = 0
        self._env = env
        self.bus: SessionBus | None = None
        self.start()

    def start(self) -> None:
        self.bus = SessionBus(self._env)
        self.bus.on(self._get, add_match=False, type="method_call", path=self.OBJECT_PATH,
                    interface=self.interface, member="Get")
        assert self.bus.request_name(self.BUS_NAME)

    def _get(self, msg) -> None:
        self.calls += 1
        self.bus.reply(msg, self.methods["Get"], self.current)

    def focus(self, wm_class: str, title: str, pid: int) -> None:
        self.current = (wm_class, title, pid)
        address = DBusAddress(self.OBJECT_PATH, interface=self.interface)
        self.bus._router.send(new_signal(address, "Changed", self.signals["Changed"],
                                         self.current))

    def stop(self) -> None:
        if self.bus is not None:
            self.bus.close()
            self.bus = None
