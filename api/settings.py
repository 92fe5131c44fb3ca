"""Settings from the environment (prefix ``CLEARSHELF_``).

This is the only module that reads environment variables; everything below
``api`` receives plain values.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
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
