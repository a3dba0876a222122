"""The real `make run` stack (healthmail.devstack run) for the acceptance test, in its own state
directory (own embedded PostgreSQL and Redis, CA, mail world, logins) on a free port, so it never
touches the test databases nor a developer's `make run`.

Starting it takes a while (initdb, migrations, seeding), so tests/conftest.py starts it when the
session begins (the xdist controller, or the only process) and hands it to the workers through
ACCEPTANCE_STACK; the acceptance test waits for it then. Run alone, the test starts its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDOFF = "ACCEPTANCE_STACK"  # "<state dir>|<port>"
TEST_FILE = "tests/e2e/test_make_run.py"
# The test session's own services and settings: the stack under test must not inherit them.
INHERITED_OUT = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "HEALTHMAIL_MASTER_KEY",
    "PORT",
    HANDOFF,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StackProcess:
    def __init__(self, state: Path, port: int, process: subprocess.Popen | None = None):
        self.state, self.port, self.process = state, port, process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "run.log"

    @classmethod
    def start(cls) -> StackProcess:
        # Under /tmp and traversable: the embedded PostgreSQL runs as its own system user under root.
        state = Path(tempfile.mkdtemp(prefix="hm-make-run-", dir="/tmp"))
        state.chmod(0o755)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_OUT}
        env.update(DEVSTACK_STATE_DIR=str(state), PORT=str(port), PYTHONUNBUFFERED="1")
        with open(state / "run.log", "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "healthmail.devstack", "run"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(state, port, process)

    @classmethod
    def from_handoff(cls) -> StackProcess | None:
        value = os.environ.get(HANDOFF, "")
        if not value:
            return None
        state, port = value.rsplit("|", 1)
        return cls(Path(state), int(port))

    def handoff(self) -> str:
        return f"{self.state}|{self.port}"

    def wait_ready(self, seconds: float) -> str:
        """'' once it serves; else why not (with the end of its output)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            if "HealthMail is running" in text:
                return ""
            if (self.process is not None and self.process.poll() is not None) or "stopping the rest" in text:
                return "make run stopped:\n" + text[-4000:]
            time.sleep(1)
        return f"make run did not start within {seconds:.0f} s:\n" + (self.log.read_text()[-4000:])

    def stop(self) -> None:
        """Only the process that started it: SIGTERM (the devstack stops its children and services)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy(self.log, artifacts / "make-run.log")
        shutil.rmtree(self.state, ignore_errors=True)


def selected(config) -> bool:
    """Whether this session will (probably) run the acceptance test: its file is under the paths given
    and browser tests are not deselected by -m."""
    if "not browser" in (config.option.markexpr or ""):
        return False
    paths = [arg.split("::", 1)[0].rstrip("/") for arg in config.args] or ["."]
    target = (ROOT / TEST_FILE).resolve()
    for path in paths:
        resolved = (Path(config.invocation_params.dir) / path).resolve()
        if resolved == target or resolved in target.parents:
            return True
    return False
