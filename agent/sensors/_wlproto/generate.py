"""Regenerate the Python bindings next to this file from ``xml/*.xml`` with
pywayland's own scanner (what pywayland documents for protocols it does not
ship). Run: ``python -m worklens.agent.sensors._wlproto.generate [OUTPUT_DIR]``.

The scanner makes one module per protocol and imports the core interfaces it
refers to (``wl_seat``, ``wl_output``...) from a sibling ``wayland`` module;
``wayland.py`` here re-exports pywayland's core bindings for that.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
XML_DIR = HERE / "xml"
CORE = "wayland"      # the module the scanner expects core interfaces in


def protocols() -> list:
    from pywayland.scanner.protocol import Protocol

    return [Protocol.parse_file(str(path)) for path in sorted(XML_DIR.glob("*.xml"))]


def generate(output_dir: Path = HERE) -> list[Path]:
    """Write one module per protocol into ``output_dir``; the written paths."""
    import pywayland.protocol.wayland as core

    parsed = protocols()
    imports = {cls.name: CORE for cls in vars(core).values()
               if isinstance(getattr(cls, "name", None), str) and cls.name.startswith("wl_")}
    for protocol in parsed:
        imports.update({iface.name: protocol.name for iface in protocol.interface})
    written = []
    for protocol in parsed:
        protocol.output(str(output_dir), imports)
        written.append(output_dir / f"{protocol.name.replace('-', '_')}.py")
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
