"""Stand-ins for desktop services this machine cannot run (GNOME Shell with the
project's extension, KWin), on a real session bus: they export exactly the
interfaces the real ones do, so the agent's D-Bus side runs for real."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from jeepney import DBusAddress, HeaderFields, new_error, new_signal
from worklens.agent.sensors._sessionbus import SessionBus

REPO = Path(__file__).resolve().parents[2]
GNOME_EXTENSION = REPO / "packaging/linux/gnome-shell-extension/focus@worklens.org"
HARNESS = Path(__file__).resolve().parent / "kwin_harness.js"


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


class KWinStandIn:
    """``org.kde.KWin``'s scripting interface as Plasma ``plasma`` (5 or 6) exports it.
    ``run`` starts the loaded script for real, in node (tests/agent/kwin_harness.js
    stands in for KWin's scripting API), and every ``callDBus`` it makes is made
    on the session bus: the agent receives what KWin would send it.
    ``activate(...)`` / ``caption(...)`` are what a person does in Plasma."""

    SCRIPTING = "org.kde.kwin.Scripting"

    def __init__(self, env: dict[str, str], plasma: str = "6",
                 window: dict | None = None) -> None:
        self.plasma = plasma
        self.window = window
        self.scripts: dict[str, tuple[int, str]] = {}      # plugin -> (id, path)
        self.node: subprocess.Popen | None = None
        self.runs: list[str] = []
        self._next = 0
        self._env = env
        self.bus = SessionBus(env)
        self.bus.on(self._scripting, add_match=False, type="method_call", path="/Scripting",
                    interface=self.SCRIPTING)
        self.bus.on(self._script, add_match=False, type="method_call",
                    interface="org.kde.kwin.Script", member="run")
        assert self.bus.request_name("org.kde.KWin")

    def _scripting(self, msg) -> None:
        member = msg.header.fields[HeaderFields.member]
        if member == "loadScript":
            path, plugin = msg.body
            self._next += 1
            self.scripts[plugin] = (self._next, path)
            self.bus.reply(msg, "i", (self._next,))
        elif member == "isScriptLoaded":
            self.bus.reply(msg, "b", (msg.body[0] in self.scripts,))
        elif member == "unloadScript":
            found = self.scripts.pop(msg.body[0], None) is not None
            if found:
                self._stop_node()
            self.bus.reply(msg, "b", (found,))

    def _script(self, msg) -> None:
        path = msg.header.fields[HeaderFields.path]
        wanted = "/Scripting/Script{}" if self.plasma == "6" else "/{}"
        for number, script in self.scripts.values():
            if path == wanted.format(number):
                self.runs.append(path)
                self._start_node(script)
                self.bus.reply(msg)
                return
        self.bus._router.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownObject",
                                        "s", (f"No such object path '{path}'",)))

    def _start_node(self, script: str) -> None:
        self.node = subprocess.Popen(
            ["node", str(HARNESS), script, self.plasma, json.dumps(self.window)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._relay, args=(self.node,), daemon=True).start()

    def _relay(self, node: subprocess.Popen) -> None:
        """Each callDBus of the script, made on the bus as KWin would."""
        for line in node.stdout:
            service, path, interface, method, *args = json.loads(line)
            with contextlib.suppress(Exception):
                self.bus.call(service, path, interface, method, "s" * len(args),
                              tuple(str(a) for a in args))

    def activate(self, window: dict | None) -> None:
        self._command({"activate": window})

    def caption(self, title: str) -> None:
        self._command({"caption": title})

    def _command(self, command: dict) -> None:
        self.node.stdin.write(json.dumps(command) + "\n")
        self.node.stdin.flush()

    def _stop_node(self) -> None:
        node, self.node = self.node, None
        if node is not None and node.poll() is None:
            node.kill()
            node.wait(10)

    def stop(self) -> None:
        self._stop_node()
        self.bus.close()
