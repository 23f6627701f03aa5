"""A throwaway PostgreSQL cluster on a free loopback port, for the tests and the SQL benchmark.

``with PostgresCluster.start() as pg: pg.uri`` runs ``initdb`` into a new temporary folder,
starts the server on 127.0.0.1 with its socket in that folder, creates a database and removes
everything on exit. The binaries are found on PATH or under ``/usr/lib/postgresql/*/bin``
(Debian's ``apt-get install postgresql``). PostgreSQL refuses to run as root, so as root the
cluster belongs to, and runs as, the ``postgres`` user (``nobody`` if there is none).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresCluster", "find_bin_dir"]

# Durability is of no use in a cluster that is deleted at the end; speed is.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
}


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``createdb``, or None if there is none."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0)
    )
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if all((folder / b).is_file() for b in ("initdb", "pg_ctl", "createdb")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    msg = "Running as root, and there is no 'postgres' or 'nobody' user to run PostgreSQL as."
    raise RuntimeError(msg)


class PostgresCluster:
    """A running throwaway cluster; use :meth:`start` as a context manager."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: pwd.struct_passwd | None):
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self._user = user
        self.database = "binomlab"
        self.role = "binomlab"

    @property
    def uri(self) -> str:
        """``postgresql://binomlab@127.0.0.1:<port>/binomlab`` (trust authentication)."""
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{self.database}"

    @classmethod
    def start(cls, bin_dir: Path | None = None, *, attempts: int = 3) -> PostgresCluster:
        """initdb, start and create the database; retried on another port if one is taken.

        Raises
        ------
        FileNotFoundError
            No PostgreSQL binaries.
        RuntimeError
            The server did not start; the message holds its log.
        """
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            msg = "No PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql."
            raise FileNotFoundError(msg)
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix="binomlab-pg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(bin_dir, root, 0, user)
        try:
            cluster._run(
                "initdb",
                "-D",
                str(root / "data"),
                "-U",
                cluster.role,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            for attempt in range(attempts):
                cluster.port = _free_port()
                if cluster._start_server():
                    break
                if attempt == attempts - 1:
                    log = (root / "server.log").read_text(errors="replace")
                    msg = f"PostgreSQL did not start on 127.0.0.1. Its log:\n{log}"
                    raise RuntimeError(msg)
            cluster._run(
                "createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", cluster.role,
                cluster.database,
            )  # fmt: skip
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / binary), *args],
            check=True,
            capture_output=True,
            text=True,
            user=self._user.pw_uid if self._user else None,
            group=self._user.pw_gid if self._user else None,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C"},
        )

    def _start_server(self) -> bool:
        options = " ".join(f"-c {k}={v}" for k, v in _SERVER_SETTINGS.items())
        options += f" -p {self.port} -k {self.root}"
        try:
            self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.root / "data"),
                "-l", str(self.root / "server.log"), "-o", options,
            )  # fmt: skip
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete the cluster's folder."""
        if (self.root / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.root / "data"))
            except subprocess.CalledProcessError:
                time.sleep(1)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
