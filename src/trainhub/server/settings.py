"""Settings: the server's one configuration object, read from arguments or TRAINHUB_* variables."""

import json
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainhub.server.filemodes import create_private_file, make_private_dir

SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    """Every knob of the server; each field is also the variable TRAINHUB_<FIELD>."""

    # "ignore": the client's TRAINHUB_URL/TRAINHUB_API_KEY may sit in the same .env file
    model_config = SettingsConfigDict(env_prefix="TRAINHUB_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("trainhub-data")
    database_url: str | None = None
    storage_url: str | None = None
    s3_presigned_downloads: bool = False
    s3_public_endpoint: str | None = None
    public_url: str | None = None
    secret_key: SecretStr | None = None
    redis_url: str | None = None
    allowed_hosts: list[str] = []
    forwarded_allow_ips: str = ""  # proxies trusted for X-Forwarded-For (docs/security.md §2.18)
    max_upload_bytes: int = 2 * 1024**3
    max_json_bytes: int = 1024**2
    max_image_bytes: int = 10 * 1024**2
    body_idle_timeout_s: float = 30.0
    body_deadline_s: float = 3600.0
    json_deadline_s: float = 30.0
    max_form_parts: int = 16
    download_ttl_s: int = 24 * 3600
    rate_limit: str = "50/second;1200/minute"
    anonymous_rate_limit: str = "10/second;300/minute"
    web_rate_limit: str = "20/second;600/minute"
    web_chart_rate_limit: str = "5/second;120/minute"
    max_live_streams_per_user: int = Field(default=8, ge=1)
    # overload (docs/performance.md, "Overload"): requests in one process at once, how long
    # one more waits for a slot before 503, and how long a key lookup or a metrics commit
    # waits for the database before 503
    max_requests_in_flight: int = Field(default=64, ge=1)
    threads: int = Field(default=40, ge=1, le=256)
    admission_wait_s: float = Field(default=0.25, ge=0, le=10)
    database_wait_s: float = Field(default=1.0, gt=0, le=60)
    web_session_idle_s: int = Field(default=3 * 24 * 3600, ge=60)
    web_session_max_age_s: int = Field(default=14 * 24 * 3600, ge=60)
    heartbeat_interval_s: float = 300.0
    # the Platform protocol of ultralytics 8.4 (docs/protocol/platform.md §9)
    platform_max_json_bytes: int = Field(default=8 * 1024**2, ge=1024)
    platform_upload_ttl_s: int = Field(default=2 * 3600, ge=60)
    platform_min_silence_s: float = Field(default=60.0, gt=0)
    platform_first_epoch_silence_s: float = Field(default=600.0, gt=0)
    max_keys_per_user: int = 20
    max_agents_per_model: int = 16
    gc_interval_s: float = Field(default=3600.0, ge=0)
    gc_grace_s: float = Field(default=3600.0, ge=0)
    create_admin: bool = True
    metrics_token: SecretStr | None = None
    # exports and hosted inference: the job queue and its workers (docs/server.md, "Workers")
    embedded_worker: Literal["auto", "on", "off"] = "auto"
    queue_name: str = Field(default="trainhub", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    worker_threads: int = Field(default=2, ge=1, le=64)
    worker_poll_s: float = Field(default=0.1, gt=0, le=10)
    worker_model_cache_size: int = Field(default=4, ge=1, le=256)
    job_lease_s: float = Field(default=60.0, ge=2)
    job_max_attempts: int = Field(default=2, ge=1, le=10)
    export_timeout_s: float = Field(default=1800.0, gt=0)
    max_queued_exports_per_user: int = Field(default=4, ge=1)
    predict_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_predict_pixels: int = Field(default=40_000_000, ge=1)
    log_level: str = "INFO"
    workers: int = 1
    log_format: Literal["text", "json"] = "text"

    @field_validator("web_rate_limit", "web_chart_rate_limit")
    @classmethod
    def _check_rate_spec(cls, value: str) -> str:
        # checked here because the dashboard builds its limiters on first use, not at start-up
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a rate limit; write it like '20/second;600/minute'"
            ) from exc
        return value

    def resolved_public_url(self) -> str:
        """Return the URL clients use to reach this server, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def resolved_database_url(self) -> str:
        """Return the SQLAlchemy URL: the given one, or a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'trainhub.db').resolve()}"

    def resolved_storage_url(self) -> str:
        """Return the storage URL: the given one, or a folder in the data directory."""
        return self.storage_url or f"file://{(self.data_dir / 'blobs').resolve()}"

    def resolved_allowed_hosts(self) -> list[str]:
        """Return the Host header values accepted (DNS-rebinding guard, docs/security.md §2.4)."""
        hosts = set(self.allowed_hosts) or {"localhost", "127.0.0.1", "[::1]"}
        public = urlsplit(self.resolved_public_url()).hostname
        if public:
            hosts.add(f"[{public}]" if ":" in public else public)
        return sorted(hosts)

    def resolved_queue_file(self) -> Path:
        """Return the SQLite file of the job queue used when no redis_url is set."""
        return (self.data_dir / "queue.sqlite3").resolve()

    def resolved_secret(self) -> bytes:
        """Return the signing secret: the configured one, or one kept in the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            make_private_dir(self.data_dir)
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            create_private_file(tmp)  # 0600 before the secret is written into it
            tmp.write_text(secrets.token_hex(32))
            tmp.replace(path)
        return path.read_text().strip().encode()

    def for_workers(self) -> str:
        """Return these settings as JSON for worker processes (`from_workers` reads it back)."""
        values = self.model_dump(mode="json")
        if self.secret_key is not None:
            values["secret_key"] = self.secret_key.get_secret_value()
        return json.dumps(values)

    @classmethod
    def from_workers(cls, text: str) -> "Settings":
        """Return the settings the parent process handed its workers (see `for_workers`)."""
        return cls.model_validate(json.loads(text))
