"""Loading the pyobjc modules the macOS backends use, on first use only, so
Linux and Windows never import them; tests inject fakes instead."""

from __future__ import annotations

from typing import Any

from worklens.agent.sensors._select import BackendUnavailable


def appkit() -> Any:
    try:
        import AppKit
    except ImportError:
        raise BackendUnavailable("pyobjc is not installed: pip install "
                                 "pyobjc-framework-Cocoa pyobjc-framework-Quartz") from None
    return AppKit


def quartz() -> Any:
    try:
        import Quartz
    except ImportError:
        raise BackendUnavailable("pyobjc Quartz is not installed: pip install "
                                 "pyobjc-framework-Quartz") from None
    return Quartz
