"""The committed Wayland bindings are what pywayland's scanner makes of the
shipped protocol XMLs (as tests/shared/test_protos_fresh.py does for protobuf)."""

from __future__ import annotations

from pathlib import Path

from worklens.agent.sensors._wlproto import generate

PACKAGE = Path(generate.__file__).parent


def test_bindings_are_fresh_against_the_xml(tmp_path):
    written = generate.generate(tmp_path)
    assert {p.name for p in written} == {
        "ext_idle_notify_v1.py", "idle.py", "wlr_foreign_toplevel_management_unstable_v1.py"}
    for path in written:
        assert (PACKAGE / path.name).read_text() == path.read_text(), \
            f"{path.name} is stale: run python -m worklens.agent.sensors._wlproto.generate"


def test_each_protocol_ships_with_its_licence():
    xml = PACKAGE / "xml"
    for name in ("wlr-foreign-toplevel-management-unstable-v1.xml", "ext-idle-notify-v1.xml"):
        assert "Permission" in (xml / name).read_text()     # MIT/HPND text in the file
    assert "LGPL-2.1-or-later" in (xml / "kde-idle.xml").read_text()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (xml / "LICENSE.LGPL-2.1").read_text()
