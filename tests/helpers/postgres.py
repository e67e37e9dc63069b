"""A real PostgreSQL for the tests and benchmarks: a throw-away cluster (Debian's `postgresql`
package binaries) in a temp folder, on a free port, its unix socket in that folder.

initdb refuses to run as root, so when the tests run as root the cluster is made and run by an
unprivileged user (``postgres`` when the package created it, else ``nobody``) via ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.mosquitto import free_port

SUPERUSER = "edgekit"


def pg_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then Debian's versioned folders)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    return None


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix and user that may run the server (root may not)."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run initdb")


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bindir: Path
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self, settings: dict[str, str] | None = None) -> None:
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.folder),
            "max_connections": "200",
            "shared_buffers": "128MB",
            **(settings or {}),
        }
        options = " ".join(f"-c {k}={v}" for k, v in opts.items())
        try:
            self._pg(
                "pg_ctl",
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.folder / "server.log"),
                "-w",
                "-t",
                "90",
                "start",
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"postgres did not start: {exc.stderr!r}\n{self.log()}") from exc

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
        )
    prefix, user = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    try:
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(folder, pw.pw_uid, pw.pw_gid)
        folder.chmod(0o700)
        server = PostgresServer(folder, free_port(), bindir, prefix)
        server.start(settings)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL cluster for the session (durability off: tests, not data)."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql)")
    with running_postgres({"fsync": "off", "full_page_writes": "off"}) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session's cluster, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
