# syntax=docker/dockerfile:1
# One image for every Rectify process: `docker run IMAGE serve <process>` (see docs/deployment.md).
# The `local` extra (the tansu test broker) is deliberately NOT installed: production talks to real Kafka.

# --- build: install the project and its pinned dependencies into a virtualenv -------------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README.m[d]: copied when present (pyproject names it as the readme); the glob keeps COPY from failing without it.
COPY pyproject.toml constraints.txt README.m[d] ./
COPY services ./services
RUN pip install --no-cache-dir -c constraints.txt . \
    && pip check \
    && cd / && rectify --help > /dev/null

# --- runtime: the virtualenv only, run by an unprivileged user ------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="rectify" \
      org.opencontainers.image.description="Event-sourced microservices for the public rectification lifecycle" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 rectify \
    && useradd --system --uid 10001 --gid rectify --home-dir /home/rectify --create-home --shell /usr/sbin/nologin rectify

COPY --from=build /opt/venv /opt/venv

WORKDIR /home/rectify
USER 10001:10001

# HTTP processes listen on HTTP_PORT, every process serves /metrics on METRICS_PORT (both set by compose).
EXPOSE 8000 8080 9100

ENTRYPOINT ["rectify"]
CMD ["--help"]
