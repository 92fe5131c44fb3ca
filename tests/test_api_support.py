"""A small served world for the API tests: a store with demo data, two trained bundles, keys.

No tests here; the API test modules build their fixtures from :func:`build_world`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from api.auth import create_key
from api.settings import Settings
from recsys.data.demo import DemoConfig, generate_demo
from recsys.data.importer import import_frames
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store
from recsys.training import train_from_store
from tests.test_recommender import SMALL

PSEUDONYM_KEY = "api-test-pseudonym-key-0123456789"


@dataclass(frozen=True)
class World:
    home: Path
    database_url: str
    settings: Settings
    versions: tuple[str, ...]  # oldest first; the last one is active
    admin: str
    privacy: str
    reader: str
    customers: tuple[str, ...]  # raw ids of customers with history, most active first
    items: tuple[str, ...]

    def store(self) -> Store:
        return Store.open(self.database_url)

    def key_of(self, customer_id: str) -> str:
        return Pseudonymiser(PSEUDONYM_KEY.encode())(customer_id)

    def with_settings(self, **changes: object) -> Settings:
        return self.settings.model_copy(update=changes)


def build_world(home: Path, database_url: str, *, models: int = 2) -> World:
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        home=home, database_url=database_url, pseudonym_key=PSEUDONYM_KEY, audit_time="",
        sync_interval_seconds=0.5, rate_limit_per_second=0, log_level="warning",
    )
    store = Store.open(database_url)
    data = generate_demo(DemoConfig(customers=300, items=120, categories=8, days=120, seed=3))
    import_frames(
        store, Pseudonymiser(PSEUDONYM_KEY.encode()), items=data.items, customers=data.customers,
        events=data.events, sensitive=data.sensitive,
    )
    versions = [
        train_from_store(store, home, config=replace(SMALL, seed=40 + n)).version for n in range(models)
    ]
    counts = data.events.group_by("customer_id").len().sort("len", descending=True)
    world = World(
        home=home,
        database_url=database_url,
        settings=settings,
        versions=tuple(versions),
        admin=create_key(store, role="admin", name="test admin").key,
        privacy=create_key(store, role="privacy", name="test privacy").key,
        reader=create_key(store, role="reader", name="test reader").key,
        customers=tuple(counts["customer_id"].to_list()),
        items=tuple(data.items["item_id"].to_list()),
    )
    store.dispose()
    return world


@contextmanager
def postgres_schema_url() -> Iterator[str | None]:
    """A module-lifetime schema on the test PostgreSQL server (None when there is none)."""
    from tests.conftest import _postgres_unavailable, postgres_schema

    if _postgres_unavailable():
        yield None
        return
    with postgres_schema() as url:
        yield url


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(world: World, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CLEARSHELF_HOME=str(world.home),
        CLEARSHELF_DATABASE_URL=world.database_url,
        CLEARSHELF_PSEUDONYM_KEY=PSEUDONYM_KEY,
        CLEARSHELF_AUDIT_TIME="",
        CLEARSHELF_SYNC_INTERVAL_SECONDS="0.5",
        CLEARSHELF_RATE_LIMIT_PER_SECOND="0",
        OPENBLAS_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


