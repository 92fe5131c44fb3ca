"""The store: SQLAlchemy engine, schema migrations and frame snapshots.

SQLite (the embedded default) runs in WAL mode with foreign keys on;
PostgreSQL is used by URL. The schema is owned by the Alembic migrations in
``recsys/data/migrations``; :meth:`Store.open` brings any database up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from recsys.data import schema
from recsys.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory, WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite only opens a transaction before DML, so DDL (the index
            # rebuild of a bulk import) would commit on its own; take control
            # of BEGIN ourselves so every transaction covers everything in it.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-131072")  # 128 MiB: bulk index inserts stay in memory
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would look for psycopg2.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


class Store:
    """Access to the relational store. Cheap to keep; one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Store:
        """Connect to ``url`` and, by default, apply any pending migrations."""
        store = cls(create_store_engine(url))
        if upgrade:
            store.upgrade()
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; returns (revision before, revision after)."""
        try:
            with self.engine.begin() as conn:
                before = MigrationContext.configure(conn).get_current_revision()
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                after = MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise StoreError(
                f"cannot reach the database at {self.safe_url}: {exc.orig}. "
                "Check CLEARSHELF_DATABASE_URL and that the server is running."
            ) from exc
        return before, after or ""

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - we always ship migrations
            raise StoreError("no migrations found in the installed package")
        return head

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed if the block succeeds, rolled back otherwise."""
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False

    def counts(self) -> dict[str, int]:
        """Row counts of the core tables."""
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in (
                    ("items", schema.items),
                    ("customers", schema.customers),
                    ("events", schema.events),
                )
            }

    # -- snapshots as polars frames ---------------------------------------------------

    def read_frame(self, query: Any, schema_overrides: dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a SELECT and return its rows as a polars frame."""
        with self.engine.connect() as conn:
            result = conn.execute(query)
            columns = list(result.keys())
            rows = result.fetchall()
        data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
        return pl.DataFrame(data, schema_overrides=schema_overrides, strict=False)

    def items_frame(self, *, active_only: bool = False) -> pl.DataFrame:
        """Items: item_id, title, description, category, brand, price, active, attributes (JSON dict)."""
        t = schema.items
        q = select(
            t.c.item_id, t.c.title, t.c.description, t.c.category, t.c.brand, t.c.price,
            t.c.active, t.c.attributes,
        ).order_by(t.c.item_id)
        if active_only:
            q = q.where(t.c.active.is_(True))
        return self.read_frame(
            q,
            {
                "item_id": pl.Utf8, "title": pl.Utf8, "description": pl.Utf8,
                "category": pl.Utf8, "brand": pl.Utf8, "price": pl.Float64,
                "active": pl.Boolean, "attributes": pl.Object,
            },
        )

    def customers_frame(self) -> pl.DataFrame:
        """Customers: customer_key, consent_personalisation, and one column per attribute (strings)."""
        t = schema.customers
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.customer_key, t.c.consent_personalisation, t.c.attributes).order_by(
                    t.c.customer_key
                )
            ).fetchall()
        names = sorted({k for r in rows for k in (r[2] or {})})
        data: dict[str, list[Any]] = {
            "customer_key": [r[0] for r in rows],
            "consent_personalisation": [bool(r[1]) for r in rows],
        }
        for n in names:
            data[n] = [(r[2] or {}).get(n) for r in rows]
        overrides: dict[str, Any] = {n: pl.Utf8 for n in names}
        overrides.update({"customer_key": pl.Utf8, "consent_personalisation": pl.Boolean})
        return pl.DataFrame(data, schema_overrides=overrides, strict=False)

    def events_frame(self, *, consented_only: bool = False) -> pl.DataFrame:
        """Events: customer_key, item_id, event_type, ts (epoch seconds or null), value.

        ``consented_only`` drops the events of customers who withdrew
        personalisation consent (they leave training).
        """
        e, c = schema.events, schema.customers
        q = select(e.c.customer_key, e.c.item_id, e.c.event_type, e.c.ts, e.c.value).order_by(e.c.id)
        if consented_only:
            q = q.join(c, c.c.customer_key == e.c.customer_key).where(
                c.c.consent_personalisation.is_(True)
            )
        return self.read_frame(
            q,
            {
                "customer_key": pl.Utf8, "item_id": pl.Utf8, "event_type": pl.Utf8,
                "ts": pl.Int64, "value": pl.Float64,
            },
        )

    def attribute_definitions(self) -> dict[str, bool]:
        """Attribute name -> sensitive?"""
        t = schema.attribute_definitions
        with self.engine.connect() as conn:
            return {r.name: bool(r.sensitive) for r in conn.execute(select(t.c.name, t.c.sensitive))}

    def sensitive_attributes(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, s in self.attribute_definitions().items() if s))

    def dispose(self) -> None:
        self.engine.dispose()
