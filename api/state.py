"""What one worker process serves from: the loaded model, the policy, consent, and their sync.

The in-memory model is held as one immutable :class:`LoadedModel` record; a
request reads ``state.current`` once and uses that record to the end, so a
hot swap (assigning a new record) never changes a model under a request in
flight. Loading happens aside, then the reference is replaced.

Several workers share the store and ``home/models/ACTIVE``. Each worker runs
:meth:`ServingState.sync_once` every ``sync_interval_seconds``: it notices a
newly activated model, a new thresholds version, events other workers stored
(and applies them with ``Recommender.observe``), erasures other workers made
(``Recommender.forget``) and consent changes.

Every one of those changes also invalidates the worker's cache of finished
answers (``results``, :mod:`api.result_cache`), after the model has changed:
a customer's events, consent change or erasure drop that customer's entries,
a model swap or a new thresholds version drop all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import polars as pl
from sqlalchemy import delete, func, select

from api import metrics
from api.logs import get_logger, short_key
from api.result_cache import ResultCache
from fairness.thresholds import ThresholdRepository
from recsys.bundle import ModelRegistry
from recsys.data import schema
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store

if TYPE_CHECKING:
    from explain import Explainer
    from recsys.ranking.policy import ServingPolicy
    from recsys.recommender import Recommender

FORGET_JOB = "forget"
# Erasure notices for other workers live this long in ``jobs``, then are deleted.
FORGET_NOTICE_SECONDS = 120
EVENT_BATCH = 20_000


@dataclass(frozen=True)
class ItemInfo:
    title: str | None
    category: str | None
    price: float | None


@dataclass(frozen=True)
class LoadedModel:
    """One loaded bundle with everything a request needs alongside it."""

    model: Recommender
    manifest: dict[str, Any]
    version: str
    explainer: Explainer
    catalog: dict[str, ItemInfo]
    loaded_at: float
    additivity_seen: list[int] = field(default_factory=lambda: [0])


@dataclass(frozen=True)
class Forgotten:
    """What erasing a customer removed from this worker: live-model state and cached answers."""

    live_model: dict[str, int]
    cached_results: int


@dataclass(frozen=True)
class PolicySnapshot:
    """The thresholds version in force and the serving policy built from it."""

    version: int | None
    policy: ServingPolicy | None


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def build_explainer(model: Recommender, *, sensitive: tuple[str, ...] = ()) -> Explainer:
    """The explainer for ``model``; reason texts never name the ``sensitive`` attributes."""
    from explain import Explainer, ExplainerConfig  # imported on first load: shap is heavy

    # its lookups, TreeSHAP tables and compiled kernel are built now, while loading, not on a request
    return Explainer(model, ExplainerConfig(sensitive=tuple(sensitive))).prepare()


def _catalog(model: Recommender) -> dict[str, ItemInfo]:
    cat = model.stage_.interactions.catalog
    ids = model.stage_.interactions.items.to_list()
    cols = {c: cat[c].to_list() if c in cat.columns else [None] * len(ids) for c in ("title", "category", "price")}
    return {
        i: ItemInfo(t, c, None if p is None else float(p))
        for i, t, c, p in zip(ids, cols["title"], cols["category"], cols["price"], strict=True)
    }


class ServingState:
    """Per-worker serving state. Thread-safe: requests run in a thread pool."""

    def __init__(
        self, *, store: Store, home: Path, pseudonymiser: Pseudonymiser, results: ResultCache | None = None,
        model_threads: int = 1,
    ) -> None:
        self.store = store
        # the thread pool's tokens for computing answers (Settings.model_threads)
        self.model_limiter = anyio.CapacityLimiter(model_threads)
        self.results = results if results is not None else ResultCache(max_entries=0, ttl_seconds=1)
        self.home = Path(home)
        self.registry = ModelRegistry(self.home / "models")
        self.pseudonymise = pseudonymiser
        self.current: LoadedModel | None = None
        self.policy = PolicySnapshot(None, None)
        self.no_consent: frozenset[str] = frozenset()
        self.started_at = time.time()
        self.last_sync: float | None = None
        self.last_sync_error: str | None = None
        self._load_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._events_hwm = 0
        self._applied_locally: set[int] = set()
        self._seen_forgets: set[str] = set()
        self._hwm_lock = threading.RLock()  # held by storing_events() around a whole POST /events

    # -- model ------------------------------------------------------------------------

    def load_active(self, version: str | None = None) -> LoadedModel | None:
        """Load ``version`` (default: the ACTIVE one) and swap it in; None if there is none.

        After loading: customers the store no longer has are forgotten (a model
        trained before an erasure must not bring the customer back), and
        events stored after the model's training data are replayed.
        """
        with self._load_lock:
            version = version or self.registry.active_version()
            if version is None:
                return None
            if self.current is not None and self.current.version == version:
                return self.current
            started = time.perf_counter()
            model, manifest = self.registry.load(version)
            loaded = LoadedModel(
                model=model,
                manifest=manifest,
                version=version,
                explainer=build_explainer(model, sensitive=self.store.sensitive_attributes()),
                catalog=_catalog(model),
                loaded_at=time.time(),
            )
            with self._hwm_lock:
                hwm = self._max_event_id()
                forgotten = self._reconcile(loaded)
                replayed = self._replay_since_training(loaded, hwm)
                self._events_hwm = hwm
                self._applied_locally.clear()
            self.current = loaded
            self.results.clear()
            metrics.MODEL_SWAPS.inc()
            metrics.MODEL_LOADED.set(loaded.loaded_at)
            get_logger().info(
                "model loaded",
                extra={
                    "model_version": version, "seconds": round(time.perf_counter() - started, 3),
                    "forgotten_customers": forgotten, "replayed_events": replayed,
                },
            )
            return loaded

    def _max_event_id(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(schema.events.c.id), 0))).scalar_one())

    def _reconcile(self, loaded: LoadedModel) -> int:
        model = loaded.model
        with self.store.engine.connect() as conn:
            known = set(conn.execute(select(schema.customers.c.customer_key)).scalars())
        gone = [c for c in model.stage_.interactions.customers.to_list() if c not in known]
        for key in gone:
            model.forget(key)
        return len(gone)

    def _replay_since_training(self, loaded: LoadedModel, hwm: int) -> int:
        """Apply stored events newer than the bundle's training data (by timestamp)."""
        last_ts = (loaded.manifest.get("data") or {}).get("last_ts")
        if last_ts is None:
            return 0
        e = schema.events
        q = (
            select(e.c.id, e.c.customer_key, e.c.item_id, e.c.event_type, e.c.ts, e.c.value)
            .where(e.c.ts > int(last_ts), e.c.id <= hwm)
            .order_by(e.c.id)
        )
        return self._observe_rows(loaded, self.store.read_frame(q, _EVENT_SCHEMA))

    def _observe_rows(self, loaded: LoadedModel, rows: pl.DataFrame) -> int:
        if rows.height == 0:
            return 0
        no_consent, catalog = self.no_consent, loaded.catalog
        # membership tested in Python: the rows are few, the catalog may hold 100k items
        keep = [k not in no_consent and i in catalog for k, i in zip(rows["customer_key"], rows["item_id"], strict=True)]
        rows = rows.filter(pl.Series(keep, dtype=pl.Boolean))
        n = 0
        for (key,), part in rows.group_by("customer_key", maintain_order=True):
            loaded.model.observe(str(key), part.select("item_id", "event_type", "ts", "value"))
            self.results.invalidate(str(key))
            n += part.height
        return n

    @contextmanager
    def storing_events(self) -> Iterator[None]:
        """Hold off this worker's sync from pulling events while a batch is stored and applied locally.

        Without it the sync could pull a batch between its commit and
        :meth:`observe_local` (which marks its ids as applied here) and apply
        it a second time. Wrap the storing transaction and the
        :meth:`observe_local` calls in it.
        """
        with self._hwm_lock:
            yield

    def observe_local(self, customer_key: str, rows: pl.DataFrame, event_ids: list[int]) -> int:
        """Apply events this worker just stored; the sync loop will skip their ids (call it
        within :meth:`storing_events`, the same block as the transaction that stored them)."""
        loaded = self.current
        with self._hwm_lock:
            self._applied_locally.update(event_ids)
        if loaded is None or customer_key in self.no_consent:
            return 0
        return self._observe_rows(loaded, rows.with_columns(pl.lit(customer_key).alias("customer_key")))

    def forget_local(self, customer_key: str) -> Forgotten:
        """Remove the customer from this worker's live model, then their cached answers."""
        loaded = self.current
        model = {} if loaded is None else {k: int(v) for k, v in dict(loaded.model.forget(customer_key)).items()}
        return Forgotten(live_model=model, cached_results=self.results.invalidate(customer_key))

    def notify_forget(self, customer_key: str) -> None:
        """Tell the other workers to forget ``customer_key`` (a short-lived row in ``jobs``)."""
        import uuid

        job_id = f"forget-{uuid.uuid4().hex}"
        self._seen_forgets.add(job_id)
        now = _utcnow()
        with self.store.transaction() as conn:
            conn.execute(
                schema.jobs.insert().values(
                    id=job_id, kind=FORGET_JOB, status="queued", created_at=now,
                    detail={"customer_key": customer_key}, error=None,
                )
            )

    # -- thresholds -------------------------------------------------------------------

    def refresh_policy(self) -> PolicySnapshot:
        current = ThresholdRepository(self.store).current()
        if current.version == self.policy.version:
            return self.policy
        policy = current.settings.policy.serving_policy()
        self.policy = PolicySnapshot(current.version, None if policy.is_identity else policy)
        self.results.clear()
        get_logger().info("thresholds in force", extra={"thresholds_version": current.version})
        return self.policy

    # -- consent ----------------------------------------------------------------------

    def refresh_consent(self) -> None:
        c = schema.customers
        with self.store.engine.connect() as conn:
            keys = frozenset(
                conn.execute(select(c.c.customer_key).where(c.c.consent_personalisation.is_(False))).scalars()
            )
        changed = keys ^ self.no_consent
        self.no_consent = keys
        if changed:
            self.results.invalidate_many(changed)

    def set_consent_local(self, customer_key: str, value: bool) -> None:
        if value:
            self.no_consent = self.no_consent - {customer_key}
        else:
            self.no_consent = self.no_consent | {customer_key}
        self.results.invalidate(customer_key)

    # -- periodic sync ----------------------------------------------------------------

    def sync_once(self) -> dict[str, Any]:
        """One round of the checks described in the module docstring (blocking)."""
        if not self._sync_lock.acquire(blocking=False):
            return {"skipped": True}
        try:
            out: dict[str, Any] = {}
            active = self.registry.active_version()
            if active is not None and (self.current is None or self.current.version != active):
                self.load_active(active)
                out["model"] = active
            self.refresh_policy()
            self.refresh_consent()
            out["events"] = self._pull_events()
            out["forgets"] = self._pull_forgets()
            self.last_sync = time.time()
            self.last_sync_error = None
            return out
        except Exception as exc:
            metrics.SYNC_ERRORS.inc()
            self.last_sync_error = f"{exc.__class__.__name__}: {exc}"
            get_logger().warning("sync failed", extra={"error": self.last_sync_error})
            return {"error": self.last_sync_error}
        finally:
            self._sync_lock.release()

    def _pull_events(self) -> int:
        loaded = self.current
        if loaded is None:
            return 0
        e = schema.events
        with self._hwm_lock:
            hwm = self._events_hwm
            q = (
                select(e.c.id, e.c.customer_key, e.c.item_id, e.c.event_type, e.c.ts, e.c.value)
                .where(e.c.id > hwm)
                .order_by(e.c.id)
                .limit(EVENT_BATCH)
            )
            rows = self.store.read_frame(q, _EVENT_SCHEMA)
            if rows.height == 0:
                return 0
            new_hwm = int(rows["id"].max())  # type: ignore[arg-type]
            mine = self._applied_locally
            rows = rows.filter(~pl.col("id").is_in(list(mine))) if mine else rows
            self._applied_locally = {i for i in mine if i > new_hwm}
            self._events_hwm = new_hwm
        return self._observe_rows(loaded, rows)

    def _pull_forgets(self) -> int:
        j = schema.jobs
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(j.c.id, j.c.detail, j.c.created_at).where(j.c.kind == FORGET_JOB)).all()
        n = 0
        for row in rows:
            if row.id in self._seen_forgets:
                continue
            self._seen_forgets.add(row.id)
            key = (row.detail or {}).get("customer_key")
            if key:
                self.forget_local(str(key))
                n += 1
                get_logger().info("customer forgotten (notice from another worker)", extra={"customer": short_key(key)})
        cutoff = _utcnow() - timedelta(seconds=FORGET_NOTICE_SECONDS)
        if any(r.created_at < cutoff for r in rows):
            with self.store.transaction() as conn:
                conn.execute(delete(j).where(j.c.kind == FORGET_JOB, j.c.created_at < cutoff))
        return n


_EVENT_SCHEMA = {
    "id": pl.Int64, "customer_key": pl.Utf8, "item_id": pl.Utf8, "event_type": pl.Utf8,
    "ts": pl.Int64, "value": pl.Float64,
}
