"""A throwaway PostgreSQL 15 server for tests and scripts: Debian's binaries, a temp data folder owned by the
`postgres` user, 127.0.0.1 only, a free port, trust authentication (nothing else can reach it), stopped at the end.

`PgServer.start()` raises `PgUnavailable` (the reason) where the binaries, the `postgres` user or a way to run as it
are absent; the tests skip with that reason.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("COACH_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PgUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.data = root / "data"
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> "PgServer":
        if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
            raise PgUnavailable(f"PostgreSQL 15 binaries not found in {PG_BIN} (Debian: apt-get install postgresql-15)")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable("no `postgres` user to run the test server as") from None
        runner = shutil.which("runuser")
        if os.geteuid() == user.pw_uid:
            prefix: list[str] = []
        elif os.geteuid() == 0 and runner:
            prefix = [runner, "-u", "postgres", "--"]
        else:
            raise PgUnavailable("the tests must run as root (to start PostgreSQL as `postgres`) or as `postgres`")
        root = Path(tempfile.mkdtemp(prefix="coach-pg-"))
        os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(root, _free_port())
        server.prefix = prefix
        try:
            server._as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(server.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            )
            server.resume()
        except Exception:
            server.stop()
            raise
        return server

    def resume(self) -> None:
        """Start (or restart) the server on its port."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=60"
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage)."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def _as_postgres(self, cmd: list[str]) -> None:
        out = subprocess.run(self.prefix + cmd, capture_output=True, text=True, timeout=120)
        if out.returncode:
            log = (self.root / "log").read_text(errors="replace")[-1500:] if (self.root / "log").exists() else ""
            raise PgUnavailable(f"{Path(cmd[0]).name} failed: {out.stderr.strip()[-800:]} {log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            except Exception:  # noqa: BLE001 - removing the folder below is what matters
                pass
        shutil.rmtree(self.root, ignore_errors=True)
