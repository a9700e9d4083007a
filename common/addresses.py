"""HOST:PORT addresses, as both programs decide when plain text is allowed."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Only names that cannot leave this machine; other names are not resolved
    (a DNS answer is not a reason to send credentials in the clear)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
