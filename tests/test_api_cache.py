"""The per-worker result cache of GET /recommendations, through the ASGI client on a real store and model.

Two apps with the cache on stand for two workers of one service (same store, same
home); a third with the cache off computes every answer and is the reference. The
background sync loop is slowed right down so the tests run each worker's sync
explicitly, as the loop would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.result_cache import AnswerKey, CachedAnswer, ResultCache
from api.state import ServingState
from tests.test_api_support import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("api-cache")
    return build_world(home, f"sqlite:///{home / 'clearshelf.db'}")


def _client(world: World, **settings: Any) -> Iterator[TestClient]:
    app = create_app(world.with_settings(sync_interval_seconds=60, **settings))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def a(world: World) -> Iterator[TestClient]:
    yield from _client(world)


@pytest.fixture(scope="module")
def b(world: World) -> Iterator[TestClient]:
    yield from _client(world)


@pytest.fixture(scope="module")
def off(world: World) -> Iterator[TestClient]:
    yield from _client(world, result_cache=False)


def H(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def state(client: TestClient) -> ServingState:
    return client.app.state.serving  # type: ignore[attr-defined,no-any-return]


def sync(*clients: TestClient) -> None:
    """One full sync round in each worker, started after everything before this call."""
    for c in clients:
        while state(c).sync_once().get("skipped"):
            time.sleep(0.01)  # a round already running may predate our change: run our own


def get(client: TestClient, customer: str, **params: Any) -> dict[str, Any]:
    r = client.get("/recommendations", params={"customer_id": customer, **params})
    assert r.status_code == 200, r.text
    return r.json()


def answer(client: TestClient, customer: str, **params: Any) -> dict[str, Any]:
    """The answer without its request id (the only part that differs between equal answers)."""
    body = get(client, customer, **params)
    body.pop("request_id")
    return body


def counter(client: TestClient, name: str) -> float:
    m = re.search(rf"^{name}_total (\S+)$", client.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


PARAMS: list[dict[str, Any]] = [
    {"k": 5},
    {"k": 10, "explain": "false"},
    {"k": 3, "category": "Dairy"},
    {"k": 4, "max_price": 20.0, "explain": "false"},
]


@pytest.mark.parametrize("params", PARAMS)
def test_a_cached_answer_equals_the_uncached_one(a: TestClient, off: TestClient, world: World,
                                                 params: dict[str, Any]) -> None:
    for customer in (world.customers[1], world.customers[40], "cache-cold-start-shopper"):
        hits = counter(a, "clearshelf_recommendation_cache_hits")
        first, second = get(a, customer, **params), get(a, customer, **params)
        assert counter(a, "clearshelf_recommendation_cache_hits") == hits + 1
        assert first["request_id"] != second["request_id"]  # fresh per request, never cached
        reference = answer(off, customer, **params)
        first.pop("request_id"), second.pop("request_id")
        assert first == second == reference


def test_the_request_id_is_the_callers_on_a_hit_too(a: TestClient, world: World) -> None:
    get(a, world.customers[2])
    r = a.get("/recommendations", params={"customer_id": world.customers[2]}, headers={"X-Request-ID": "mine-1"})
    assert r.json()["request_id"] == "mine-1" and r.headers["x-request-id"] == "mine-1"


def test_every_parameter_is_part_of_the_key(a: TestClient, world: World) -> None:
    customer = world.customers[3]
    bodies = [answer(a, customer, **p) for p in PARAMS]
    assert all(len(b["items"]) == p["k"] or p.get("category") or p.get("max_price")
               for b, p in zip(bodies, PARAMS, strict=True))
    assert answer(a, customer, k=5)["items"][0]["attributions"] is not None
    assert answer(a, customer, k=5, explain="false")["items"][0]["attributions"] is None


def test_new_events_change_the_next_answer_in_every_worker(a: TestClient, b: TestClient, off: TestClient,
                                                           world: World) -> None:
    customer = world.customers[60]
    before_a, before_b = answer(a, customer, k=10), answer(b, customer, k=10)
    assert before_a == before_b == answer(a, customer, k=10)  # cached in both workers now
    had = {e["item_id"] for e in a.get(f"/customers/{customer}/export", headers=H(world.privacy)).json()["events"]}
    new_items = [i for i in world.items if i not in had][-6:]
    events = [{"customer_id": customer, "item_id": i, "event_id": f"cache-{customer}-{n}"}
              for n, i in enumerate(new_items * 3)]
    r = a.post("/events", json={"events": events})
    assert r.status_code == 200 and r.json()["applied_to_model"] == len(events)
    after_a = answer(a, customer, k=10)  # the worker that took the events: at once
    assert after_a["items"] != before_a["items"]
    sync(b, off)  # the other worker learns the events from the store and drops its entries
    assert answer(b, customer, k=10) == after_a == answer(off, customer, k=10)


def test_consent_withdrawn_is_non_personalised_at_once_and_in_every_worker(
    a: TestClient, b: TestClient, world: World
) -> None:
    customer, key = world.customers[61], world.key_of(world.customers[61])
    assert answer(a, customer)["customer_status"] == answer(b, customer)["customer_status"] == "known"
    r = a.put(f"/customers/{customer}/consent", json={"personalisation": False}, headers=H(world.privacy))
    assert r.status_code == 200
    assert state(a).results.entries_of(key) == 0  # the personalised answers are dropped, not just unused
    assert answer(a, customer)["customer_status"] == "not_personalised"
    sync(b)
    assert state(b).results.entries_of(key) == 0
    assert answer(b, customer)["customer_status"] == "not_personalised"
    a.put(f"/customers/{customer}/consent", json={"personalisation": True}, headers=H(world.privacy))
    assert answer(a, customer)["customer_status"] == "known"
    sync(b)
    assert answer(b, customer)["customer_status"] == "known"


def test_erasure_removes_cached_answers_in_every_worker(a: TestClient, b: TestClient, world: World) -> None:
    customer = world.customers[62]
    for params in PARAMS[:3]:
        assert answer(a, customer, **params)["customer_status"] == "known"
    answer(b, customer)
    r = a.delete(f"/customers/{customer}", headers=H(world.privacy))
    assert r.status_code == 200, r.text
    assert r.json()["removed"]["cached_results"] == 3
    assert answer(a, customer)["customer_status"] == "cold_start"
    sync(b)
    assert answer(b, customer)["customer_status"] == "cold_start"
    again = a.delete(f"/customers/{customer}", headers=H(world.privacy)).json()
    assert again["found"] is False and again["removed"]["cached_results"] == 1  # the cold-start list since


def test_a_threshold_change_invalidates_every_worker(a: TestClient, b: TestClient, off: TestClient,
                                                     world: World) -> None:
    customer = world.customers[63]
    before = answer(a, customer)
    answer(b, customer)
    start = a.get("/admin/thresholds", headers=H(world.admin)).json()
    proposed = {"policy": {"min_score": None, "rerank_strength": 1.0}, "audit": start["settings"]["audit"]}
    r = a.put("/admin/thresholds", json={"settings": proposed}, headers=H(world.admin))
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    after = answer(a, customer)
    assert after["thresholds_version"] == version != before["thresholds_version"]
    sync(b, off)
    assert answer(b, customer) == after == answer(off, customer)
    a.post("/admin/thresholds/rollback", json={"to_version": start["version"]}, headers=H(world.admin))
    sync(b, off)
    restored = answer(b, customer)
    assert restored["items"] == before["items"] and restored == answer(off, customer)


def test_model_activation_invalidates_every_worker(a: TestClient, b: TestClient, off: TestClient,
                                                   world: World) -> None:
    customer = world.customers[64]
    active, older = world.versions[-1], world.versions[0]
    assert answer(a, customer)["model_version"] == answer(b, customer)["model_version"] == active
    assert a.post(f"/admin/models/{older}/activate", headers=H(world.admin)).status_code == 200
    assert len(state(a).results) == 0
    swapped = answer(a, customer)
    assert swapped["model_version"] == older
    sync(b, off)
    assert answer(b, customer) == swapped == answer(off, customer)
    a.post(f"/admin/models/{active}/activate", headers=H(world.admin))
    sync(b, off)
    assert answer(b, customer)["model_version"] == answer(a, customer)["model_version"] == active


def test_with_the_cache_off_nothing_is_kept(off: TestClient, world: World) -> None:
    hits, misses = (counter(off, f"clearshelf_recommendation_cache_{n}") for n in ("hits", "misses"))
    get(off, world.customers[5]), get(off, world.customers[5])
    assert len(state(off).results) == 0
    assert counter(off, "clearshelf_recommendation_cache_hits") == hits
    assert counter(off, "clearshelf_recommendation_cache_misses") == misses


def test_metrics_count_hits_and_misses(a: TestClient, world: World) -> None:
    hits, misses = (counter(a, f"clearshelf_recommendation_cache_{n}") for n in ("hits", "misses"))
    get(a, "metrics-probe-shopper", k=2), get(a, "metrics-probe-shopper", k=2)
    assert counter(a, "clearshelf_recommendation_cache_misses") == misses + 1
    assert counter(a, "clearshelf_recommendation_cache_hits") == hits + 1


# -- the cache itself --------------------------------------------------------------------


def _key(customer: str, k: int = 10) -> AnswerKey:
    return AnswerKey(customer, k, None, None, True, True, "v1", 0)


def _value(n: int) -> CachedAnswer:
    return CachedAnswer("known", str(n).encode())


def test_entries_expire_after_the_ttl() -> None:
    now = [0.0]
    cache = ResultCache(max_entries=10, ttl_seconds=5, clock=lambda: now[0])
    cache.put(_key("c"), _value(1), generation=cache.generation())
    now[0] = 4.9
    assert cache.get(_key("c")) == _value(1)
    now[0] = 5.0
    assert cache.get(_key("c")) is None and len(cache) == 0


def test_an_answer_computed_across_its_invalidation_is_not_stored() -> None:
    cache = ResultCache(max_entries=10, ttl_seconds=60)
    ticket = cache.generation()
    cache.invalidate("someone-else")  # another customer's change: this answer still holds
    assert cache.put(_key("c"), _value(1), generation=ticket) is True
    ticket = cache.generation()
    cache.invalidate("c")  # the answer may predate this customer's change
    assert cache.put(_key("c"), _value(2), generation=ticket) is False and cache.get(_key("c")) is None
    ticket = cache.generation()
    cache.invalidate_many({"x", "c"})
    assert cache.put(_key("c"), _value(3), generation=ticket) is False
    ticket = cache.generation()
    cache.clear()  # a model swap or new thresholds: every answer may predate it
    assert cache.put(_key("c"), _value(4), generation=ticket) is False
    assert cache.put(_key("c"), _value(5), generation=cache.generation()) is True


def test_an_answer_older_than_the_remembered_invalidations_is_not_stored() -> None:
    from api.result_cache import RECENT_INVALIDATIONS

    cache = ResultCache(max_entries=10, ttl_seconds=60)
    ticket = cache.generation()
    for n in range(RECENT_INVALIDATIONS + 1):
        cache.invalidate(f"other-{n}")
    assert cache.put(_key("c"), _value(1), generation=ticket) is False


OPS = st.lists(
    st.tuples(st.sampled_from(["put", "get", "invalidate", "clear", "late_put"]), st.sampled_from("abcde"),
              st.integers(1, 4)),
    max_size=60,
)


@given(OPS, st.integers(1, 6))
def test_the_cache_matches_a_plain_model_of_it(ops: list[tuple[str, str, int]], size: int) -> None:
    """Bounded LRU with per-customer invalidation, checked against a list of (key, value)."""
    cache = ResultCache(max_entries=size, ttl_seconds=60)
    model: list[tuple[AnswerKey, CachedAnswer]] = []  # least recently used first
    tickets: list[tuple[int, set[str], bool]] = []  # generation, customers invalidated since, cleared since
    for n, (op, customer, k) in enumerate(ops):
        key = _key(customer, k)
        if op in ("invalidate", "clear"):
            for _, since, _cleared in tickets:
                since.add(customer)
            tickets = [(g, s, c or op == "clear") for g, s, c in tickets]
        if op == "late_put":  # an answer whose computation began at an earlier point
            if tickets:
                generation, since, cleared = tickets[k % len(tickets)]
                stored = cache.put(key, _value(n), generation=generation)
                assert stored == (customer not in since and not cleared)
                if stored:
                    model = [(kk, v) for kk, v in model if kk != key] + [(key, _value(n))]
                    model = model[-size:]
            tickets.append((cache.generation(), set(), False))
        elif op == "put":
            assert cache.put(key, _value(n), generation=cache.generation())
            model = [(kk, v) for kk, v in model if kk != key] + [(key, _value(n))]
            model = model[-size:]
        elif op == "get":
            expected = next((v for kk, v in model if kk == key), None)
            assert cache.get(key) == expected
            if expected is not None:
                model = [(kk, v) for kk, v in model if kk != key] + [(key, expected)]
        elif op == "invalidate":
            assert cache.invalidate(customer) == sum(kk.customer == customer for kk, _ in model)
            model = [(kk, v) for kk, v in model if kk.customer != customer]
        else:
            assert cache.clear() == len(model)
            model = []
        assert len(cache) == len(model) <= size


def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    cache = ResultCache(max_entries=100, ttl_seconds=60, max_bytes=12)
    big = CachedAnswer("known", b"x" * 4)
    for c in "abc":
        assert cache.put(_key(c), big, generation=cache.generation())
    assert cache.bytes == 12 and len(cache) == 3
    assert cache.get(_key("a")) == big  # a is now the most recently used: b goes first
    assert cache.put(_key("d"), big, generation=cache.generation())
    assert cache.get(_key("b")) is None and len(cache) == 3 and cache.bytes == 12
    assert cache.put(_key("a"), CachedAnswer("known", b"y"), generation=cache.generation())  # replaced, not added
    assert cache.bytes == 9 and len(cache) == 3
    assert cache.put(_key("e"), CachedAnswer("known", b"z" * 13), generation=cache.generation()) is False
    assert cache.invalidate("a") == 1 and cache.bytes == 8
    assert cache.clear() == 2 and cache.bytes == 0
    with pytest.raises(ValueError, match="max_bytes"):
        ResultCache(max_entries=1, ttl_seconds=1, max_bytes=0)
