from __future__ import annotations

import hashlib
import hmac

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.data.pseudonym import Pseudonymiser


def test_pseudonym_is_keyed_hmac_sha256() -> None:
    p = Pseudonymiser(b"k" * 32)
    expected = hmac.new(b"k" * 32, b"customer-42", hashlib.sha256).hexdigest()
    assert p("customer-42") == expected
    assert len(expected) == 64


def test_same_id_same_pseudonym_other_key_other_pseudonym() -> None:
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert a("x") == a("x")
    assert a("x") != b("x")
    assert a("x") != a("y")


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymiser(b"short")


def test_repr_never_shows_key() -> None:
    assert "secret" not in repr(Pseudonymiser(b"secret-secret-secret"))


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30))
def test_series_matches_scalar_and_keeps_order(ids: list[str]) -> None:
    p = Pseudonymiser(b"0123456789abcdef")
    out = p.series(pl.Series("customer_id", ids))
    assert out.to_list() == [p(i) for i in ids]
    assert out.name == "customer_id"
