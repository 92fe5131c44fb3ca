"""Settings from the environment (prefix ``CLEARSHELF_``).

This is the only module that reads environment variables; everything below
``api`` receives plain values.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PSEUDONYM_KEY_FILE = "pseudonym.key"


class Settings(BaseSettings):
    """Service configuration.

    ``database_url`` defaults to a SQLite file under ``home``. ``pseudonym_key``
    is the secret behind customer pseudonyms; when unset it is generated once
    and kept in ``home/pseudonym.key`` (mode 0600).
    """

    model_config = SettingsConfigDict(env_prefix="CLEARSHELF_", extra="ignore")

    home: Path = Field(default=Path("./.clearshelf"))
    database_url: str | None = None
    pseudonym_key: SecretStr | None = None

    # -- HTTP service (``clearshelf serve``) ---------------------------------------
    # Require an API key (any role) on the public routes too (recommendations,
    # events, items). Admin and data-rights routes always need one.
    require_key_public: bool = False
    # Token bucket per client (API key, else client address), per worker process:
    # ``rate_limit_per_second`` sustained, ``rate_limit_burst`` at once; 0 disables.
    rate_limit_per_second: float = Field(default=100.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # Largest request body accepted (bytes) and largest POST /events batch (rows).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_events_per_batch: int = Field(default=1000, ge=1, le=100_000)
    # How often each worker checks for a new active model, a new thresholds
    # version, new events, erasures and consent changes made by other workers.
    sync_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    # How many GET /recommendations answers each worker computes at once (in its
    # thread pool); the other requests wait their turn in the event loop. The
    # work is CPU- and memory-bound and mostly holds the GIL, so more threads
    # only take turns and evict each other's data from the caches: one per
    # worker served 21% (explained) and 29% (unexplained) more requests per
    # second than 40 on Complete Journey (docs/performance.md, 2026-12-06).
    # Scale with `clearshelf serve --workers`, one per core.
    model_threads: int = Field(default=1, ge=1, le=64)
    # Per-worker cache of finished GET /recommendations answers (api/result_cache.py):
    # invalidated per customer by their events, consent changes and erasure, and
    # entirely by a model swap or a new thresholds version. Bounded by entry count
    # and by the bytes of the kept answers (least recently used go first; an
    # explained 10-item answer is ~35 KB on Complete Journey), and by age.
    result_cache: bool = True
    result_cache_entries: int = Field(default=10_000, ge=1)
    result_cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    result_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    # Nightly fairness audit, "HH:MM" in UTC; empty disables it. Runs once per
    # day across all workers (a database lease).
    audit_time: str = "02:00"
    # Training from the service (POST /admin/train): include the text-embedding
    # source (slower; needs the bundled sentence-transformers model).
    train_content: bool = True
    train_keep: int = Field(default=5, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Set by `clearshelf serve --workers N` (prometheus-client's own variable):
    # where every worker writes its metric samples for /metrics to aggregate.
    prometheus_multiproc_dir: str | None = Field(default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR")

    @field_validator("audit_time")
    @classmethod
    def _check_audit_time(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        hh, sep, mm = value.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise ValueError(
                f"CLEARSHELF_AUDIT_TIME must be HH:MM in UTC such as 02:00, or empty to disable; got {value!r}"
            )
        return f"{int(hh):02d}:{int(mm):02d}"

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'clearshelf.db'}"

    def ensure_home(self) -> Path:
        home = self.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        return home

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonymisation key, creating and keeping one on first use."""
        if self.pseudonym_key is not None:
            value = self.pseudonym_key.get_secret_value()
            if len(value) < 16:
                raise ValueError(
                    "CLEARSHELF_PSEUDONYM_KEY is too short: use at least 16 characters "
                    "(for example the output of `python -c 'import secrets; print(secrets.token_hex(32))'`)"
                )
            return value.encode()
        path = self.ensure_home() / PSEUDONYM_KEY_FILE
        if not path.exists():
            _write_secret(path, secrets.token_hex(32))
        return path.read_text().strip().encode()


def _write_secret(path: Path, value: str) -> None:
    """Create ``path`` readable by the owner only; never overwrite an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; use theirs
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")


def get_settings() -> Settings:
    return Settings()
