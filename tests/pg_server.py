"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` on a temp dir and a free loopback port.

    from pg_server import running_postgres          # tests/ is on sys.path (tests/conftest.py lives there)

    with running_postgres() as pg:                  # or the session fixture `postgres_server` in tests/conftest.py
        url = pg.create_database("fleet")           # postgresql://foundation:<pw>@127.0.0.1:<port>/fleet
        pg.psql("CREATE TABLE t (id int)", database="fleet")

What it does, and why:
- Binaries: `$FOUNDATION_PG_BIN` if set, else the newest `/usr/lib/postgresql/<v>/bin` (Debian's layout), else `initdb`
  on PATH. None: `PostgresUnavailableError` saying what to install (`apt-get install postgresql`).
- `initdb` refuses to run as root (CI runs as root): then the server runs as an unprivileged OS user through
  `runuser`: `$FOUNDATION_PG_OS_USER`, else `postgres` (the Debian package creates it), else a system user
  `foundation-pg` created on the spot. The temp dir is handed to that user.
- Authentication is real (scram-sha-256 with a random password for the superuser `foundation`), so a test can check
  what a wrong password does. TCP on 127.0.0.1 only; the Unix socket goes into the temp dir, never /var/run.
- Durability is switched off (fsync, full_page_writes, synchronous_commit): the data is thrown away anyway.
- The port is picked free just before start; if another process takes it meanwhile, the start is retried on another.
- On exit (even after an error) the server is stopped (`pg_ctl stop -m fast`, then killed if it hangs) and the temp dir
  removed. A failed start raises `PostgresStartError` with the end of the server log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "foundation"
FALLBACK_OS_USER = "foundation-pg"
START_ATTEMPTS = 3


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or the server start failed; the message holds the end of the log."""


def find_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl, postgres, psql and createdb."""
    override = os.environ.get("FOUNDATION_PG_BIN")
    if override:
        if not (Path(override) / "initdb").is_file():
            raise PostgresUnavailableError(f"FOUNDATION_PG_BIN={override} has no initdb; point it at PostgreSQL's bin/")
        return Path(override)
    candidates = [p / "bin" for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").is_file()]
    if candidates:
        return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailableError(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): "
        "install them with `apt-get install postgresql`, or set FOUNDATION_PG_BIN to their folder"
    )


def _os_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("FOUNDATION_PG_OS_USER"), "postgres", FALLBACK_OS_USER):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_OS_USER


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server. `url` points at the `postgres` database; `create_database` makes others."""

    bin_dir: Path
    base_dir: Path
    port: int
    password: str
    os_user: str | None
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    _process_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def url_for(self, database: str = "postgres", password: str | None = None) -> str:
        """A libpq URL (`postgresql://user:password@host:port/database`)."""
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for()

    def _client_env(self) -> dict[str, str]:
        # The password goes through the environment, never on a command line that `ps` shows.
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}

    def create_database(self, name: str) -> str:
        """Create database `name` and return its URL."""
        subprocess.run(
            [str(self.bin_dir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name],
            check=True,
            capture_output=True,
            env=self._client_env(),
        )
        return self.url_for(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql (stops at the first error, raising CalledProcessError); returns its unaligned output."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-A",
                "-t",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=self._client_env(),
        )
        return result.stdout


def _as_user(os_user: str | None, argv: Sequence[str]) -> list[str]:
    return ["runuser", "-u", os_user, "--", *argv] if os_user else list(argv)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _init_cluster(bin_dir: Path, base: Path, password: str, os_user: str | None) -> None:
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if os_user:
        entry = pwd.getpwnam(os_user)
        for path in (base, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    argv = [
        str(bin_dir / "initdb"),
        "-D",
        str(base / "data"),
        "-U",
        SUPERUSER,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]
    result = subprocess.run(_as_user(os_user, argv), capture_output=True, text=True, cwd=base)
    pwfile.unlink()
    if result.returncode != 0:
        raise PostgresStartError(f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


def _start(bin_dir: Path, base: Path, port: int, os_user: str | None) -> bool:
    """Start on `port`; False when the port was taken meanwhile (retry), raises on any other failure."""
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off "
        "-c synchronous_commit=off -c max_connections=50 -c shared_buffers=32MB"
    )
    argv = [str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "server.log"), "-o", options]
    result = subprocess.run(
        _as_user(os_user, [*argv, "-w", "-t", "60", "start"]), capture_output=True, text=True, cwd=base
    )
    if result.returncode == 0:
        return True
    log = _log_tail(base / "server.log")
    if "could not bind" in log or "Address already in use" in log:
        return False
    raise PostgresStartError(f"PostgreSQL did not start (exit {result.returncode}): {result.stderr}\n{log}")


def _stop(bin_dir: Path, base: Path, os_user: str | None) -> None:
    argv = [str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "-t", "30", "stop"]
    result = subprocess.run(_as_user(os_user, argv), capture_output=True, text=True, cwd=base)
    if result.returncode == 0:
        return
    # A hung server: kill the postmaster by the pid it wrote (only ours, never by name).
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((base / "data" / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_postgres(parent_dir: str | Path | None = None) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server for the duration of the block; stopped and deleted afterwards."""
    bin_dir = find_bin_dir()
    os_user = _os_user()
    # Not under pytest's tmp_path: its parents are 0700 root, which the server's OS user cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="foundation-pg-", dir=parent_dir))
    started = False
    try:
        password = secrets.token_urlsafe(16)
        _init_cluster(bin_dir, base, password, os_user)
        for _attempt in range(START_ATTEMPTS):
            port = free_port()
            if _start(bin_dir, base, port, os_user):
                started = True
                break
        else:
            raise PostgresStartError(f"no free port after {START_ATTEMPTS} attempts:\n{_log_tail(base / 'server.log')}")
        yield PostgresServer(bin_dir=bin_dir, base_dir=base, port=port, password=password, os_user=os_user)
    finally:
        if started:
            _stop(bin_dir, base, os_user)
        shutil.rmtree(base, ignore_errors=True)
