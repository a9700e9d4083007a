"""The throwaway PostgreSQL of tests/pgserver.py: a real server that the store,
fault tests and benchmarks rely on, so what they assume is checked here."""

from __future__ import annotations

import os

import pgserver
import psutil
import psycopg
import pytest
from certs import make_pki
from psycopg_pool import ConnectionPool


def count(url: str, sql: str = "SELECT count(*) FROM kept", **kwargs) -> int:
    with psycopg.connect(url, connect_timeout=5, **kwargs) as conn:
        return conn.execute(sql).fetchone()[0]


def test_postgres_url_is_a_fresh_empty_database_of_its_own(postgres_server, postgres_url):
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone()[0] == 0
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (1), (2)")
    other = postgres_server.create_database()
    assert other != postgres_url
    with pytest.raises(psycopg.errors.UndefinedTable):
        count(other)
    assert count(postgres_url) == 2


def test_url_reaches_this_server_as_the_superuser(postgres_server):
    url = postgres_server.url("postgres")
    assert url == f"postgresql://postgres@127.0.0.1:{postgres_server.port}/postgres"
    with psycopg.connect(url) as conn:
        user, superuser = conn.execute(
            "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user").fetchone()
        assert (user, superuser) == ("postgres", True)
        assert conn.execute("SHOW max_connections").fetchone()[0] == "200"


def test_server_runs_unprivileged_even_when_tests_run_as_root(postgres_server):
    owner = psutil.Process(postgres_server.postmaster_pid()).username()
    if os.geteuid() == 0:
        assert owner == "postgres"
    else:
        assert owner == psutil.Process().username()


def test_execute_returns_rows(postgres_server):
    assert postgres_server.execute("SELECT %s::int + 1", [41]) == [(42,)]
    assert postgres_server.execute("SET search_path = public") == []


def test_password_in_the_url_is_required_and_checked(postgres_server, postgres_url,
                                                     monkeypatch, tmp_path):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    name = pgserver.dbname_of(postgres_url)
    assert count(postgres_server.url_with_password(name), "SELECT 1") == 1
    with pytest.raises(psycopg.OperationalError, match="password"):
        count(postgres_server.password_url(name), "SELECT 1")
    wrong = postgres_server.url(name, user=postgres_server.password_user, password="wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        count(wrong, "SELECT 1")


def test_password_from_pgpassword(postgres_server, postgres_url, monkeypatch):
    name = pgserver.dbname_of(postgres_url)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    assert count(postgres_server.password_url(name), "SELECT 1") == 1


def test_password_from_pgpassfile(postgres_server, postgres_url, monkeypatch, tmp_path):
    name = pgserver.dbname_of(postgres_url)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(postgres_server.passfile(tmp_path / "pgpass")))
    assert (tmp_path / "pgpass").stat().st_mode & 0o777 == 0o600
    assert count(postgres_server.password_url(name), "SELECT 1") == 1


def test_password_role_owns_the_test_databases(postgres_server, postgres_url):
    """A store connecting with the password role can create its tables."""
    name = pgserver.dbname_of(postgres_url)
    with psycopg.connect(postgres_server.url_with_password(name)) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")
        assert conn.execute("SELECT usesuper FROM pg_user WHERE usename = current_user"
                            ).fetchone()[0] is False
    assert count(postgres_url) == 1


def test_psycopg_pool_connects(postgres_url):
    with ConnectionPool(postgres_url, min_size=2, max_size=4, open=True) as pool:
        pool.wait(timeout=10)
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unix_socket_in_its_own_directory(postgres_server, postgres_url):
    name = pgserver.dbname_of(postgres_url)
    with psycopg.connect(host=str(postgres_server.socket_dir), port=postgres_server.port,
                         user="postgres", dbname=name) as conn:
        assert conn.info.host == str(postgres_server.socket_dir)


def test_stop_then_start_keeps_the_data(postgres_server_factory):
    server = postgres_server_factory(settings={"synchronous_commit": "off",
                                               "shared_buffers": "32MB"})
    url = server.create_database("keep")
    assert server.execute("SHOW synchronous_commit") == [("off",)]
    assert server.execute("SHOW shared_buffers") == [("32MB",)]
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept AS SELECT generate_series(1, 100) AS n")
    server.stop()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        count(url)
    server.start()
    assert count(url) == 100


def test_kill_then_start_recovers_what_was_committed(postgres_server_factory):
    server = postgres_server_factory()
    url = server.create_database("crash")
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE kept (n int)")
    conn.execute("INSERT INTO kept SELECT generate_series(1, 500)")
    processes = [psutil.Process(server.postmaster_pid()),
                 *psutil.Process(server.postmaster_pid()).children(recursive=True)]
    server.kill()
    assert not server.is_running()
    assert not [p for p in processes if p.is_running()]
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    server.start()
    assert count(url) == 500
    assert "database system was interrupted" in server.log_tail(100)


def test_tls_when_asked_for(postgres_server_factory, tmp_path):
    pki = make_pki(tmp_path)
    server = postgres_server_factory(tls=(pki.server_cert, pki.server_key))
    verified = server.url() + f"?sslmode=verify-full&sslrootcert={pki.ca_cert}"
    with psycopg.connect(verified) as conn:
        assert conn.pgconn.ssl_in_use
    wrong_ca = server.url() + f"?sslmode=verify-full&sslrootcert={pki.other_ca_cert}"
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        count(wrong_ca, "SELECT 1")


@pytest.mark.system
def test_start_failure_shows_the_server_log():
    if reason := pgserver.missing_reason():
        pytest.skip(reason)
    server = pgserver.PostgresServer(settings={"shared_buffers": "lots"})
    try:
        with pytest.raises(pgserver.PostgresStartError,
                           match=r"(?s)server log.*invalid value for parameter"):
            server.start()
    finally:
        server.cleanup()
    assert not server.directory.exists()


def test_missing_programs_give_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pgserver, "DEBIAN_VERSIONS", tmp_path)
    assert pgserver.find_bin_dir() is None
    assert "apt-get install postgresql" in pgserver.missing_reason()
    with pytest.raises(pgserver.PostgresUnavailable, match="apt-get install postgresql"):
        pgserver.PostgresServer()


def test_highest_installed_version_wins(monkeypatch, tmp_path):
    for version in ("9.6", "15", "13"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for program in pgserver.PROGRAMS:
            (bin_dir / program).touch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(pgserver, "DEBIAN_VERSIONS", tmp_path)
    assert pgserver.find_bin_dir() == tmp_path / "15" / "bin"
