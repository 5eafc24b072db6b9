"""The production-like stack, checked against the code.

docker-compose.yml, the Dockerfile, .dockerignore, infra/prometheus.yml and docs/deployment.md must agree
with ``PROCESSES`` (services/cli/processes.py), ``Settings`` (services/common/settings.py), the ``rectify``
console script and the HTTP apps. There is no Docker engine on the build machines, so ``docker compose
config`` cannot run: the compose file is validated here structurally (duplicate keys, interpolation,
references between services, volumes and health checks) instead. Nothing here shells out to docker.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import inspect
import ipaddress
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from services.cli.main import app as cli_app
from services.cli.processes import PROCESSES
from services.common.metrics import serve_metrics
from services.common.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROMETHEUS_FILE = REPO / "infra" / "prometheus.yml"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
PYPROJECT = REPO / "pyproject.toml"

SETTINGS_ENV: dict[str, str] = {name.upper(): name for name in Settings.model_fields}
REQUIRED_APP_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
HTTP_PROCESSES = sorted(name for name, p in PROCESSES.items() if p.http)
WORKER_PROCESSES = sorted(name for name, p in PROCESSES.items() if not p.http)
COMPOSE_TOP_LEVEL = {"name", "version", "services", "volumes", "networks", "configs", "secrets", "include"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
INTERPOLATION = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<escaped>\$))")


# --- loading ---------------------------------------------------------------------------------------------


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of duplicate keys silently; docker compose refuses them. So do we."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    assert isinstance(data, dict), f"{path.relative_to(REPO)} must be a YAML mapping"
    return data


COMPOSE = load_yaml(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}
PROMETHEUS = load_yaml(PROMETHEUS_FILE)


def interpolate(value: str) -> str:
    """Compose's interpolation with every variable unset: ``${X:-d}``/``${X-d}`` give d, ``$$`` gives ``$``."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        expr = m["braced"] or ""
        for sep in (":-", "-"):
            if sep in expr:
                return expr.split(sep, 1)[1]
        raise AssertionError(f"${{{expr or m['bare']}}} has no default, so the stack would not start without it")

    return INTERPOLATION.sub(one, value)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) if "=" in item else [item, ""] for item in env]
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def resolved_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: interpolate(v) for k, v in environment_of(service).items()}


def setting(service: dict[str, Any], env_name: str) -> Any:
    """The value a process in ``service`` sees for a Settings field: its compose value, else the default."""
    field = Settings.model_fields[SETTINGS_ENV[env_name]]
    env = resolved_env(service)
    if env_name not in env:
        return field.default
    annotation: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)  # validated alone: Settings() would also read os.environ
    return adapter.validate_python(env[env_name])


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port or None, container port) for each entry of ``ports``, short or long syntax."""
    out: list[tuple[str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((None if published is None else str(published), int(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]  # [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]
        if spec.startswith("["):  # an IPv6 host address
            spec = spec.split("]:", 1)[1]
        parts = spec.split(":")
        out.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def healthcheck_test(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if test is None:
        return ""
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run the Rectify image: built here, or running ``serve``."""
    return {name: svc for name, svc in SERVICES.items() if "build" in svc or (command_of(svc)[:1] == ["serve"])}


def service_for(process: str) -> tuple[str, dict[str, Any]]:
    matches = [(name, svc) for name, svc in SERVICES.items() if command_of(svc) == ["serve", process]]
    assert len(matches) == 1, f"process {process!r} must run in exactly one service, found {[m[0] for m in matches]}"
    return matches[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    assert DOCKERFILE.is_file(), "Dockerfile is missing"
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def exec_form(instruction: str) -> list[str]:
    matches = [args for keyword, args in dockerfile_instructions() if keyword == instruction]
    assert matches, f"the Dockerfile has no {instruction}"
    parsed = yaml.safe_load(matches[-1])
    assert isinstance(parsed, list), f"{instruction} must use the exec (JSON array) form, got {matches[-1]!r}"
    return [str(p) for p in parsed]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder matches all inside it."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/").removeprefix("./")
        if any(regex(body).match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing"
    lines = (line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def scrape_targets() -> Iterator[tuple[str, str]]:
    for job in PROMETHEUS.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                yield job["job_name"], str(target)


# --- the compose file as a whole -------------------------------------------------------------------------


def test_compose_top_level_is_valid() -> None:
    unknown = {k for k in COMPOSE if k not in COMPOSE_TOP_LEVEL and not str(k).startswith("x-")}
    assert not unknown, f"docker-compose.yml has unknown top-level keys {sorted(unknown)}"
    assert "version" not in COMPOSE, "the top-level 'version' key is obsolete in Compose v2; remove it"
    assert SERVICES, "docker-compose.yml defines no services"
    for name, svc in SERVICES.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name), f"service name {name!r} is not a valid compose name"
        assert isinstance(svc, dict), f"service {name!r} must be a mapping"
        assert "image" in svc or "build" in svc, f"service {name!r} needs an image or a build"


def test_every_interpolation_has_a_default() -> None:
    """``docker compose up`` must work without a .env file: every ``${VAR}`` carries a default."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        try:
            interpolate(line)
        except AssertionError as exc:
            pytest.fail(f"docker-compose.yml line {line_no}: {exc}")


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if not source or source.startswith((".", "/", "~")):
                continue  # a bind mount
            assert source in declared, f"service {name!r} mounts volume {source!r}, not declared under 'volumes:'"


def test_bind_mounts_exist() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"service {name!r} bind-mounts {source}, which does not exist"


def test_every_service_restarts_unless_stopped() -> None:
    for name, svc in SERVICES.items():
        assert svc.get("restart") == "unless-stopped", f"service {name!r}: set restart: unless-stopped"


def test_images_are_pinned() -> None:
    for name, svc in SERVICES.items():
        image = svc.get("image")
        if image is None:
            continue
        image = interpolate(str(image))
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"service {name!r}: image {image!r} has no tag; pin a version"
        assert tag != "latest", f"service {name!r}: image {image!r} uses 'latest'; pin a version"


def test_depends_on_healthy_services_define_a_healthcheck() -> None:
    for name, svc in SERVICES.items():
        for dep, condition in depends_on(svc).items():
            assert dep in SERVICES, f"service {name!r} depends on {dep!r}, which is not a compose service"
            assert dep != name, f"service {name!r} depends on itself"
            if condition == "service_healthy":
                assert healthcheck_test(SERVICES[dep]), (
                    f"service {name!r} waits for {dep!r} to be healthy, but {dep!r} defines no healthcheck"
                )


# --- processes and their services ------------------------------------------------------------------------


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_process_runs_in_exactly_one_service(process: str) -> None:
    name, svc = service_for(process)
    assert "build" in svc, f"service {name!r} must build the project image (build: .)"
    build = svc["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (REPO / context / "Dockerfile").is_file(), f"service {name!r} builds {context!r}, which has no Dockerfile"


def test_every_serve_command_names_a_process() -> None:
    for name, svc in app_services().items():
        command = command_of(svc)
        assert command[:1] == ["serve"] and len(command) == 2, (
            f"service {name!r} builds the Rectify image but runs {command!r}; expected ['serve', '<process>']"
        )
        assert command[1] in PROCESSES, f"service {name!r} runs unknown process {command[1]!r}; see PROCESSES"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_app_environment_names_only_settings_fields(process: str) -> None:
    name, svc = service_for(process)
    env = resolved_env(svc)
    unknown = sorted(set(env) - set(SETTINGS_ENV))
    assert not unknown, (
        f"service {name!r} sets {unknown}, which are not fields of services.common.settings.Settings "
        f"(known: {sorted(SETTINGS_ENV)})"
    )
    for required in REQUIRED_APP_ENV:
        assert env.get(required), f"service {name!r} must set {required}"
    for key in env:
        try:
            setting(svc, key)
        except ValidationError as exc:
            pytest.fail(f"service {name!r}: {key}={env[key]!r} is not a valid Settings value: {exc}")


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_app_services_wait_for_healthy_kafka_and_postgres(process: str) -> None:
    name, svc = service_for(process)
    deps = depends_on(svc)
    for dep in ("kafka", "postgres"):
        assert deps.get(dep) == "service_healthy", f"service {name!r}: depends_on {dep} with service_healthy"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_app_services_reach_kafka_and_postgres_by_service_name(process: str) -> None:
    name, svc = service_for(process)
    for server in str(setting(svc, "KAFKA_BOOTSTRAP_SERVERS")).split(","):
        host, _, port = server.strip().rpartition(":")
        assert host in SERVICES, f"service {name!r}: Kafka host {host!r} is not a compose service"
        advertised = resolved_env(SERVICES[host]).get("KAFKA_ADVERTISED_LISTENERS", "")
        assert f"//{host}:{port}" in advertised, (
            f"service {name!r} bootstraps from {server}, but {host!r} advertises {advertised!r}"
        )
    dsn = urlsplit(str(setting(svc, "DATABASE_URL")))
    assert dsn.scheme in {"postgresql", "postgres"}, f"service {name!r}: DATABASE_URL must be a postgresql:// DSN"
    assert dsn.hostname in SERVICES, f"service {name!r}: database host {dsn.hostname!r} is not a compose service"
    pg_env = resolved_env(SERVICES[dsn.hostname])
    assert dsn.username == pg_env.get("POSTGRES_USER", "postgres"), f"service {name!r}: DATABASE_URL user mismatch"
    assert dsn.password == pg_env.get("POSTGRES_PASSWORD"), f"service {name!r}: DATABASE_URL password mismatch"
    assert dsn.path.lstrip("/") == pg_env.get("POSTGRES_DB", dsn.username), f"service {name!r}: database mismatch"


@pytest.mark.parametrize("process", HTTP_PROCESSES)
def test_http_processes_publish_their_http_port(process: str) -> None:
    name, svc = service_for(process)
    http_port = setting(svc, "HTTP_PORT")
    metrics_port = setting(svc, "METRICS_PORT")
    assert setting(svc, "HTTP_HOST") == "0.0.0.0", f"service {name!r}: HTTP_HOST must be 0.0.0.0 inside a container"
    ports = published_ports(svc)
    assert ports, f"HTTP service {name!r} publishes no port"
    for host_port, container_port in ports:
        assert container_port == http_port, (
            f"service {name!r} publishes container port {container_port}, but HTTP_PORT is {http_port}"
        )
        assert host_port in (None, str(http_port)), (
            f"service {name!r} publishes {http_port} as host port {host_port}; keep them equal"
        )
    assert metrics_port != http_port, f"service {name!r}: METRICS_PORT and HTTP_PORT are both {http_port}"
    assert metrics_port, f"service {name!r}: METRICS_PORT 0 turns metrics off"


@pytest.mark.parametrize("process", WORKER_PROCESSES)
def test_workers_publish_nothing(process: str) -> None:
    name, svc = service_for(process)
    assert not published_ports(svc), f"worker {name!r} publishes ports {svc.get('ports')}; it serves no HTTP"
    assert setting(svc, "METRICS_PORT"), f"service {name!r}: METRICS_PORT 0 turns metrics off"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_metrics_ports_are_not_published(process: str) -> None:
    name, svc = service_for(process)
    metrics_port = setting(svc, "METRICS_PORT")
    assert metrics_port not in [c for _, c in published_ports(svc)], (
        f"service {name!r} publishes its METRICS_PORT {metrics_port}; Prometheus scrapes it on the compose network"
    )
    assert str(metrics_port) not in [h for h, _ in published_ports(svc)], (
        f"service {name!r} publishes host port {metrics_port}"
    )


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_app_healthchecks_use_python_against_the_right_port(process: str) -> None:
    name, svc = service_for(process)
    test = healthcheck_test(svc)
    assert test, f"service {name!r} defines no healthcheck"
    assert "curl" not in test and "wget" not in test, f"service {name!r}: the slim image has no curl or wget"
    assert "python" in test and "urllib.request" in test, f"service {name!r}: check health with python's urllib"
    urls = re.findall(r"https?://[^'\"\s)]+", test)
    assert len(urls) == 1, f"service {name!r}: the healthcheck should fetch exactly one URL, found {urls}"
    url = urlsplit(urls[0])
    assert url.hostname in LOOPBACK_HOSTS, f"service {name!r}: a healthcheck runs inside the container; use 127.0.0.1"
    if PROCESSES[process].http:
        expected = (setting(svc, "HTTP_PORT"), "/healthz")
    else:
        expected = (setting(svc, "METRICS_PORT"), "/readyz")
    assert (url.port, url.path) == expected, f"service {name!r}: healthcheck hits {urls[0]}, expected {expected}"


def _intake_http() -> FastAPI:
    from services.intake.wiring import build_http

    return build_http(
        Settings(
            database_url="postgresql://unused@127.0.0.1:1/unused",
            intake_master_key=base64.b64encode(bytes(32)).decode(),
        )
    )


def _publicity_http() -> FastAPI:
    from services.publicity.entrypoints.web import create_app

    return create_app("postgresql://unused@127.0.0.1:1/unused")


HTTP_APPS: dict[str, Callable[[], FastAPI]] = {"intake-api": _intake_http, "publicity-web": _publicity_http}


def test_every_http_process_has_an_app_factory_here() -> None:
    assert set(HTTP_APPS) == set(HTTP_PROCESSES), (
        f"HTTP processes {HTTP_PROCESSES} and this test's HTTP_APPS {sorted(HTTP_APPS)} differ; add the factory"
    )


@pytest.mark.parametrize("process", HTTP_PROCESSES)
def test_healthz_answers_without_a_database(process: str) -> None:
    """The compose healthcheck's path exists on the real app and needs no database (lifespan not run)."""
    if process not in HTTP_APPS:
        pytest.fail(f"no app factory for {process!r} in HTTP_APPS")
    response = TestClient(HTTP_APPS[process]()).get("/healthz")
    assert response.status_code == 200, f"{process}: GET /healthz answered {response.status_code}"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_metrics_listener_is_reachable_from_prometheus(process: str) -> None:
    name, svc = service_for(process)
    if "METRICS_HOST" in SETTINGS_ENV:
        host = str(setting(svc, "METRICS_HOST"))
    else:
        host = str(inspect.signature(serve_metrics).parameters["host"].default)
    assert host not in LOOPBACK_HOSTS and not ipaddress.ip_address(host).is_loopback, (
        f"service {name!r}: the metrics listener binds {host}, unreachable from the prometheus container"
    )


# --- infrastructure services -----------------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_without_auto_create() -> None:
    assert "kafka" in SERVICES, "docker-compose.yml needs a 'kafka' service"
    kafka = SERVICES["kafka"]
    assert str(kafka.get("image", "")).startswith("apache/kafka:"), "use the official apache/kafka image"
    env = resolved_env(kafka)
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",") if r.strip()}
    assert roles == {"broker", "controller"}, f"KAFKA_PROCESS_ROLES must be 'broker,controller' (KRaft), got {roles}"
    for key in ("KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES", "CLUSTER_ID"):
        assert env.get(key), f"the KRaft kafka service must set {key}"
    try:
        cluster_id = base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")
    except (binascii.Error, ValueError):
        cluster_id = b""
    assert len(cluster_id) == 16, f"CLUSTER_ID {env['CLUSTER_ID']!r} must be a base64url-encoded 16-byte UUID"
    zk = [n for n, s in SERVICES.items() if "zookeeper" in n or "zookeeper" in str(s.get("image", ""))]
    assert not zk, f"KRaft needs no ZooKeeper; remove {zk}"
    assert not any(k.startswith("KAFKA_ZOOKEEPER") for k in env), "the kafka service must not name ZooKeeper"
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false", (
        "topics are created by the services at start-up: set KAFKA_AUTO_CREATE_TOPICS_ENABLE=false"
    )
    test = healthcheck_test(kafka)
    assert "kafka-broker-api-versions.sh" in test or "kafka-topics.sh" in test, (
        "the kafka healthcheck should use /opt/kafka/bin/kafka-broker-api-versions.sh or kafka-topics.sh"
    )


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_replication_factor_fits_the_single_broker(process: str) -> None:
    name, svc = service_for(process)
    assert setting(svc, "KAFKA_REPLICATION_FACTOR") == 1, f"service {name!r}: one broker, so replication factor 1"


def test_postgres_is_16_with_pg_isready_and_a_named_volume() -> None:
    assert "postgres" in SERVICES, "docker-compose.yml needs a 'postgres' service"
    pg = SERVICES["postgres"]
    assert re.fullmatch(r"postgres:16(\.\d+)?(-\S+)?", str(pg.get("image", ""))), "use postgres:16"
    assert "pg_isready" in healthcheck_test(pg), "the postgres healthcheck should use pg_isready"
    declared = set(COMPOSE.get("volumes") or {})
    mounts = [str(v).split(":", 1) for v in pg.get("volumes") or []]
    assert any(src in declared and dst.startswith("/var/lib/postgresql") for src, dst in mounts), (
        "postgres must keep its data in a named volume"
    )


def test_postgres_keeps_a_gigabyte_of_wal_segments_for_reuse() -> None:
    command = [str(part) for part in SERVICES["postgres"].get("command") or []]
    assert command[:1] == ["postgres"], "the postgres command must start the server itself (the image's entrypoint)"
    settings = dict(command[i + 1].split("=", 1) for i, part in enumerate(command) if part == "-c")
    assert settings.get("min_wal_size") == "1GB", "min_wal_size=1GB: bursts reuse recycled WAL segments"


def test_prometheus_mounts_the_scrape_config() -> None:
    assert "prometheus" in SERVICES, "docker-compose.yml needs a 'prometheus' service"
    prom = SERVICES["prometheus"]
    assert str(prom.get("image", "")).startswith("prom/prometheus:"), "use the prom/prometheus image"
    mounts = [str(v) for v in prom.get("volumes") or []]
    assert any(m.startswith("./infra/prometheus.yml:/etc/prometheus/prometheus.yml") for m in mounts), (
        "mount ./infra/prometheus.yml at /etc/prometheus/prometheus.yml"
    )


# --- prometheus.yml ------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_process_every_15s() -> None:
    assert PROMETHEUS.get("global", {}).get("scrape_interval") == "15s", "scrape_interval should be 15s"
    for rule_file in PROMETHEUS.get("rule_files") or []:
        assert (PROMETHEUS_FILE.parent / rule_file).is_file(), f"infra/prometheus.yml loads a missing {rule_file}"
        mounts = [str(m) for m in SERVICES["prometheus"].get("volumes") or []]
        assert any(m.startswith(f"./infra/{rule_file}:/etc/prometheus/{rule_file}") for m in mounts), (
            f"mount ./infra/{rule_file} at /etc/prometheus/{rule_file} in the prometheus service"
        )
    jobs = [job["job_name"] for job in PROMETHEUS.get("scrape_configs") or []]
    assert len(jobs) == len(set(jobs)), f"duplicate job names in infra/prometheus.yml: {jobs}"
    scraped = {target.rpartition(":")[0] for _, target in scrape_targets()}
    for process in PROCESSES:
        name, _ = service_for(process)
        assert name in scraped, f"infra/prometheus.yml does not scrape {name!r}"


def test_every_scrape_target_is_a_service_metrics_port() -> None:
    targets = list(scrape_targets())
    assert targets, "infra/prometheus.yml has no targets"
    for job, target in targets:
        host, _, port = target.rpartition(":")
        assert host in SERVICES, f"job {job!r}: target host {host!r} is not a compose service"
        svc = SERVICES[host]
        assert host in app_services(), f"job {job!r}: {host!r} is not a Rectify process"
        assert port.isdigit() and int(port) == setting(svc, "METRICS_PORT"), (
            f"job {job!r}: target {target} but {host!r} serves metrics on {setting(svc, 'METRICS_PORT')}"
        )


# --- the image ------------------------------------------------------------------------------------------


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    entrypoint = exec_form("ENTRYPOINT")
    assert entrypoint == ["rectify"], f'ENTRYPOINT must be ["rectify"], got {entrypoint}'
    assert entrypoint[0] in scripts, f"{entrypoint[0]!r} is not in pyproject [project.scripts] {sorted(scripts)}"
    module, _, func = scripts[entrypoint[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), func)), f"{scripts[entrypoint[0]]} is not callable"
    assert exec_form("CMD") == ["--help"], 'the default CMD should be ["--help"]'


def test_dockerfile_base_user_and_install() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert bases and all(b == "python:3.11-slim" for b in bases), f"base every stage on python:3.11-slim: {bases}"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"the final USER is root ({users[-1]})"
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install --no-cache-dir -c constraints\.txt \.(\s|$)", runs), (
        "install the project with its pinned dependency tree: pip install --no-cache-dir -c constraints.txt ."
    )
    assert "[local]" not in runs and "calfkit" not in runs, (
        "the 'local' extra (tansu broker) must stay out of the image"
    )


def test_dockerignore_keeps_the_context_small_and_complete() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", ".rectify/stack/pids.json", "rectify-intake-data/x", "tests/x.py"):
        assert dockerignore_excludes(path, patterns), f".dockerignore should exclude {path}"
    copied = [
        args.split()[:-1]
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY" and "--from=" not in args  # --from copies from another stage, not the context
    ]
    sources = [s for srcs in copied for s in srcs if not s.startswith("--") and "[" not in s]
    for source in sources:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not dockerignore_excludes(source, patterns), f".dockerignore excludes {source}, which the build copies"
    assert not dockerignore_excludes("services/cli/main.py", patterns), ".dockerignore excludes the services package"
    assert dockerignore_excludes("services/cli/__pycache__/main.cpython-311.pyc", patterns), "exclude __pycache__"


# --- the CLI really accepts the compose commands ----------------------------------------------------------


def test_serve_command_exists() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0, f"`rectify serve --help` failed ({result.exit_code}): {result.output}"
    assert "process" in result.output.lower(), f"`rectify serve` should take a PROCESS argument: {result.output}"


def test_serve_refuses_unknown_processes() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "no-such-process"])
    assert result.exit_code == 2, f"`rectify serve no-such-process` should exit 2, got {result.exit_code}"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_compose_command_parses_with_the_real_cli(process: str) -> None:
    """Parse (never run) the service's command with the click command behind ``rectify``."""
    _, svc = service_for(process)
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.core.TyperGroup), f"`rectify` should be a command group, got {type(group)}"
    root = group.context_class(group, info_name="rectify")
    command = command_of(svc)
    sub = group.get_command(root, command[0])
    assert sub is not None, f"`rectify {command[0]}` does not exist"
    with sub.make_context(command[0], command[1:], parent=root) as ctx:
        assert ctx.params == {"process": process}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_process_target_loads(process: str) -> None:
    target = PROCESSES[process].load()
    assert callable(target), f"{PROCESSES[process].target} is not callable"


# --- docs/deployment.md ---------------------------------------------------------------------------------


def test_deployment_doc_covers_every_setting_and_process() -> None:
    assert DEPLOYMENT_DOC.is_file(), "docs/deployment.md is missing"
    doc = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    missing = [env for env in SETTINGS_ENV if f"`{env}`" not in doc]
    assert not missing, f"docs/deployment.md does not document {missing} (keep its Settings table in sync)"
    missing = [p for p in PROCESSES if f"`{p}`" not in doc]
    assert not missing, f"docs/deployment.md does not describe the processes {missing}"
    assert "docker compose up --build" in doc, "docs/deployment.md should say how to start the stack"
    assert "KAFKA_AUTO_CREATE_TOPICS_ENABLE=false" in doc, "docs/deployment.md should explain disabled auto-create"


def test_deployment_doc_settings_table_matches_settings() -> None:
    """The first table under "## Environment variables" lists exactly the Settings fields, with their defaults."""
    doc = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    section = doc.partition("\n## Environment variables")[2].partition("\n## ")[0]
    assert section, "docs/deployment.md needs a '## Environment variables' section"
    lines = section.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    table: list[str] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", "\n".join(table), flags=re.MULTILINE))
    missing, stale = sorted(set(SETTINGS_ENV) - set(documented)), sorted(set(documented) - set(SETTINGS_ENV))
    assert not missing and not stale, f"docs/deployment.md's Settings table: missing {missing}, stale {stale}"
    for env, shown in documented.items():
        default = Settings.model_fields[SETTINGS_ENV[env]].default
        assert shown == str(default), f"docs/deployment.md shows {env} default {shown!r}, Settings has {default!r}"
