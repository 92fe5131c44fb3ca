from __future__ import annotations

import stat
from pathlib import Path

import pytest

from api.settings import Settings


def test_defaults_put_sqlite_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLEARSHELF_HOME", raising=False)
    monkeypatch.delenv("CLEARSHELF_DATABASE_URL", raising=False)
    s = Settings()
    assert s.resolved_home == (tmp_path / ".clearshelf").resolve()
    assert s.resolved_database_url == f"sqlite:///{tmp_path / '.clearshelf' / 'clearshelf.db'}"


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARSHELF_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CLEARSHELF_DATABASE_URL", "postgresql://x@y/z")
    s = Settings()
    assert s.resolved_home == tmp_path / "h"
    assert s.resolved_database_url == "postgresql://x@y/z"


def test_pseudonym_key_generated_once_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLEARSHELF_PSEUDONYM_KEY", raising=False)
    s = Settings(home=tmp_path)
    key = s.pseudonym_key_bytes()
    path = tmp_path / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert Settings(home=tmp_path).pseudonym_key_bytes() == key


def test_pseudonym_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARSHELF_PSEUDONYM_KEY", "a-long-enough-secret-key")
    s = Settings(home=tmp_path)
    assert s.pseudonym_key_bytes() == b"a-long-enough-secret-key"
    assert not (tmp_path / "pseudonym.key").exists()
    assert "a-long-enough" not in repr(s)


def test_short_pseudonym_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARSHELF_PSEUDONYM_KEY", "short")
    with pytest.raises(ValueError, match="too short"):
        Settings(home=tmp_path).pseudonym_key_bytes()
