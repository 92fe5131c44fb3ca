"""API keys: creation, hashing, verification and the role checks of the routes.

A key looks like ``cs_<key_id>_<secret>``. Only ``sha256(key)`` is stored (in
``api_keys``); the key itself is shown once when created. Keys are long random
tokens, so a fast hash is enough (no password stretching needed). Verified
keys are cached for a few seconds per worker, so a revocation takes effect
within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from sqlalchemy import select, update

from recsys.data import schema
from recsys.data.store import Store

Role = Literal["admin", "privacy", "reader"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
KEY_PREFIX: Final = "cs_"
CACHE_SECONDS: Final = 10.0
LAST_USED_EVERY: Final = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's public id, its role and name."""

    key_id: str
    role: Role
    name: str | None = None


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once, never stored
    principal: Principal
    created_at: datetime


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_key(store: Store, *, role: str, name: str | None = None) -> CreatedKey:
    """Create and store (as a hash) a new key with ``role``; returns the key once."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    now = _now()
    with store.transaction() as conn:
        conn.execute(
            schema.api_keys.insert().values(
                key_id=key_id, name=name, role=role, key_hash=hash_key(key), created_at=now
            )
        )
        conn.execute(
            schema.admin_audit_log.insert().values(
                at=now, key_id=None, action="key.create", target=f"key:{key_id}",
                detail={"role": role, "name": name, "via": "cli"},
            )
        )
    return CreatedKey(key, Principal(key_id, role, name), now)  # type: ignore[arg-type]


def revoke_key(store: Store, key_id: str, *, actor: str | None = None) -> bool:
    """Revoke ``key_id``; False if there is no such active key."""
    now = _now()
    t = schema.api_keys
    with store.transaction() as conn:
        n = conn.execute(
            update(t).where(t.c.key_id == key_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        if n:
            conn.execute(
                schema.admin_audit_log.insert().values(
                    at=now, key_id=actor, action="key.revoke", target=f"key:{key_id}", detail={}
                )
            )
    return bool(n)


def list_keys(store: Store) -> list[dict[str, object]]:
    t = schema.api_keys
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.c.key_id, t.c.name, t.c.role, t.c.created_at, t.c.revoked_at, t.c.last_used_at).order_by(
                t.c.created_at
            )
        ).mappings().all()
    return [dict(r) for r in rows]


class KeyVerifier:
    """Checks presented keys against the stored hashes, with a short per-worker cache."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, key: str) -> Principal | None:
        """The key's principal, or None if the key is unknown, malformed or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            principal = self._lookup(key, digest)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (principal, now + CACHE_SECONDS)
        if principal is not None:
            self._touch(principal.key_id, now)
        return principal

    def _lookup(self, key: str, digest: str) -> Principal | None:
        key_id = key[len(KEY_PREFIX):].split("_", 1)[0]
        t = schema.api_keys
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(t.c.key_id, t.c.role, t.c.name, t.c.key_hash, t.c.revoked_at).where(t.c.key_id == key_id)
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, digest):
            return None
        return Principal(row.key_id, row.role, row.name)

    def _touch(self, key_id: str, now: float) -> None:
        if now - self._last_used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_used[key_id] = now
        t = schema.api_keys
        try:
            with self.store.transaction() as conn:
                conn.execute(update(t).where(t.c.key_id == key_id).values(last_used_at=_now()))
        except Exception:  # bookkeeping only: never fail a request over it
            pass
