"""Typed configuration, read once from the environment at start-up."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every variable a Rectify process reads. docker-compose.yml names only these."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/postgres", description="PostgreSQL DSN")
    kafka_replication_factor: int = Field(1, ge=1, description="replication factor of the topics created at start-up")
    kafka_session_timeout_ms: int = Field(10_000, ge=1_000, description="consumer group session timeout")
    http_host: str = Field("127.0.0.1", description="host the HTTP API of this process binds")
    http_port: int = Field(8000, ge=0, le=65535, description="port of this process's HTTP API (intake, publicity)")
    metrics_port: int = Field(9100, ge=0, le=65535, description="port of this process's Prometheus listener")
    metrics_host: str = Field("127.0.0.1", description="host the Prometheus listener binds (0.0.0.0 in containers)")
    faust_data_dir: str = Field("/tmp/rectify-faust", description="where faust keeps its (unused) local state")
    intake_master_key: str | None = Field(
        None, description="base64 of 32 random bytes: wraps complainants' data keys (intake only; keep secret)"
    )
    log_level: str = Field("INFO", description="log level")
    outbox_poll_interval_s: float = Field(0.05, gt=0, description="longest wait of an idle outbox relay")
    consumer_batch_size: int = Field(2000, ge=1, description="events taken per projection transaction")
    deadline_scan_interval_s: float = Field(15.0, gt=0, description="how often rectification looks for breaches")
    case_cache_size: int = Field(200_000, ge=0, description="case states rectification keeps hot in memory")
    consumer_batch_window_s: float = Field(0.05, gt=0, description="longest wait to fill a faust batch")
    consumer_fetch_wait_ms: int = Field(
        50,
        ge=1,
        le=10_000,
        description="longest wait of a batch consumer's fetch for new records (the broker may hold it that long)",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
