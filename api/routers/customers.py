"""Customer data rights: export, consent, erasure (role ``privacy`` or ``admin``).

Paths carry the customer's id as the retailer knows it; it is pseudonymised
at once and never stored, logged or echoed into the audit log.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, select, update

from api import audit_log
from api.deps import PrivacyDep, StateDep, StoreDep
from api.errors import ApiProblem
from api.logs import get_logger, short_key
from api.state import ServingState
from fairness.store import erase_customer as erase_customer_outcomes
from recsys.data import schema
from recsys.data.importer import insert_statement
from recsys.data.store import Store

router = APIRouter(prefix="/customers", tags=["customer data rights"])

CustomerId = Annotated[str, Path(min_length=1, max_length=256, description="The customer's id as the retailer knows it.")]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def _ts_iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(int(ts), UTC).isoformat()


class ConsentIn(BaseModel):
    personalisation: bool = Field(description="May the customer's behaviour personalise their recommendations?")


class ConsentOut(BaseModel):
    personalisation: bool
    updated_at: str


class ErasureReceipt(BaseModel):
    receipt_id: str
    erased_at: str
    found: bool
    removed: dict[str, Any]
    customer_status_after: str


@router.get("/{customer_id}/export")
def export_customer(
    request: Request, state: StateDep, store: StoreDep, principal: PrivacyDep, customer_id: CustomerId
) -> dict[str, Any]:
    """Everything stored about the customer: profile and consent, events, audit outcomes, model state."""
    key = state.pseudonymise(customer_id)
    request.scope.setdefault("state", {})["customer"] = short_key(key)
    c, e, o = schema.customers, schema.events, schema.audit_outcomes
    with store.engine.connect() as conn:
        cust = conn.execute(
            select(c.c.attributes, c.c.consent_personalisation, c.c.consent_updated_at, c.c.created_at).where(
                c.c.customer_key == key
            )
        ).mappings().first()
        events = conn.execute(
            select(e.c.event_id, e.c.item_id, e.c.event_type, e.c.ts, e.c.value).where(e.c.customer_key == key).order_by(e.c.id)
        ).mappings().all()
        outcomes = conn.execute(
            select(o.c.report_id, o.c.outcomes).where(o.c.customer_key == key).order_by(o.c.id)
        ).mappings().all()
    if cust is None and not events and not outcomes:
        raise ApiProblem(404, "Not found", "no data is stored about this customer", slug="unknown-customer")
    loaded = state.current
    model_state: dict[str, Any] = {"model_version": loaded.version if loaded else None, "history_items": 0}
    if loaded is not None:
        model_state["history_items"] = int(loaded.model.history_row(key).nnz)
    sensitive = set(store.sensitive_attributes())
    attrs = dict(cust["attributes"] or {}) if cust else {}
    audit_log.record(store, principal=principal, action="customer.export", target=f"customer:{short_key(key)}",
                     detail={"events": len(events), "audit_outcomes": len(outcomes)})
    return {
        "customer_id": customer_id,
        "profile": None if cust is None else {
            "attributes": attrs,
            "sensitive_attributes": sorted(a for a in attrs if a in sensitive),
            "created_at": _iso(cust["created_at"]),
        },
        "consent": None if cust is None else {
            "personalisation": bool(cust["consent_personalisation"]),
            "updated_at": _iso(cust["consent_updated_at"]),
        },
        "events": [
            {"event_id": r["event_id"], "item_id": r["item_id"], "event_type": r["event_type"],
             "timestamp": _ts_iso(r["ts"]), "value": r["value"]}
            for r in events
        ],
        "audit_outcomes": [{"report_id": r["report_id"], "outcomes": r["outcomes"]} for r in outcomes],
        "live_model": model_state,
    }


@router.put("/{customer_id}/consent", response_model=ConsentOut)
def put_consent(
    request: Request,
    state: StateDep,
    store: StoreDep,
    principal: PrivacyDep,
    customer_id: CustomerId,
    body: Annotated[ConsentIn, Body()],
) -> dict[str, Any]:
    """Record personalisation consent. Without it the customer gets non-personalised lists
    (in every worker within the sync interval) and their events leave the next training."""
    key = state.pseudonymise(customer_id)
    request.scope.setdefault("state", {})["customer"] = short_key(key)
    now = _now()
    c = schema.customers
    with store.transaction() as conn:
        before = conn.execute(select(c.c.consent_personalisation).where(c.c.customer_key == key)).scalar_one_or_none()
        if before is None:
            ins = insert_statement(conn, c)
            conn.execute(ins.values(customer_key=key, attributes={}, consent_personalisation=body.personalisation,
                                    consent_updated_at=now, created_at=now).on_conflict_do_nothing())
        conn.execute(update(c).where(c.c.customer_key == key).values(
            consent_personalisation=body.personalisation, consent_updated_at=now))
        audit_log.record(None, conn=conn, principal=principal, action="customer.consent",
                         target=f"customer:{short_key(key)}",
                         detail={"personalisation": {"old": None if before is None else bool(before),
                                                     "new": body.personalisation}})
    state.set_consent_local(key, body.personalisation)
    return {"personalisation": body.personalisation, "updated_at": _iso(now) or ""}


@router.delete("/{customer_id}", response_model=ErasureReceipt)
def erase_customer(
    request: Request, state: StateDep, store: StoreDep, principal: PrivacyDep, customer_id: CustomerId
) -> dict[str, Any]:
    """Erase the customer: events, attributes, consent record, live-model state and cached
    answers (in every worker) and per-customer audit outcomes. Afterwards they are unknown
    (cold start). Repeating the call is harmless (a receipt with zeros).

    The receipt counts what this worker removed (``live_model``, ``cached_results``); the
    other workers remove theirs within the sync interval, from the notice this call leaves."""
    key = state.pseudonymise(customer_id)
    c, e = schema.customers, schema.events
    with store.transaction() as conn:
        n_events = conn.execute(delete(e).where(e.c.customer_key == key)).rowcount
        n_customers = conn.execute(delete(c).where(c.c.customer_key == key)).rowcount
    outcomes = _erase_outcomes(store, state, key)
    forgotten = state.forget_local(key)
    state.notify_forget(key)
    state.set_consent_local(key, True)
    removed = {
        "events": int(n_events),
        "customer_records": int(n_customers),
        "consent_records": int(n_customers),
        "live_model": forgotten.live_model,
        "cached_results": forgotten.cached_results,
        "audit_outcomes": outcomes,
    }
    found = bool(n_events or n_customers or sum(outcomes.values()) or sum(forgotten.live_model.values()))
    receipt_id = uuid.uuid4().hex
    now = _now()
    audit_log.record(store, principal=principal, action="customer.erase", target=f"receipt:{receipt_id}",
                     detail={"removed": removed, "found": found})
    get_logger().info("customer erased", extra={"receipt_id": receipt_id, "found": found})
    return {
        "receipt_id": receipt_id,
        "erased_at": _iso(now),
        "found": found,
        "removed": removed,
        "customer_status_after": "cold_start",
    }


def _erase_outcomes(store: Store, state: ServingState, key: str) -> dict[str, int]:
    return {k: int(v) for k, v in erase_customer_outcomes(store, state.home, key).items()}


