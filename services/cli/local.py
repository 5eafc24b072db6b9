"""The local run: a broker, PostgreSQL and every process on this machine, stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx

from services.cli.processes import PROCESSES

REPO = Path(__file__).resolve().parents[2]


def stack_module() -> ModuleType:
    """infra/stack.py is standard-library only and lives outside the package; load it by path."""
    spec = importlib.util.spec_from_file_location("rectify_infra_stack", REPO / "infra" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    name: str
    popen: subprocess.Popen[bytes]
    http_port: int | None
    metrics_port: int
    log: Path


@dataclass
class LocalSystem:
    """Starts and stops the processes it started, by PID, and only those."""

    base_env: dict[str, str]
    log_dir: Path
    running: dict[str, Running] = field(default_factory=dict)

    def start(self, name: str, http_port: int | None = None, metrics_port: int | None = None) -> Running:
        proc = PROCESSES[name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) | self.base_env
        port = free_port(http_port) if proc.http else None
        mport = free_port(metrics_port)
        env |= {"METRICS_PORT": str(mport)}
        if port:
            env |= {"HTTP_PORT": str(port)}
        log = self.log_dir / f"{name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve", name],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
        running = Running(name, popen, port, mport, log)
        self.running[name] = running
        return running

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.running[name].http_port}"

    def wait_http(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        r = self.running[name]
        while time.monotonic() < deadline:
            if r.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {r.popen.returncode}; see {r.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url(name)}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout}s; see {r.log}")

    def assert_alive(self) -> None:
        for r in self.running.values():
            if r.popen.poll() is not None:
                raise RuntimeError(f"{r.name} exited with {r.popen.returncode}; see {r.log}")

    def kill(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        r = self.running.pop(name, None)
        if r is None or r.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.popen.pid, sig)
        try:
            r.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.popen.pid, signal.SIGKILL)
            r.popen.wait(5)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.kill(name)


async def prepare_all(env: dict[str, str]) -> None:
    """Migrations for every schema and every topic, before any process starts."""
    from services.common.settings import Settings
    from services.common.worker import prepare

    settings = Settings(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], database_url=env["DATABASE_URL"])
    for proc in {p.schema: p for p in PROCESSES.values()}.values():
        module = proc.target.split(":")[0]
        migrations = REPO / Path(*module.split(".")[:-1]) / "migrations"
        await prepare(settings, proc.schema, migrations)


def run_prepare(env: dict[str, str]) -> None:
    asyncio.run(prepare_all(env))
