"""``worklens-collector serve``: run the collector until SIGTERM/Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from worklens.collector.config import CollectorConfig, store_url
from worklens.collector.server import serve


def command(args: argparse.Namespace, cfg: CollectorConfig, data_dir: Path) -> int:
    return asyncio.run(serve(cfg, store_url(cfg, data_dir)))
