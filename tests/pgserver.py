"""A throwaway, real PostgreSQL server for tests and benchmarks.

``PostgresServer`` runs ``initdb`` in a fresh temporary directory, listens on a
free TCP port on 127.0.0.1 (and on a unix socket inside that directory), and is
started and stopped with ``pg_ctl -w``. Nothing is shared with a system cluster.

PostgreSQL refuses to run as root, and CI runs as root: there the server runs
as the unprivileged ``postgres`` user that Debian's package creates
(``runuser -u postgres --``), and owns its directory. Otherwise it runs as the
current user.

Two roles connect over TCP:

- ``superuser`` (``postgres``), trusted without a password: ``url(db)``;
- ``password_user`` (``worklens_pw``), a plain role that must give its password
  (``scram-sha-256``): ``url_with_password(db)`` puts it in the URL,
  ``password_url(db)`` leaves it out for ``PGPASSWORD`` / ``passfile(...)``.

Databases made by ``create_database`` are owned by ``password_user``, so both
URLs can create tables in them.

Benchmarks tune the server with ``settings`` (any postgresql.conf key), e.g.
``PostgresServer(settings={"shared_buffers": "512MB", "synchronous_commit": "off"})``.
``tls=(cert, key)`` turns on TLS (clients choose it with ``?sslmode=...``).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
PASSWORD_USER = "worklens_pw"
RUN_AS_WHEN_ROOT = "postgres"
PROGRAMS = ("initdb", "pg_ctl", "postgres")
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")   # <version>/bin, off PATH
START_TIMEOUT_S = 60
PORT_ATTEMPTS = 3

# Suited to tests: room for several collectors' pools, nothing written that a
# throwaway cluster does not need. fsync stays on: what a test measures or
# checks is what a real server does.
DEFAULT_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
    "autovacuum_naptime": "10s",
}

_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL programs (or the user to run them as) are missing here."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message ends with the server log's tail."""


def unique_database_name() -> str:
    """A database name no other call in this process (or a recent run) gives."""
    return f"db_{next(_names)}_{secrets.token_hex(3)}"


def dbname_of(url: str) -> str:
    """The database a ``postgresql://...`` URL names (no query string here)."""
    return unquote(urlsplit(url).path.lstrip("/"))


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then the
    highest /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        directory = Path(on_path).resolve().parent
        if all((directory / p).exists() for p in PROGRAMS):
            return directory
    versions = sorted(DEBIAN_VERSIONS.glob("*/bin"),
                      key=lambda p: _version_key(p.parent.name), reverse=True)
    for directory in versions:
        if all((directory / p).exists() for p in PROGRAMS):
            return directory
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def missing_reason() -> str | None:
    """Why no server can be started here (a line for a skip), or None."""
    if find_bin_dir() is None:
        return ("PostgreSQL not installed: no initdb/pg_ctl/postgres on PATH or in "
                "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS_WHEN_ROOT)
        except KeyError:
            return (f"running as root needs the unprivileged {RUN_AS_WHEN_ROOT!r} user "
                    "to run PostgreSQL (Debian's postgresql package creates it)")
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _conf_value(value: Any) -> str:
    text = str(value).replace("'", "''")
    return f"'{text}'"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class PostgresServer:
    """One PostgreSQL cluster in its own temporary directory.

    ``start()`` the first time runs initdb; later calls restart the same data
    directory (after ``stop()`` or ``kill()``). ``cleanup()`` (also on exit of
    a ``with`` block and at interpreter exit) stops it and deletes everything.
    """

    def __init__(self, *, settings: Mapping[str, Any] | None = None,
                 base_dir: Path | str | None = None, port: int | None = None,
                 tls: tuple[Path | str, Path | str] | None = None) -> None:
        self.bin_dir = find_bin_dir()
        reason = missing_reason()
        if reason:
            raise PostgresUnavailable(reason)
        self.run_as: str | None = RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None
        self.settings = {**DEFAULT_SETTINGS, **{k: str(v) for k, v in (settings or {}).items()}}
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.superuser = SUPERUSER
        self.password_user = PASSWORD_USER
        self.password = secrets.token_hex(12)
        self.directory = Path(tempfile.mkdtemp(prefix="worklens-pg-", dir=base_dir))
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "sock"
        self.log_path = self.directory / "postgresql.log"
        self.tls = tls
        self._initialised = False
        self._cleaned = False
        atexit.register(self.cleanup)

    # ----- addresses -------------------------------------------------------------------
    def url(self, dbname: str = "postgres", *, user: str | None = None,
            password: str | None = None) -> str:
        """``postgresql://USER[:PASSWORD]@127.0.0.1:PORT/DB``; the superuser by default."""
        who = quote(user or self.superuser, safe="")
        if password is not None:
            who += ":" + quote(password, safe="")
        return f"postgresql://{who}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def url_with_password(self, dbname: str = "postgres") -> str:
        """The password role, its password in the URL."""
        return self.url(dbname, user=self.password_user, password=self.password)

    def password_url(self, dbname: str = "postgres") -> str:
        """The password role without its password: it must come from
        ``PGPASSWORD`` or a passfile (``PGPASSFILE`` / ``~/.pgpass``)."""
        return self.url(dbname, user=self.password_user)

    def passfile(self, path: Path | str) -> Path:
        """Write a libpq password file for the password role (mode 0600, as
        libpq requires) and return its path, for ``PGPASSFILE``."""
        path = Path(path)
        line = f"{self.host}:{self.port}:*:{self.password_user}:{self.password}\n"
        path.write_text(line)
        path.chmod(0o600)
        return path

    # ----- lifecycle -------------------------------------------------------------------
    def start(self) -> PostgresServer:
        """Start (initdb the first time); return once it accepts connections."""
        if self._cleaned:
            raise PostgresStartError("this server was cleaned up; make a new one")
        first = not self._initialised
        if first:
            self._initdb()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._write_settings()
            result = self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S),
                                  "-l", str(self.log_path))
            if result.returncode == 0:
                break
            if self._fixed_port or attempt == PORT_ATTEMPTS or not self._port_taken():
                raise self._start_error("pg_ctl start", result)
            log.info("port %d was taken meanwhile; trying another", self.port)
            self.port = free_port()
        if first:
            self.execute(f"CREATE ROLE {self.password_user} LOGIN PASSWORD "
                         f"{_conf_value(self.password)}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Shut down cleanly (``pg_ctl stop -m MODE``: smart, fast or immediate)."""
        if not self.is_running():
            return
        result = self._pg_ctl("stop", "-w", "-t", str(START_TIMEOUT_S), "-m", mode)
        if result.returncode != 0:
            raise self._start_error("pg_ctl stop", result)

    def restart(self) -> PostgresServer:
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Crash the server: SIGKILL the postmaster and every backend, as the
        OOM killer or a power cut would; wait until all are gone. ``start()``
        then runs crash recovery."""
        import psutil

        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            postmaster = psutil.Process(pid)
            victims = [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)

    def cleanup(self) -> None:
        """Stop at once (no checkpoint: the files are deleted) and delete everything."""
        if self._cleaned:
            return
        self._cleaned = True
        atexit.unregister(self.cleanup)
        try:
            if self.is_running():
                self.stop("immediate")
        except Exception:
            log.warning("could not stop PostgreSQL in %s; killing it", self.directory)
            self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid, if that process is alive."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    # ----- SQL -------------------------------------------------------------------------
    def execute(self, sql: str, params: Iterable[Any] | None = None, *,
                dbname: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str | None = None, *, owner: str | None = None,
                        template: str = "template1") -> str:
        """A new empty database (copied from ``template``), owned by the
        password role unless ``owner`` says otherwise; returns its superuser URL."""
        name = name or unique_database_name()
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner or self.password_user}" '
                     f'TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it, closing whatever connections are still open to it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ----- internals -------------------------------------------------------------------
    def _command(self, program: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        return subprocess.run(self._command(program, *args), cwd=self.directory, env=env,
                              capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)

    def _pg_ctl(self, action: str, *args: str) -> subprocess.CompletedProcess:
        return self._run("pg_ctl", action, "-D", str(self.data_dir), *args)

    def _initdb(self) -> None:
        self._hand_over(self.directory)
        self._check_reachable()
        result = self._run("initdb", "-D", str(self.data_dir), "-U", self.superuser,
                           "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        if result.returncode != 0:
            raise self._start_error("initdb", result)
        self.socket_dir.mkdir()
        self._hand_over(self.socket_dir)
        (self.data_dir / "pg_hba.conf").write_text(self._hba())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'worklens.conf'\n")
        if self.tls:
            self._install_tls(*self.tls)
        self._initialised = True

    def _install_tls(self, cert: Path | str, key: Path | str) -> None:
        """Copy the certificate and key into the data directory: the server
        insists on owning its key, unreadable by anyone else."""
        for source, name in ((cert, "server.crt"), (key, "server.key")):
            target = self.data_dir / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            self._hand_over(target)
        self.settings.update(ssl="on", ssl_cert_file="server.crt", ssl_key_file="server.key")

    def _hba(self) -> str:
        """Trust for the superuser and socket; the password role must give its
        password (scram-sha-256), so tests can check every way of passing it."""
        rules = ["local all all trust"]
        for net in ("127.0.0.1/32", "::1/128"):
            rules.append(f"host all {self.password_user} {net} scram-sha-256")
            rules.append(f"host all all {net} trust")
        return "\n".join(rules) + "\n"

    def _write_settings(self) -> None:
        settings = {**self.settings, "listen_addresses": self.host, "port": str(self.port),
                    "unix_socket_directories": str(self.socket_dir)}
        path = self.data_dir / "worklens.conf"
        path.write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items()))
        self._hand_over(path)

    def _hand_over(self, path: Path) -> None:
        """As root, give ``path`` to the user the server runs as."""
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def _check_reachable(self) -> None:
        """That user must get through every parent directory to its own."""
        if not self.run_as:
            return
        probe = subprocess.run(["runuser", "-u", self.run_as, "--", "test", "-w",
                                str(self.directory)], capture_output=True)
        if probe.returncode != 0:
            raise PostgresStartError(
                f"user {self.run_as!r} cannot reach {self.directory}: a parent directory "
                "is closed to it; pass base_dir= somewhere it can enter (e.g. /tmp)")

    def _port_taken(self) -> bool:
        text = self.log_tail(10)
        return "could not bind" in text or "Address already in use" in text

    def _start_error(self, what: str, result: subprocess.CompletedProcess) -> PostgresStartError:
        output = (result.stdout + result.stderr).strip()
        return PostgresStartError(f"{what} failed (exit {result.returncode}) in {self.directory}:\n"
                                  f"{output}\n--- server log ---\n{self.log_tail()}")
