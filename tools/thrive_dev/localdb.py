"""The embedded PostgreSQL: a private server from the ``pgserver`` wheel, data under ``.local/``.

``pgserver`` ships real PostgreSQL 16 binaries on PyPI, so a machine with nothing but Python gets
a real server: no Docker, no system package. It listens on a unix socket only (no TCP port to
collide with), and, run as root, starts ``postgres`` as a ``pgserver`` system user it creates.
The same :func:`start` serves ``make up`` (``.local/pg``, kept across restarts) and the test suite
(a temporary folder, deleted afterwards).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

# pgserver logs every step at INFO; its own failures are re-raised below with one line.
logging.getLogger("pgserver").setLevel(logging.WARNING)
# platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI) and falls back to /tmp: fine here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


class LocalDbError(RuntimeError):
    """A problem with the local server, worded as what to do about it."""


@dataclass(frozen=True)
class LocalServer:
    """A running embedded server: where its data and socket are."""

    pgdata: Path
    socket_dir: Path

    def uri(self, database: str = "postgres") -> str:
        """A libpq URI, e.g. for ``psql``."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def connect(self, database: str = "postgres", **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.uri(database), **kwargs)

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        with self.connect(autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bin_dir() -> Path:
    """The folder of the wheel's PostgreSQL programs (``psql``, ``pg_dump``, ...)."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _check_pgdata(pgdata: Path) -> None:
    if not pgdata.parent.is_dir():
        raise LocalDbError(f"{pgdata.parent} does not exist: create it or run from the project root")
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        raise LocalDbError(
            f"{pgdata} is half-initialised (files but no PG_VERSION): a first start was interrupted. "
            f"It holds no data yet; remove it (rm -rf {pgdata}) and run `make up` again"
        )


def start(pgdata: Path) -> LocalServer:
    """Start (or reuse) the server whose data folder is ``pgdata``; initialise it on first use.

    The server outlives this process: :func:`stop` (``make down``) or :func:`remove` (the test
    suite) ends it.
    """
    import atexit

    import pgserver  # the local-services extra: imported here so the package itself never needs it

    pgdata = pgdata.resolve()
    _check_pgdata(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        log = pgdata / "log"
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise LocalDbError(
            f"PostgreSQL did not start in {pgdata}: {' '.join(tail) or err}. "
            f"See {log}; `make down` then `make up` retries"
        ) from None
    # With cleanup_mode=None pgserver's exit hook only does bookkeeping in pgdata, which fails
    # once remove() has deleted the folder: the lifecycle is ours, so drop the hook.
    atexit.unregister(server._cleanup)
    return LocalServer(pgdata=pgdata, socket_dir=info.socket_dir or pgdata)


def running(pgdata: Path) -> LocalServer | None:
    """The server on ``pgdata`` if one is running, without starting anything."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata.resolve()) if pgdata.exists() else None
    if info is None or not info.is_running():
        return None
    return LocalServer(pgdata=pgdata.resolve(), socket_dir=info.socket_dir or pgdata.resolve())


def stop(pgdata: Path) -> bool:
    """Stop the server on ``pgdata`` (fast shutdown); ``False`` when none was running."""
    from pgserver import pg_ctl
    from pgserver.postgres_server import PostgresServer

    if running(pgdata) is None:
        return False
    user = "pgserver" if _is_root() else None
    with PostgresServer._lock:  # the lock pgserver itself takes around start and stop
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata.resolve(), user=user)
    return True


def remove(pgdata: Path) -> None:
    """Stop the server and delete its data folder (the test suite's clean-up)."""
    stop(pgdata)
    shutil.rmtree(pgdata, ignore_errors=True)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
