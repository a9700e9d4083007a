"""The agent's typed configuration (SPEC "Configuration"): TOML file, then
``WORKLENS_<SECTION>_<KEY>`` environment variables, then flags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from worklens.common import settings as _config
from worklens.common.settings import LogSection, duration, setting


def collector_addresses(text: str) -> list[str]:
    """``"a.example:50051, b.example:50051"`` -> ``["a.example:50051", "b.example:50051"]``:
    the order is the order of preference. Raises ValueError naming the bad entry."""
    entries = [part.strip() for part in text.split(",")]
    if entries == [""]:
        return []
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if not sep or not _HOST.fullmatch(host) or not port.isdigit() \
                or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not HOST:PORT" if entry else "an empty entry")
    return entries


# a DNS name or IPv4 address, or an IPv6 address in brackets ([::1])
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


def _valid_addresses(text: str) -> bool:
    try:
        collector_addresses(text)
    except ValueError:
        return False
    return True


def _valid_regexes(patterns: list[str]) -> bool:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error:
            return False
    return True


@dataclass
class CollectorSection:
    # HOST:PORT of the collector's gRPC port, or several comma-separated, the
    # preferred first (the shipper moves along the list when one is down)
    address: str = setting("", check=_valid_addresses,
                           expect="HOST:PORT, or several separated by commas "
                                  "(e.g. a.example:50051,b.example:50051)")
    ca_cert: Path | None = None       # pinned CA for server-authenticated TLS
    client_cert: Path | None = None   # mutual TLS
    client_key: Path | None = None
    insecure: bool = False            # allow plain text to a non-loopback address
    enroll_secret: str = ""           # lets `run` enroll itself on first start


@dataclass
class SamplingSection:
    window_interval: float = duration(1.0, minimum=0.05)
    idle_threshold: float = duration(300.0, minimum=1.0)
    process_interval: float = duration(60.0, minimum=1.0)
    top_processes: int = setting(10, check=lambda n: 0 <= n <= 1000,
                                 expect="a whole number from 0 to 1000")
    window_backend: str = ""          # force a window sensor backend (x11, win32, darwin, none)
    idle_backend: str = ""            # force an idle sensor backend


@dataclass
class SensorsSection:
    """Which sensor backends to use, overriding the automatic order (docs/desktops.md):
    one name or a comma-separated list tried in order; empty = automatic."""

    window: str = ""                  # e.g. "wlroots", "gnome", "kde", "x11", "none"
    idle: str = ""                    # e.g. "wayland", "gnome", "x11", "logind", "none"
    input: str = ""                   # "x11", "pynput", "none"


@dataclass
class DeliverySection:
    flush_interval: float = duration(30.0, minimum=0.1)
    spool_max_mb: float = setting(100.0, check=lambda n: n > 0, expect="a positive number of MB")
    spool_max_age: float = duration(30 * 86400.0, minimum=60.0)


@dataclass
class PrivacySection:
    capture_titles: bool = True
    redact_titles: list[str] = setting(factory=list, check=_valid_regexes,
                                       expect="a list of valid regular expressions")
    exclude_apps: list[str] = field(default_factory=list)
    schedule: str = ""                # e.g. "Mon-Fri 08:00-18:00"; empty = always


@dataclass
class AgentConfig:
    collector: CollectorSection = field(default_factory=CollectorSection)
    sampling: SamplingSection = field(default_factory=SamplingSection)
    sensors: SensorsSection = field(default_factory=SensorsSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    privacy: PrivacySection = field(default_factory=PrivacySection)
    log: LogSection = field(default_factory=LogSection)


def load(path: Path | None = None, overrides: dict | None = None) -> AgentConfig:
    cfg = _config.load(AgentConfig, path, overrides=overrides)
    check(cfg)
    return cfg


def check(cfg: AgentConfig) -> None:
    """What a key's type alone cannot check: the schedule's grammar, which lives
    with the schedule (agent.privacy). Every command loads through here, so
    ``status`` never accepts a configuration that ``run`` refuses."""
    from worklens.agent.privacy import load_schedule

    load_schedule(cfg.privacy.schedule)
