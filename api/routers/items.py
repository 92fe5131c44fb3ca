"""``GET /items/{item_id}``: one catalog item."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import PublicDep, StateDep, StoreDep
from api.errors import ApiProblem
from recsys.data import schema

router = APIRouter(prefix="/items", tags=["items"])


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    description: str | None
    category: str | None
    brand: str | None
    price: float | None
    active: bool
    attributes: dict[str, Any]
    in_model: bool


@router.get("/{item_id}", response_model=ItemOut)
def get_item(
    state: StateDep,
    store: StoreDep,
    _access: PublicDep,
    item_id: Annotated[str, Path(min_length=1, max_length=128)],
) -> dict[str, Any]:
    """The item as stored; ``in_model`` says whether the loaded model can recommend it."""
    t = schema.items
    with store.engine.connect() as conn:
        row = conn.execute(
            select(t.c.item_id, t.c.title, t.c.description, t.c.category, t.c.brand, t.c.price, t.c.active,
                   t.c.attributes).where(t.c.item_id == item_id)
        ).mappings().first()
    if row is None:
        raise ApiProblem(404, "Not found", f"no item '{item_id}' in the catalog", slug="unknown-item")
    loaded = state.current
    return {**row, "attributes": dict(row["attributes"] or {}), "active": bool(row["active"]),
            "in_model": bool(loaded and item_id in loaded.catalog)}
