"""The core Wayland interfaces, for the generated bindings here (the scanner
imports ``wl_seat``, ``wl_output``... from a sibling module of this name)."""

from pywayland.protocol.wayland import *  # noqa: F403
