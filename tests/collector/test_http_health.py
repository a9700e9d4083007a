"""/healthz tells a load balancer the truth: 200 while the store answers, 503
(JSON, one line) once it does not. The app runs in real uvicorn on a free port
over a real store that is then closed under it."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn
from collector_harness import collector_config
from worklens.collector.http import create_app
from worklens.collector.store import open_store


@pytest.fixture
def served_store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'worklens.db'}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store, collector_config()),
                                           log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield store, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    sock.close()
    store.close()


def test_healthz_turns_503_when_the_store_is_gone(served_store):
    store, url = served_store
    ok = requests.get(f"{url}/healthz", timeout=30)
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    store.close()
    down = requests.get(f"{url}/healthz", timeout=30)
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable" and "\n" not in body["error"]
    metrics = requests.get(f"{url}/metrics", timeout=30)
    assert metrics.status_code == 200   # a scrape still works, without the size gauge update
