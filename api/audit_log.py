"""The admin audit log: who changed what, when (``admin_audit_log``; never a raw customer id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from api.auth import Principal
from recsys.data import schema
from recsys.data.store import Store


def record(
    store: Store | None,
    *,
    principal: Principal | None,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    conn: Connection | None = None,
) -> None:
    """Append one entry (in ``conn``'s transaction when given)."""
    values = {
        "at": datetime.now(UTC).replace(tzinfo=None),
        "key_id": principal.key_id if principal else None,
        "action": action,
        "target": target,
        "detail": detail or {},
    }
    if conn is not None:
        conn.execute(schema.admin_audit_log.insert().values(**values))
        return
    if store is None:
        raise ValueError("record() needs a store or a connection")
    with store.transaction() as c:
        c.execute(schema.admin_audit_log.insert().values(**values))


def entries(
    store: Store, *, limit: int = 100, before_id: int | None = None, action: str | None = None
) -> list[dict[str, Any]]:
    t = schema.admin_audit_log
    q = select(t.c.id, t.c.at, t.c.key_id, t.c.action, t.c.target, t.c.detail).order_by(t.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(t.c.id < before_id)
    if action is not None:
        q = q.where(t.c.action == action)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
