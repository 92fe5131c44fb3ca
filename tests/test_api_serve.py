"""A real ``clearshelf serve --workers 2`` process over HTTP: serving, hot swap under load, sync across workers."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_api_support import World, build_world, env_for, free_port

CLEARSHELF = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "clearshelf")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("serve")
    return build_world(home, f"sqlite:///{home / 'clearshelf.db'}")


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    port = free_port()
    log = (world.home / "server.log").open("w")
    proc = subprocess.Popen(
        [CLEARSHELF, "serve", "--port", str(port), "--workers", "2"],
        env=env_for(world, CLEARSHELF_LOG_LEVEL="info"), stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        pids: set[int] = set()
        while time.monotonic() < deadline and len(pids) < 2:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {(world.home / 'server.log').read_text()[-3000:]}")
            try:
                r = httpx.get(base + "/readyz", timeout=2, headers={"Connection": "close"})
                if r.status_code == 200:
                    pids.add(r.json()["pid"])
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if len(pids) < 2:
            pytest.fail("both workers did not become ready within 90 s:\n" + (world.home / "server.log").read_text()[-3000:])
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def worker_versions(base: str, tries: int = 12) -> dict[int, str]:
    """pid -> loaded model version, over fresh connections (each may land on either worker)."""
    out: dict[int, str] = {}
    for _ in range(tries):
        r = httpx.get(base + "/readyz", headers={"Connection": "close"}, timeout=5).json()
        out[r["pid"]] = r["model"]["version"]
    return out


def test_serves_recommendations_and_problems_over_http(server: str, world: World) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        r = c.get("/recommendations", params={"customer_id": world.customers[2], "k": 3})
        assert r.status_code == 200 and r.json()["customer_status"] == "known" and len(r.json()["items"]) == 3
        assert r.headers["x-request-id"]
        bad = c.get("/recommendations", params={"customer_id": "x", "k": "lots"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert c.get("/admin/models").status_code == 401
        assert c.get("/admin/models", headers={"X-API-Key": world.admin}).status_code == 200


def test_hot_swap_under_20_request_loops_fails_no_request(server: str, world: World) -> None:
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def loop(n: int) -> None:
        with httpx.Client(base_url=server, timeout=30) as c:
            i = 0
            while not stop.is_set():
                customer = world.customers[(n * 7 + i) % 200]
                try:
                    r = c.get("/recommendations", params={"customer_id": customer, "k": 5,
                                                          "explain": "true" if i % 2 else "false"})
                    row = (r.status_code, r.json().get("model_version") if r.status_code == 200 else r.text[:200])
                except httpx.HTTPError as exc:
                    row = (0, repr(exc))
                with lock:
                    results.append(row)
                i += 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    old, new = world.versions
    try:
        with httpx.Client(base_url=server, headers={"X-API-Key": world.admin}, timeout=60) as admin:
            for target in (old, new, old, new):
                time.sleep(1.0)
                r = admin.post(f"/admin/models/{target}/activate")
                assert r.status_code == 200, r.text
                started = time.monotonic()
                while set(worker_versions(server).values()) != {target}:
                    # a generous bound, not a speed figure: each worker polls every 2 s and then loads
                    # the bundle, which on a busy machine took 5-6 s; the requirement is zero failures
                    assert time.monotonic() - started < 30.0, "a worker did not pick up the new model within 30 s"
                    time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    codes = Counter(code for code, _ in results)
    assert codes[200] == len(results) > 100, (codes, [r for r in results if r[0] != 200][:5])
    assert {v for _, v in results} == {old, new}


def test_a_threshold_change_reaches_every_worker_within_5_s(server: str, world: World) -> None:
    admin = {"X-API-Key": world.admin}
    current = httpx.get(server + "/admin/thresholds", headers=admin, timeout=10).json()
    settings = {**current["settings"], "policy": {"min_score": None, "rerank_strength": 0.3}}
    r = httpx.put(server + "/admin/thresholds", json={"settings": settings, "note": "serve test"}, headers=admin,
                  timeout=10)
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    started = time.monotonic()
    while True:
        seen = {}
        for _ in range(12):
            body = httpx.get(server + "/readyz", headers={"Connection": "close"}, timeout=5).json()
            seen[body["pid"]] = body["thresholds_version"]
        if len(seen) == 2 and set(seen.values()) == {version}:
            break
        assert time.monotonic() - started < 5.0, seen
        time.sleep(0.1)
    listed = httpx.get(server + "/recommendations", params={"customer_id": world.customers[3]}, timeout=10).json()
    assert listed["thresholds_version"] == version


def _listed(c: httpx.Client, customer: str) -> list[str]:
    return [i["item_id"] for i in c.get("/recommendations", params={"customer_id": customer, "explain": "false"}).json()["items"]]


def test_events_and_erasure_reach_every_worker(server: str, world: World) -> None:
    # For a few customers these events leave the top 10 as it was (ties in build_world's
    # activity order decide which customer sits at a given index), so take the first of
    # several whose list the worker that took the events changes; one connection, one worker.
    with httpx.Client(base_url=server, timeout=10) as c:
        for customer in world.customers[60:70]:
            export = c.get(f"/customers/{customer}/export", headers={"X-API-Key": world.privacy}).json()
            had = {e["item_id"] for e in export["events"]}
            fresh = [i for i in world.items if i not in had][-5:]
            before = _listed(c, customer)
            events = [{"customer_id": customer, "item_id": i, "event_id": f"http-{customer}-{n}"}
                      for n, i in enumerate(fresh * 4)]
            assert c.post("/events", json={"events": events}).json()["accepted"] == len(events)
            if _listed(c, customer) != before:
                break
        else:
            pytest.fail("the events changed none of ten customers' lists in the worker that took them")
    # the other worker syncs every 0.5 s: poll (12 fresh connections reach both workers) until both
    # give the updated list, for at most 8 s; a worker that never converges fails below
    deadline = time.monotonic() + 8.0
    while True:
        time.sleep(0.5)
        lists, versions = set(), set()
        for _ in range(12):
            r = httpx.get(server + "/recommendations", params={"customer_id": customer, "explain": "false"},
                          headers={"Connection": "close"}, timeout=10)
            lists.add(tuple(i["item_id"] for i in r.json()["items"]))
            versions.add(r.json()["model_version"])
        if (len(lists) == 1 and tuple(before) not in lists) or time.monotonic() > deadline:
            break
    assert tuple(before) not in lists, lists
    assert len(lists) == 1, (lists, versions)  # both workers give the same updated list
    r = httpx.delete(f"{server}/customers/{customer}", headers={"X-API-Key": world.privacy}, timeout=10)
    assert r.status_code == 200 and r.json()["found"]
    time.sleep(1.5)
    statuses = {httpx.get(server + "/recommendations", params={"customer_id": customer},
                          headers={"Connection": "close"}, timeout=10).json()["customer_status"] for _ in range(12)}
    assert statuses == {"cold_start"}


def test_a_pool_of_connections_opened_at_once_spreads_over_both_workers(server: str) -> None:
    """Each worker accepts from its own SO_REUSEPORT socket, so the kernel spreads new connections
    by their ports. 32 connections opened in a burst wait in the accept queue together; from one
    shared socket the first worker to wake took them all (32 to 0 in a benchmark)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    url = urlsplit(server)
    conns = [http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10) for _ in range(32)]
    try:
        for c in conns:  # the kernel completes each handshake; nobody has accepted yet
            c.connect()

        def pid(c: http.client.HTTPConnection) -> int:
            c.request("GET", "/readyz")
            return int(json.loads(c.getresponse().read())["pid"])

        pids = [pid(c) for c in conns]
        again = [pid(c) for c in conns]  # kept alive: the same connection stays on its worker
    finally:
        for c in conns:
            c.close()
    assert again == pids
    per_worker = Counter(pids)
    # a fair coin per connection: fewer than 4 of 32 on a worker has probability 1e-5
    assert len(per_worker) == 2 and min(per_worker.values()) >= 4, per_worker


def test_metrics_are_aggregated_over_workers(server: str) -> None:
    text = httpx.get(server + "/metrics", timeout=10).text
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("clearshelf_recommendations_served_total"))
    assert served > 100  # the hot-swap test's requests, answered by both workers
    assert 'clearshelf_model_loaded_timestamp_seconds{pid="' in text
