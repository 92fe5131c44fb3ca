"""Shared fixtures: a real store on SQLite and on PostgreSQL, isolated per test.

PostgreSQL tests use the server at ``CLEARSHELF_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each in a schema of its own that
is dropped afterwards. Where no server answers they are skipped with the
reason, unless ``CLEARSHELF_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where
that is an error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSTGRES_URL = os.environ.get(
    "CLEARSHELF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("CLEARSHELF_REQUIRE_POSTGRES") == "1"
SHARED_DATA = Path(
    os.environ.get("CLEARSHELF_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

_pg_state: dict[str, str | None] = {}


def _postgres_unavailable() -> str | None:
    """None if the server answers, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        try:
            engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # any failure to connect means "no server here"
            _pg_state["reason"] = f"no PostgreSQL server answers at {POSTGRES_URL}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    return _pg_state["reason"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clearshelf.db'}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a new schema on the PostgreSQL server, dropped on exit."""
    schema_name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema_name}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema_name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the PostgreSQL server, dropped after the test."""
    reason = _postgres_unavailable()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (CLEARSHELF_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(b"test-key-0123456789abcdef")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set CLEARSHELF_SHARED_DATA)")
    return SHARED_DATA
