"""Keyed pseudonyms for customer ids.

External customer ids are replaced at ingestion by ``HMAC-SHA256(key, id)`` in
lower-case hex (64 characters). The same id and key always give the same
pseudonym, so the service can look a customer up by the id the retailer sends,
but without the key a pseudonym cannot be linked back to the id. Raw ids are
never stored, logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl


class Pseudonymiser:
    """Maps external customer ids to stable pseudonyms with a secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes long")
        self._key = key

    def __call__(self, external_id: str) -> str:
        return hmac.new(self._key, str(external_id).encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=***)"

    def series(self, ids: pl.Series) -> pl.Series:
        """Pseudonymise a column; each distinct id is hashed once."""
        ids = ids.cast(pl.Utf8)
        uniques = ids.unique().drop_nulls()
        mapping = pl.DataFrame(
            {"_raw": uniques, "_key": [self(v) for v in uniques.to_list()]},
            schema={"_raw": pl.Utf8, "_key": pl.Utf8},
        )
        out = pl.DataFrame({"_raw": ids}).join(mapping, on="_raw", how="left", maintain_order="left")
        return out["_key"].alias(ids.name)
