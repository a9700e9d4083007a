"""The collector's typed configuration (SPEC "Configuration")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worklens.common import settings as _config
from worklens.common.settings import LogSection, duration, setting


def _host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep) and bool(host) and port.isdigit() and 0 <= int(port) <= 65535


def _timezone(name: str) -> bool:
    if not name:
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


HOST_PORT = "HOST:PORT, e.g. 127.0.0.1:50051"


@dataclass
class GrpcSection:
    listen: str = setting("127.0.0.1:50051", check=_host_port, expect=HOST_PORT)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None     # require client certificates signed by this CA (mTLS)
    insecure: bool = False            # allow plain text on a non-loopback address
    max_message_mb: float = setting(16.0, check=lambda n: 0 < n <= 256,
                                    expect="a size in MB from 0 to 256")
    max_events_per_batch: int = setting(50_000, check=lambda n: n > 0,
                                        expect="a positive whole number")
    max_future_skew: float = duration(300.0)
    # failed enrollments one address may make in a burst (then one per 6 s); 0 = no limit
    enroll_failures_burst: int = setting(10, check=lambda n: n >= 0,
                                         expect="a whole number >= 0 (0 = no limit)")


@dataclass
class HttpSection:
    listen: str = setting("127.0.0.1:8080", check=_host_port, expect=HOST_PORT)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False


@dataclass
class StoreSection:
    url: str = ""                     # default sqlite:///<data dir>/worklens.db


@dataclass
class RetentionSection:
    keep: float = duration(400 * 86400.0, minimum=86400.0)


@dataclass
class SummarySection:
    timezone: str = setting("", check=_timezone, expect="an IANA time zone such as Europe/Paris")
    idle_threshold: float = duration(300.0, minimum=1.0)


@dataclass
class CollectorConfig:
    grpc: GrpcSection = field(default_factory=GrpcSection)
    http: HttpSection = field(default_factory=HttpSection)
    store: StoreSection = field(default_factory=StoreSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    summary: SummarySection = field(default_factory=SummarySection)
    log: LogSection = field(default_factory=LogSection)


def load(path: Path | None = None, overrides: dict | None = None) -> CollectorConfig:
    return _config.load(CollectorConfig, path, overrides=overrides)


def store_url(cfg: CollectorConfig, data_dir: Path) -> str:
    """The configured store, else SQLite in ``data_dir``. The path is made absolute
    first: ``sqlite:///`` + a relative path would name a directory under ``/``."""
    return cfg.store.url or f"sqlite:///{(data_dir / 'worklens.db').absolute()}"
