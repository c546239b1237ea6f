"""PostgreSQL for the Prefect server of `mlops up`: a cluster of the workspace's own, on 127.0.0.1.

The cluster lives in `folder/data`, its generated password in `folder/password` (mode 0600), its pid and
log beside them. It uses the machine's PostgreSQL programs (Debian's `postgresql` package puts them in
`/usr/lib/postgresql/<version>/bin`; other systems have `initdb` on PATH). Only TCP on 127.0.0.1 is
opened: no Unix socket, whose path length limit long workspace paths would break.

PostgreSQL refuses to run as root. As root the programs run in a user namespace of their own
(`unshare --user`), where the process is an ordinary user while its files stay root's: the cluster is
owned by whoever owns the workspace, and no folder above it needs opening up to another account.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from infra.errors import BackendError, ConfigError
from infra.services.base import SupervisedService

USER = "mlops"
DATABASE = "prefect"
INSTALL_HINT = (
    "install it with `apt-get install postgresql` (Debian/Ubuntu), "
    "or set MLOPS_PREFECT_DATABASE=sqlite to keep the platform's Prefect server on SQLite"
)
# Written into the cluster's postgresql.conf at creation; the port is given at each start.
_CONFIG = """
# --- set by mlops (infra/services/postgres.py) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 100
shared_buffers = 128MB
log_line_prefix = '%m [%p] '
"""


DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
PROGRAMS = ("initdb", "postgres")


def binaries(chosen: Path | None = None) -> Path:
    """The folder holding `initdb` and `postgres`: `chosen` (MLOPS_POSTGRES_BIN), else the newest Debian
    install, else the one on PATH.

    Raises:
        ConfigError: PostgreSQL is not installed; the message names the package and the setting.
    """
    if chosen is not None:
        if all((chosen / name).is_file() for name in PROGRAMS):
            return chosen
        raise ConfigError(f"MLOPS_POSTGRES_BIN={str(chosen)!r} holds no initdb and postgres programs: {INSTALL_HINT}")
    debian = sorted(glob.glob(DEBIAN_BINARIES), key=_version, reverse=True)
    on_path = [str(Path(found).resolve().parent) for found in [shutil.which("initdb")] if found]
    for folder in [*debian, *on_path]:
        if all((Path(folder) / name).is_file() for name in PROGRAMS):
            return Path(folder)
    raise ConfigError(f"PostgreSQL is not installed (no initdb and postgres programs found): {INSTALL_HINT}")


def _version(folder: str) -> tuple[int, ...]:
    number = Path(folder).parent.name
    return tuple(int(part) for part in number.split(".") if part.isdigit())


def _as_database_user() -> list[str]:
    """The prefix that runs a PostgreSQL program as an ordinary user: none, or a user namespace for root."""
    if os.geteuid() != 0:
        return []
    try:
        entry = pwd.getpwnam("postgres")
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        uid = gid = 65534  # nobody
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--user", f"--map-user={uid}", f"--map-group={gid}"]


class Postgres(SupervisedService):
    """A PostgreSQL cluster in `folder`, served on 127.0.0.1:`port`. Stopped by a fast shutdown (SIGINT: sessions
    ended, everything committed kept), given a minute."""

    stem = "postgres"
    stop_timeout = 60

    def __init__(self, folder: Path, port: int, programs: Path | None = None) -> None:
        self.folder = folder
        self.port = port
        self.programs = programs
        self.data = folder / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect's server connects with (it holds the password: never print it)."""
        return f"postgresql+asyncpg://{USER}:{self.password()}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def shown_url(self) -> str:
        """The URL with the password hidden, for status lines."""
        return f"postgresql+asyncpg://{USER}:***@127.0.0.1:{self.port}/{DATABASE}"

    def password(self) -> str:
        try:
            return (self.folder / "password").read_text().strip()
        except FileNotFoundError:
            raise BackendError(
                f"the password of the PostgreSQL cluster in {self.data} is gone ({self.folder / 'password'}); "
                f"without it the cluster cannot be reached: delete {self.folder} to start a new one "
                "(the platform's run history goes with it)"
            ) from None

    def identity(self) -> tuple[str, ...]:
        return (str(self.data),)

    # ---- start ----
    def start(self, timeout: float = 60) -> str:
        """Create the cluster if it is new, start it unless it runs; `created`, `started` or `running`."""
        if self.pid() is not None:
            return "running"
        bin_dir = binaries(self.programs)
        created = not (self.data / "PG_VERSION").is_file()
        if created:
            self._create(bin_dir)
        command = [*_as_database_user(), str(bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        self.supervise(
            command,
            _clean_env(),
            ready=self._ready,
            what="PostgreSQL",
            hint=f"port {self.port} taken? set MLOPS_POSTGRES_PORT",
            timeout=timeout,
            interval=0.2,
            stop_signal="INT",  # fast shutdown: sessions ended, everything committed kept
        )
        self._ensure_database()
        return "created and started" if created else "started"

    def _create(self, bin_dir: Path) -> None:
        """initdb with a generated password (mode 0600) and loopback-only settings."""
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted first start
        self.folder.mkdir(parents=True, exist_ok=True)
        password = self.folder / "password"
        if not password.is_file():
            fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(24) + "\n")
        os.chmod(password, 0o600)
        command = [*_as_database_user(), str(bin_dir / "initdb"), "-D", str(self.data), "-U", USER]
        command += ["--pwfile", str(password), "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]
        result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), check=False, timeout=300)
        if result.returncode != 0:
            raise BackendError(f"initdb failed ({result.returncode}) for {self.data}:\n{result.stderr[-2000:]}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(_CONFIG)

    def _ready(self, pid: int) -> bool:
        """PostgreSQL's own word, as `pg_ctl` reads it: `postmaster.pid` names this server (not one that died
        before it) and its status line says `ready` (a connection before that is refused with a FATAL line)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _ensure_database(self) -> None:
        """Create the `prefect` database unless it exists."""
        import asyncpg

        async def ensure() -> None:
            connection = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=USER, password=self.password(), database="postgres", timeout=10
            )
            try:
                if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                    await connection.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await connection.close()

        try:
            asyncio.run(ensure())
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise BackendError(
                f"PostgreSQL on 127.0.0.1:{self.port} is up but refused the platform's connection: {exc}; "
                f"see {self.folder / 'postgres.log'}"
            ) from exc


def _clean_env() -> dict[str, str]:
    """The environment without libpq variables that would point the programs elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}
