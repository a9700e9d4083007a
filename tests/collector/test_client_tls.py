"""The operator client against a collector whose HTTP API is served over TLS:
`--ca-cert` pins the CA; a wrong or missing CA is one clear line, exit 1."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from certs import make_pki
from collector_harness import collector_command
from http_support import HttpCollector


@pytest.fixture(scope="module")
def tls_col(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    pki = make_pki(base / "pki")
    config = base / "collector.toml"
    config.write_text(f'[http]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n')
    col = HttpCollector(base / "data", config_path=config)
    col.start()
    assert col.http_url.startswith("https://"), col.output
    yield col, pki
    assert col.terminate() == 0, col.output


def run(url, token, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    return subprocess.run(collector_command("summary", "--url", url, "--token", token,
                                            "--from", "today", "--by", "app", "--format",
                                            "json", *extra),
                          capture_output=True, text=True, env=env, timeout=60)


def test_client_over_https_with_the_pinned_ca(tls_col):
    col, pki = tls_col
    token = col.token("viewer")
    done = run(col.http_url, token, "--ca-cert", str(pki.ca_cert))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == []


@pytest.mark.parametrize("which", ["none", "other"])
def test_unknown_or_wrong_ca_is_one_line(tls_col, which):
    col, pki = tls_col
    extra = [] if which == "none" else ["--ca-cert", str(pki.other_ca_cert)]
    done = run(col.http_url, col.token("viewer"), *extra)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"cannot reach the collector at {col.http_url}" in done.stderr
    assert "--ca-cert" in done.stderr
