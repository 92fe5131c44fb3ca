"""``GET /recommendations``: a ranked list with reasons and attributions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api import metrics
from api.deps import ModelDep, PublicDep, StateDep
from api.logs import short_key
from recsys.recommender import Filters

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


class RecommendedItem(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    price: float | None
    rank: int
    score: float
    sources: list[str]
    reason: dict[str, Any] | None = None
    attributions: dict[str, Any] | None = None


class RecommendationsOut(BaseModel):
    request_id: str
    model_version: str
    thresholds_version: int | None
    customer_status: Literal["known", "cold_start", "not_personalised"]
    items: list[RecommendedItem]


@router.get("", response_model=RecommendationsOut)
def recommendations(
    request: Request,
    state: StateDep,
    loaded: ModelDep,
    _access: PublicDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=256, description="The customer's id as the retailer knows it.")],
    k: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    category: Annotated[str | None, Query(max_length=200, description="Only items of this category.")] = None,
    max_price: Annotated[float | None, Query(ge=0, description="Only items at or below this price.")] = None,
    explain: Annotated[bool, Query(description="Add a reason and SHAP attributions to every item.")] = True,
) -> dict[str, Any]:
    """Top-``k`` items for a customer. Unknown customers get popular items (``cold_start``), not an error;
    customers without personalisation consent get the non-personalised list."""
    key = state.pseudonymise(customer_id)
    request.scope.setdefault("state", {})["customer"] = short_key(key)
    policy = state.policy
    ranked = loaded.model.recommend(
        key, k, filters=Filters(category=category, max_price=max_price),
        personalise=key not in state.no_consent, policy=policy.policy,
    )
    explanations: tuple[Any, ...] = ()
    explainer = loaded.explainer
    if explain and ranked.items:
        explanations = explainer.explain(ranked)
        failures = explainer.additivity_failures
        seen = loaded.additivity_seen
        if failures > seen[0]:
            metrics.ADDITIVITY_FAILURES.inc(failures - seen[0])
            seen[0] = failures
    metrics.RECOMMENDATIONS.labels(ranked.status).inc()
    items = []
    for n, it in enumerate(ranked.items):
        info = loaded.catalog.get(it.item_id)
        row: dict[str, Any] = {
            "item_id": it.item_id,
            "title": info.title if info else None,
            "category": info.category if info else None,
            "price": info.price if info else None,
            "rank": it.rank,
            "score": it.score,
            "sources": list(it.sources),
            "reason": None,
            "attributions": None,
        }
        if n < len(explanations):
            row.update(explanations[n].as_dict())
        items.append(row)
    rid = request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
    return {
        "request_id": rid,
        "model_version": ranked.model_version,
        "thresholds_version": policy.version,
        "customer_status": ranked.status,
        "items": items,
    }
