"""``GET /recommendations``: a ranked list with reasons and attributions.

Answers are kept in the worker's result cache (:mod:`api.result_cache`) as
serialised JSON without their request id; a repeated request is answered from
there with a fresh request id, without the model or the explainer.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from api import metrics
from api.deps import ModelDep, PublicDep, StateDep
from api.logs import short_key
from api.result_cache import AnswerKey, CachedAnswer
from recsys.recommender import Filters

if TYPE_CHECKING:
    from api.state import LoadedModel
    from recsys.ranking.policy import ServingPolicy

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
async def recommendations(
    request: Request,
    state: StateDep,
    loaded: ModelDep,
    _access: PublicDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=256, description="The customer's id as the retailer knows it.")],
    k: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    category: Annotated[str | None, Query(max_length=200, description="Only items of this category.")] = None,
    max_price: Annotated[float | None, Query(ge=0, description="Only items at or below this price.")] = None,
    explain: Annotated[bool, Query(description="Add a reason and SHAP attributions to every item.")] = True,
) -> Response:
    """Top-``k`` items for a customer. Unknown customers get popular items (``cold_start``), not an error;
    customers without personalisation consent get the non-personalised list."""
    key = state.pseudonymise(customer_id)
    scope_state = request.scope.setdefault("state", {})
    scope_state["customer"] = short_key(key)
    request_id = scope_state.get("request_id") or uuid.uuid4().hex
    results = state.results
    generation = results.generation()  # before reading the policy, consent and the model's live state
    policy = state.policy
    personalise = key not in state.no_consent
    cache_key = AnswerKey(key, k, category, max_price, explain, personalise, loaded.version, policy.version)
    answer = results.get(cache_key)
    if answer is not None:
        metrics.RESULT_CACHE_HITS.inc()
    else:
        if results.enabled:
            metrics.RESULT_CACHE_MISSES.inc()
        # the model's work runs in the thread pool; a cached answer is served without that hop
        answer = await anyio.to_thread.run_sync(
            partial(_answer, loaded, key, k, Filters(category=category, max_price=max_price), explain=explain,
                    personalise=personalise, policy=policy.policy, thresholds_version=policy.version),
            limiter=state.model_limiter,
        )
        if state.current is loaded:  # not swapped out meanwhile (the generation covers everything else)
            results.put(cache_key, answer, generation=generation)
            metrics.RESULT_CACHE_BYTES.set(results.bytes)
    metrics.RECOMMENDATIONS.labels(answer.status).inc()
    return Response(b'{"request_id":' + json.dumps(request_id).encode() + b"," + answer.body,
                    media_type="application/json")


def _answer(
    loaded: LoadedModel, key: str, k: int, filters: Filters, *, explain: bool, personalise: bool,
    policy: ServingPolicy | None, thresholds_version: int | None,
) -> CachedAnswer:
    """The answer as :class:`RecommendationsOut` JSON without ``request_id`` (the object after its ``{``)."""
    ranked = loaded.model.recommend(
        key, k, filters=filters, personalise=personalise, policy=policy, explainable=explain
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
    payload = {
        "model_version": ranked.model_version,
        "thresholds_version": thresholds_version,
        "customer_status": ranked.status,
        "items": items,
    }
    # as Starlette's JSONResponse renders; the route puts the request id in front
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return CachedAnswer(status=ranked.status, body=text[1:].encode())
