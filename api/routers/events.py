"""``POST /events``: new behaviour, stored and applied to the live model without retraining."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Body
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from api import metrics
from api.deps import PublicDep, SettingsDep, StateDep, StoreDep
from api.errors import ApiProblem
from recsys.data import schema
from recsys.data.importer import insert_statement
from recsys.data.validate import Table, validate_events
from recsys.errors import DataValidationError, Problem

router = APIRouter(prefix="/events", tags=["events"])

LABEL = "events"
MAX_EPOCH_NUMBER = 1e15


class EventIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=128)
    event_type: Literal["view", "cart", "purchase", "rating"] = "purchase"
    timestamp: str | int | None = Field(
        default=None, description="ISO-8601 or epoch seconds (UTC); default: when the server receives it."
    )
    value: float | None = Field(default=None, description="Quantity, or the rating for a rating event.")
    event_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Your id for the event: sending it again is a no-op (idempotent).",
    )

    @field_validator("timestamp")
    @classmethod
    def _bounded_epoch(cls, value: str | int | None) -> str | int | None:
        # Numbers beyond int64 would overflow the validator's cast; anything this large is
        # no time at all (epoch milliseconds are far below it and get their own message).
        text = str(value).strip() if value is not None else ""
        if text.lstrip("-").replace(".", "", 1).isdigit() and abs(float(text)) > MAX_EPOCH_NUMBER:
            raise ValueError(f"{text[:20]}... is not a time: use ISO-8601 or epoch seconds (UTC)")
        return value


class EventsIn(BaseModel):
    events: list[EventIn] = Field(min_length=1)


class EventsOut(BaseModel):
    accepted: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events whose event_id was already stored (ignored).")
    customers: int
    new_customers: int
    applied_to_model: int = Field(description="Events applied to this worker's live model right away.")


@router.post("", response_model=EventsOut)
def post_events(
    state: StateDep,
    store: StoreDep,
    settings: SettingsDep,
    _access: PublicDep,
    body: Annotated[EventsIn, Body()],
) -> dict[str, Any]:
    """Store a batch of events (all or nothing) and apply them to the live model.

    Every row is checked first; any problem rejects the whole batch with a 422
    listing each bad row (``index`` into ``events``) and field. Customers the
    store does not know yet are created (personalisation consent on, the store
    default). Events of customers without consent are stored but not applied.
    """
    if len(body.events) > settings.max_events_per_batch:
        raise ApiProblem(
            422, "Invalid request",
            f"body events: {len(body.events):,} events in one batch; send at most "
            f"{settings.max_events_per_batch:,} per request",
            slug="validation",
            extra={"errors": [{"field": "body events", "message": f"at most {settings.max_events_per_batch} events"}]},
        )
    now = int(time.time())
    rows = body.events
    frame = pl.DataFrame(
        {
            "event_id": [e.event_id for e in rows],
            "customer_id": [e.customer_id for e in rows],
            "item_id": [e.item_id for e in rows],
            "event_type": [e.event_type for e in rows],
            "timestamp": [str(now) if e.timestamp is None else str(e.timestamp) for e in rows],
            "value": [e.value for e in rows],
        },
        schema={"event_id": pl.Utf8, "customer_id": pl.Utf8, "item_id": pl.Utf8, "event_type": pl.Utf8,
                "timestamp": pl.Utf8, "value": pl.Float64},
    )
    keys = state.pseudonymise.series(frame["customer_id"])
    wanted_items = sorted(set(frame["item_id"].to_list()))
    with store.engine.connect() as conn:
        known_items = conn.execute(
            select(schema.items.c.item_id).where(schema.items.c.item_id.in_(wanted_items))
        ).scalars().all()
        known_customers = set(
            conn.execute(
                select(schema.customers.c.customer_key).where(schema.customers.c.customer_key.in_(keys.unique().to_list()))
            ).scalars()
        )
    valid, problems, total = validate_events(
        Table(frame, LABEL), item_ids=known_items, customer_keys=keys.unique().to_list(),
        to_key=state.pseudonymise.series,
    )
    future = (
        valid.with_row_index("i").filter(pl.col("ts") > now + 86_400)["i"].to_list() if not problems else []
    )
    for idx in future[:20]:
        problems.append(Problem(LABEL, idx + 1, "timestamp", "is more than a day in the future: send UTC times"))
        total += 1
    if problems:
        raise DataValidationError(
            [Problem(p.file, p.row, p.column, p.message) for p in problems], total=total
        )
    new_customers = sorted(set(valid["customer_key"].to_list()) - known_customers)
    moment = datetime.now(UTC).replace(tzinfo=None)
    e = schema.events
    # committed and applied here in one hold of the sync's lock: a sync in between would apply them twice
    with state.storing_events():
        with store.transaction() as conn:
            if new_customers:
                stmt = insert_statement(conn, schema.customers).on_conflict_do_nothing()
                conn.execute(
                    stmt,
                    [{"customer_key": k, "attributes": {}, "consent_personalisation": True, "created_at": moment}
                     for k in new_customers],
                )
            values = valid.select("event_id", "customer_key", "item_id", "event_type", "ts", "value").to_dicts()
            stmt = insert_statement(conn, e).values(values).on_conflict_do_nothing().returning(
                e.c.id, e.c.customer_key, e.c.item_id, e.c.event_type, e.c.ts, e.c.value
            )
            inserted = conn.execute(stmt).all()
        stored = pl.DataFrame(
            [tuple(r) for r in inserted],
            schema={"id": pl.Int64, "customer_key": pl.Utf8, "item_id": pl.Utf8, "event_type": pl.Utf8,
                    "ts": pl.Int64, "value": pl.Float64},
            orient="row",
        )
        applied = 0
        for (key,), part in stored.group_by("customer_key", maintain_order=True):
            applied += state.observe_local(str(key), part.drop("customer_key"), part["id"].to_list())
    metrics.EVENTS_INGESTED.inc(stored.height)
    return {
        "accepted": stored.height,
        "duplicates": len(values) - stored.height,
        "customers": valid["customer_key"].n_unique(),
        "new_customers": len(new_customers),
        "applied_to_model": applied,
    }
