"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, a free port.

PostgreSQL 15's server binaries are on this machine and on CI (`initdb` and
`pg_ctl` on PATH, or under /usr/lib/postgresql/*/bin). initdb refuses to run
as root, so as root the cluster belongs to the `postgres` user (or `nobody`).
Password authentication over TCP, so tests can check that the password in
QUEUE_URL never reaches a log line or an answer.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "pg-secret-pass-4d1f"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under "
    "/usr/lib/postgresql/*/bin; install them with `apt-get install postgresql` "
    "(Debian) to run the PostgreSQL tests"
)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(user: pwd.struct_passwd | None, command: list[str]) -> list[str]:
    """`command`, run as `user` when there is one (initdb and postgres refuse root)."""
    if user is None:
        return command
    return [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        *command,
    ]


@dataclass
class Cluster:
    data: Path
    port: int
    pg_ctl: str
    user: pwd.struct_passwd | None
    # Tests skip fsync (nothing they check needs the server's own crash
    # safety); a benchmark of durable acknowledgements does not.
    durable: bool = False

    def _run(self, *args: str) -> None:
        command = _as_user(self.user, [self.pg_ctl, *args])
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            "-D",
            str(self.data),
            "-l",
            str(self.data.parent / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 "
            + (
                ""
                if self.durable
                else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            )
            + "-c max_connections=300",
            "start",
        )

    def stop(self) -> None:
        # "fast": a clean stop (commits are not flushed at once, see start()).
        self._run("-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on the cluster; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def start_cluster(*, durable: bool = False, parent: Path | None = None) -> Cluster:
    """A running cluster; `durable`: fsync and synchronous commits on (in
    `parent`, on a real disk, since /tmp may be tmpfs, where fsync is free)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    base = Path(tempfile.mkdtemp(prefix="caption-bridge-pg-", dir=parent))
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(base, user.pw_uid, user.pw_gid)
    base.chmod(0o755)
    password_file = base / "password"
    password_file.write_text(PASSWORD)
    if user is not None:
        os.chown(password_file, user.pw_uid, user.pw_gid)
    data = base / "data"
    command = [
        initdb,
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        f"--pwfile={password_file}",
        "--no-sync",
    ]
    subprocess.run(_as_user(user, command), check=True, capture_output=True, timeout=120)
    cluster = Cluster(data, _free_port(), pg_ctl, user, durable)
    cluster.start()
    return cluster


def remove_cluster(cluster: Cluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.data.parent, ignore_errors=True)
