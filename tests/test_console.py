"""The admin console in a real browser against the real service.

One module-scoped world: a SQLite store under tmp_path with a small demo
world (one popular item retitled ``<script>alert(1)</script>``), two quickly
trained model bundles, two fairness audits with a trade-off sweep, and an
admin key. ``uvicorn`` serves ``api.app:create_app`` from it in a subprocess
on a free loopback port, and Debian's Chromium (headless, driven by
Playwright; never a downloaded browser) walks through every page.

Without ``/usr/bin/chromium`` (or Playwright) the browser tests skip with the
reason, unless ``CLEARSHELF_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then they
fail. Screenshots of every page go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = os.environ.get("CLEARSHELF_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("CLEARSHELF_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
XSS_TITLE = "<script>alert(1)</script>"
PSEUDONYM_KEY = "console-test-pseudonym-key-0123456789"


def _browser_unavailable() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CLEARSHELF_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python is not installed ({exc}); pip install -e '.[dev]'"
    return None


def _need_browser() -> None:
    reason = _browser_unavailable()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(reason + " (CLEARSHELF_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Service:
    url: str
    key: str
    key_id: str
    reader_key: str
    home: Path
    known_customer: str
    known_pseudonym: str
    xss_item: str
    model: str

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers={"X-API-Key": self.key}, timeout=30, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _build_world(home: Path, db_url: str) -> dict[str, Any]:
    from api.auth import create_key
    from fairness.audit import AuditConfig
    from fairness.job import run_audit
    from recsys.data.demo import DemoConfig, generate_demo
    from recsys.data.importer import import_frames
    from recsys.data.pseudonym import Pseudonymiser
    from recsys.data.store import Store
    from recsys.ranking.ranker import RankerConfig
    from recsys.recommender import RecommenderConfig
    from recsys.retrieval.als import AlsConfig
    from recsys.retrieval.ease import EaseConfig
    from recsys.training import train_from_store

    config = RecommenderConfig(
        als=AlsConfig(factors=16, iterations=8),
        ease=EaseConfig(l2=50.0, max_items=2000),
        content=None,
        ranker=RankerConfig(n_estimators=30, min_child_samples=10),
        label_window_days=21.0,
    )
    data = generate_demo(DemoConfig(customers=300, items=120, categories=8, days=120, seed=3))
    purchases = data.events.filter(pl.col("event_type") == "purchase")
    top_item = str(purchases.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])["item_id"][0])
    items = data.items.with_columns(
        pl.when(pl.col("item_id") == top_item).then(pl.lit(XSS_TITLE)).otherwise(pl.col("title")).alias("title")
    )
    pseudonymiser = Pseudonymiser(PSEUDONYM_KEY.encode())
    store = Store.open(db_url)
    try:
        import_frames(store, pseudonymiser, items=items, customers=data.customers, events=data.events,
                      sensitive=data.sensitive)
        counts = data.events.group_by("customer_id").len().sort(["len", "customer_id"], descending=[True, False])
        known = str(counts["customer_id"][len(counts) // 3])
        audit = AuditConfig(sweep=True, sweep_attribute="age_band", recommender=config)
        model = train_from_store(store, home, config=config)
        run_audit(store, home, config=audit)
        created = create_key(store, role="admin", name="console test")
        reader = create_key(store, role="reader", name="console test reader")
    finally:
        store.dispose()
    return {
        "key": created.key, "key_id": created.principal.key_id, "reader_key": reader.key, "known": known,
        "known_pseudonym": pseudonymiser(known), "xss_item": top_item,
        "model": model.version,
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("console-home")
    db_url = f"sqlite:///{home / 'clearshelf.db'}"
    world = _build_world(home, db_url)
    port = _free_port()
    env = {
        **os.environ,
        "CLEARSHELF_HOME": str(home),
        "CLEARSHELF_DATABASE_URL": db_url,
        "CLEARSHELF_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "CLEARSHELF_TRAIN_CONTENT": "false",  # POST /admin/train without the text-embedding model
        "CLEARSHELF_AUDIT_TIME": "",  # no nightly audit during the test
        "OPENBLAS_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    log = (home / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}:\n{(home / 'uvicorn.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready within 60 s:\n{(home / 'uvicorn.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield Service(
            url=url, key=world["key"], key_id=world["key_id"], reader_key=world["reader_key"], home=home,
            known_customer=world["known"], known_pseudonym=world["known_pseudonym"],
            xss_item=world["xss_item"], model=world["model"],
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageWatch:
    """A page plus everything it did that a test should see: JS errors, dialogs, outside requests."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.requests: list[Any] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.on("request", self._request)
        self.origin = origin

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        self.requests.append(request)
        if not (request.url.startswith(self.origin) or request.url.startswith(("data:", "blob:", "about:"))):
            self.foreign.append(request.url)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def console(browser: Any, service: Service) -> Iterator[PageWatch]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch = PageWatch(page, service.url)
    page.goto(service.url + "/admin/console")
    yield watch
    context.close()
    assert not watch.errors, f"JavaScript errors on the console page: {watch.errors}"
    assert not watch.dialogs, f"a dialog fired (injected script ran?): {watch.dialogs}"
    assert not watch.foreign, f"the console fetched from outside the service: {watch.foreign}"


def expect(locator: Any) -> Any:
    # Playwright's own assertions poll from its utility world: unlike
    # wait_for_function they need no eval, which the console's CSP forbids.
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def thresholds(service: Service) -> dict[str, Any]:
    r = service.get("/admin/thresholds")
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- HTTP-level


def test_page_and_assets_are_served_with_a_strict_policy(service: Service) -> None:
    page = httpx.get(service.url + "/admin/console", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "default-src 'none'" in csp
    assert "set-cookie" not in page.headers
    # Nothing is fetched from elsewhere: every src/href in the page is relative.
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert ref.startswith("data:") or not re.match(r"^[a-z]+:|^//", ref), ref
    for name, kind in {"console.js": "javascript", "console.css": "text/css"}.items():
        asset = httpx.get(f"{service.url}/admin/console/static/{name}", timeout=10)
        assert asset.status_code == 200 and kind in asset.headers["content-type"], name
        text = asset.text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
        assert "http://" not in text and "https://" not in text, f"{name} refers to another origin"
    script = httpx.get(service.url + "/admin/console/static/console.js", timeout=10).text
    assert "innerHTML" not in script.replace("nothing here assigns innerHTML", "")
    missing = httpx.get(service.url + "/admin/console/static/..%2Fapp.py", timeout=10)
    assert missing.status_code == 404


def test_admin_routes_the_console_calls_need_the_key(service: Service) -> None:
    for path in ("/admin/thresholds", "/admin/thresholds/history", "/admin/models", "/fairness/reports/latest"):
        r = httpx.get(service.url + path, timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]


# --------------------------------------------------------------------------- in the browser


def test_sign_in_rejects_a_wrong_key_and_keeps_the_right_one_in_session_storage(
    console: PageWatch, service: Service
) -> None:
    page = console.page
    console.shot("01-sign-in")
    assert page.locator("#api-key").evaluate("el => el === document.activeElement")
    page.fill("#api-key", "cs_nope_wrong")
    page.press("#api-key", "Enter")
    error = page.locator("#signin-error")
    error.wait_for(state="visible")
    assert "HTTP 401" in error.inner_text() and "key" in error.inner_text().lower()
    assert page.locator("#tabs").is_hidden()
    page.fill("#api-key", service.reader_key)
    page.press("#api-key", "Enter")
    expect(error).to_contain_text("HTTP 403")
    expect(error).to_contain_text("admin role")
    assert page.evaluate("sessionStorage.getItem('clearshelf.adminKey')") is None
    page.fill("#api-key", service.key)
    page.click("#signin-form button[type=submit]")
    page.locator("#page-fairness").wait_for(state="visible")
    assert page.evaluate("sessionStorage.getItem('clearshelf.adminKey')") == service.key
    assert page.evaluate("document.cookie") == ""
    assert service.key not in page.url
    assert page.context.cookies() == []
    # Every admin call carried the key in the header, none in the URL.
    admin_calls = [r for r in console.requests if "/admin/" in r.url and "/admin/console" not in r.url]
    assert admin_calls
    for r in admin_calls:
        assert service.key not in r.url
    signed_in = [r for r in admin_calls if r.headers.get("x-api-key") == service.key]
    assert signed_in, "no admin call sent the key in X-API-Key"
    assert all(r.headers.get("x-api-key") for r in admin_calls)


def test_fairness_page_shows_the_latest_report_with_intervals_and_trend(
    console: PageWatch, service: Service
) -> None:
    page = console.page
    latest = service.get("/fairness/reports/latest").json()
    listing = service.get("/fairness/reports").json()["reports"]
    page.locator("#fairness-body .metric").first.wait_for()
    summary = page.locator("#fairness-body .summary").inner_text()
    assert latest["model_version"] in summary
    assert str(latest["status"]).upper() in summary.upper()
    # groups with their values and intervals, and a status badge per row
    rows = page.locator("#fairness-body table.groups tbody tr")
    assert rows.count() >= 2
    assert page.locator("#fairness-body .status").count() >= rows.count()
    # a metric in the gaps table opens its per-group details, with each group's interval
    judgeable = [f"{m['attribute']}/{m['metric']}" for m in latest["metrics"] if m["judged"] and m["status"] != "too_small"]
    key = next(k for k in judgeable
               if page.locator(f'#fairness-body details.metric[data-metric="{k}"]').get_attribute("open") is None)
    page.locator(f'#fairness-body table.gaps tr[data-metric="{key}"] button').click()
    expect(page.locator(f'#fairness-body details.metric[data-metric="{key}"]')).to_have_attribute("open", "")
    assert page.locator(f'#fairness-body details.metric[data-metric="{key}"] summary').evaluate(
        "el => el === document.activeElement"
    )
    details = page.locator(f'#fairness-body details.metric[data-metric="{key}"]').inner_text()
    assert re.search(r"\d\.\d{3} – \d\.\d{3}", details), "no confidence interval shown"
    # the trend lists every stored report (one so far: it says the line comes with the second)
    page.locator("#fairness-trend svg").wait_for()
    expect(page.locator("#fairness-trend tbody tr")).to_have_count(len(listing))
    assert len(listing) == 1 and "first stored report" in page.locator("#fairness-trend").inner_text()
    console.shot("02-fairness")
    # the full HTML report, fetched with the key and shown sandboxed
    page.click("#open-report")
    frame = page.locator("#report-frame")
    frame.wait_for(state="visible")
    assert frame.get_attribute("sandbox") == ""
    body = page.frame_locator("#report-frame").locator("body")
    assert len(body.inner_text()) > 100
    assert page.locator("#download-report").get_attribute("href").startswith("blob:")
    console.shot("03-fairness-full-report")


def _proposed(page: Any, measure: str) -> str:
    return page.locator(f'#preview-table tr[data-measure="{measure}"] .proposed-value').inner_text()


def test_threshold_tuning_preview_apply_and_history(console: PageWatch, service: Service) -> None:
    page = console.page
    before = thresholds(service)
    page.click("button[data-page=thresholds]")
    page.locator("#tradeoff svg [data-point=current], #preview-error:not([hidden])").first.wait_for()
    assert page.locator("#preview-error").is_hidden(), page.locator("#preview-error").inner_text()
    assert page.locator("#tradeoff svg .sweep-dot").count() >= 3, "the trade-off curve has no sweep"
    start = float(before["settings"]["policy"]["rerank_strength"])
    assert float(page.locator("#rerank-strength").input_value()) == pytest.approx(start)
    assert page.locator("#tradeoff svg [data-point=audited]").count() == 0  # the audit ran with these settings
    start_strength = _proposed(page, "strength")
    start_point = page.locator("#tradeoff svg [data-point=proposed]").get_attribute("points")
    console.shot("04-thresholds")

    # Move the strength with the keyboard: the preview follows.
    page.focus("#rerank-strength")
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    target = round(min(start + 0.4, 1.0), 2)
    assert float(page.locator("#rerank-strength").input_value()) == pytest.approx(target)
    expect(page.locator("#preview-table tr[data-measure=strength] .proposed-value")).to_have_text(f"{target:.2f}")
    assert _proposed(page, "strength") != start_strength
    expect(page.locator("#tradeoff svg [data-point=proposed]")).not_to_have_attribute("points", start_point)
    # the numbers on the page are the service's own preview for these settings
    settings = json.loads(json.dumps(before["settings"]))
    settings["policy"]["rerank_strength"] = target
    expected = httpx.post(service.url + "/admin/thresholds/preview", json={"settings": settings},
                          headers={"X-API-Key": service.key}, timeout=30).json()
    for measure in ("ndcg", "max_gap", "coverage"):
        value = expected["proposed"][measure]
        assert _proposed(page, measure) == ("—" if value is None else f"{value:.4f}"), measure
    console.shot("05-thresholds-preview")

    # A score floor is not in the sweep: the preview says so, and stops when it is unticked.
    page.check("#min-score-on")
    expect(page.locator("#min-score")).to_be_enabled()
    expect(page.locator("#preview-table")).to_contain_text("min_score")
    page.uncheck("#min-score-on")
    expect(page.locator("#preview-table")).not_to_contain_text("min_score")

    # An audit threshold out of range: the service's problem detail is shown, nothing is stored.
    page.fill("#audit-ratio_min", "1.5")
    page.fill("#change-note", "console test")
    page.click("#apply-thresholds")
    page.locator("#confirm").wait_for(state="visible")
    page.click("#confirm-ok")
    error = page.locator("#thresholds-error")
    error.wait_for(state="visible")
    assert "ratio_min" in error.inner_text()
    assert thresholds(service)["version"] == before["version"]
    page.fill("#audit-ratio_min", str(before["settings"]["audit"]["ratio_min"]))
    expect(page.locator("#preview-error")).to_be_hidden()
    expect(page.locator("#tradeoff svg [data-point=proposed]")).to_have_count(1)

    # Apply: the dialog shows exactly the diff, then the history has the entry.
    page.click("#apply-thresholds")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    diff_rows = dialog.locator("tr[data-setting]")
    assert diff_rows.count() == 1
    assert diff_rows.first.get_attribute("data-setting") == "policy.rerank_strength"
    assert str(target) in diff_rows.first.inner_text()
    console.shot("06-thresholds-confirm")
    page.click("#confirm-ok")
    page.locator(f'#history-table tr[data-version="{before["version"] + 1}"]').wait_for()
    applied = thresholds(service)
    assert applied["version"] == before["version"] + 1
    assert applied["settings"]["policy"]["rerank_strength"] == pytest.approx(target)
    assert applied["note"] == "console test"
    row = page.locator(f'#history-table tr[data-version="{applied["version"]}"]').inner_text()
    assert service.key_id in row, f"the history row does not say who: {row!r}"
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row), "the history row does not say when"
    assert "in force" in row
    # The preview now starts from the settings in force; the audit still ran at the old strength.
    in_force = page.locator("#preview-table tr[data-measure=strength] td").first
    expect(in_force).to_have_text(f"{target:.2f}")
    expect(page.locator("#tradeoff svg [data-point=audited]")).to_have_count(1)
    console.shot("07-thresholds-applied")



def test_an_audit_run_from_the_console_reports_under_the_applied_thresholds(
    console: PageWatch, service: Service
) -> None:
    page = console.page
    applied = thresholds(service)
    page.click("button[data-page=fairness]")
    page.locator("#fairness-body .summary").wait_for()
    before = page.locator("#fairness-body .summary").inner_text()
    page.click("#run-audit")
    expect(page.locator("#run-audit")).to_be_disabled()
    expect(page.locator("#audit-job")).to_contain_text("Audit done", timeout=120_000)
    listing = service.get("/fairness/reports").json()["reports"]
    assert len(listing) == 2
    latest = service.get("/fairness/reports/latest").json()
    assert latest["thresholds_version"] == applied["version"]
    assert latest["policy"]["rerank_strength"] == pytest.approx(applied["settings"]["policy"]["rerank_strength"])
    summary = page.locator("#fairness-body .summary")
    expect(summary).to_contain_text(latest["id"])
    assert summary.inner_text() != before
    assert f"re-rank strength {applied['settings']['policy']['rerank_strength']:.2f}" in summary.inner_text()
    # the trend now has both reports, newest first in the table, and a line
    expect(page.locator("#fairness-trend tbody tr")).to_have_count(2)
    assert page.locator("#fairness-trend tbody tr").first.get_attribute("data-report") == latest["id"]
    assert page.locator("#fairness-trend svg polyline").count() >= 1
    console.shot("08-fairness-after-audit")


def test_rollback_restores_the_previous_thresholds(console: PageWatch, service: Service) -> None:
    page = console.page
    applied = thresholds(service)
    versions = service.get("/admin/thresholds/history").json()["versions"]
    previous = next(v for v in versions if v["version"] == applied["version"] - 1)
    page.click("button[data-page=thresholds]")
    page.locator(f'#history-table tr[data-version="{applied["version"]}"]').wait_for()
    dialog = page.locator("#confirm")
    # Escape cancels: nothing is written.
    page.click("#rollback-thresholds")
    dialog.wait_for(state="visible")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert thresholds(service)["version"] == applied["version"]
    # Roll back: a new version with the old settings.
    page.click("#rollback-thresholds")
    dialog.wait_for(state="visible")
    assert "policy.rerank_strength" in dialog.inner_text()
    page.click("#confirm-ok")
    page.locator(f'#history-table tr[data-version="{applied["version"] + 1}"]').wait_for()
    rolled = thresholds(service)
    assert rolled["version"] == applied["version"] + 1
    assert rolled["settings"] == previous["settings"]
    assert rolled["note"] == f"rollback to version {previous['version']}"
    expect(page.locator("#rerank-strength")).to_have_value(f"{previous['settings']['policy']['rerank_strength']:g}")
    expect(page.locator("#preview-table tr[data-measure=strength] td").first).to_have_text(
        f"{previous['settings']['policy']['rerank_strength']:.2f}"
    )
    expect(page.locator("#tradeoff svg [data-point=audited]")).to_have_count(1)  # the audit ran at the applied strength
    console.shot("09-thresholds-rolled-back")


def test_why_this_shows_reasons_and_shap_bars_and_renders_markup_as_text(
    console: PageWatch, service: Service
) -> None:
    page = console.page
    page.click("button[data-page=why]")
    assert page.locator("#why-customer").evaluate("el => el === document.activeElement")
    page.fill("#why-customer", service.known_customer)
    page.press("#why-customer", "Enter")
    page.locator("#why-items .card").first.wait_for()
    cards = page.locator("#why-items .card")
    assert cards.count() == 10
    assert "known customer" in page.locator("#why-meta").inner_text()
    assert page.locator("#why-items .reason").count() == 10
    bars = page.locator("#why-items .shap svg rect")
    assert bars.count() >= 10, "no SHAP bar chart"
    # No id is shown back but what was typed: never the pseudonym.
    assert service.known_pseudonym not in page.content()
    console.shot("10-why-this")

    # A new customer gets popular items; the most popular one is titled with a script tag.
    page.fill("#why-customer", "someone-new")
    page.click("#why-form button[type=submit]")
    expect(page.locator("#why-meta")).to_contain_text("cold start")
    card = page.locator(f'#why-items .card[data-item="{service.xss_item}"]')
    card.wait_for()
    assert card.locator(".item-title").inner_text() == XSS_TITLE
    assert card.locator("script").count() == 0
    assert page.locator("#why-items script").count() == 0
    assert not console.dialogs, f"a dialog fired: {console.dialogs}"
    console.shot("11-why-this-cold-start")

    # A bad input is refused before any call, saying what to enter.
    page.fill("#why-k", "0")
    page.click("#why-form button[type=submit]")
    assert "1 to 50" in page.locator("#why-error").inner_text()
    page.fill("#why-k", "10")


def test_models_page_trains_lists_versions_and_rolls_back(console: PageWatch, service: Service) -> None:
    page = console.page
    page.click("button[data-page=models]")
    first = service.model
    page.locator(f'#models-table tr[data-version="{first}"] .badge.ok').wait_for()
    assert "train_seconds" in page.locator(f'#models-table tr[data-version="{first}"]').inner_text()
    expect(page.locator("#models-rollback")).to_be_disabled()  # nothing older to go back to
    # Train a new model from the console: a background job, then the list shows it active.
    page.click("#train-model")
    page.locator("#confirm").wait_for(state="visible")
    page.click("#confirm-ok")
    expect(page.locator("#train-job")).to_contain_text("Training done", timeout=120_000)
    listing = service.get("/admin/models").json()
    newest = listing["active"]
    assert newest != first and [m["version"] for m in listing["models"]] == [newest, first]
    expect(page.locator("#models-table tbody tr")).to_have_count(2)
    expect(page.locator(f'#models-table tr[data-version="{newest}"] .badge.ok')).to_have_text("active")
    console.shot("12-models")
    # Roll back to the previous model, then forward again from the row's own button.
    page.click("#models-rollback")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    assert first in dialog.inner_text()
    page.click("#confirm-ok")
    page.locator(f'#models-table tr[data-version="{first}"] .badge.ok').wait_for()
    assert service.get("/admin/models").json()["active"] == first
    console.shot("13-models-rolled-back")
    page.click(f'#models-table tr[data-version="{newest}"] button')
    dialog.wait_for(state="visible")
    page.click("#confirm-ok")
    page.locator(f'#models-table tr[data-version="{newest}"] .badge.ok').wait_for()
    assert service.get("/admin/models").json()["active"] == newest


def test_audit_log_says_who_changed_what(console: PageWatch, service: Service) -> None:
    page = console.page
    page.click("button[data-page=log]")
    page.locator("#log-table tbody tr[data-action]").first.wait_for()
    rows = page.locator("#log-table tbody tr[data-action]")
    actions = {rows.nth(i).get_attribute("data-action") for i in range(rows.count())}
    for action in ("thresholds.set", "thresholds.rollback", "audit.run", "model.train", "model.activate"):
        assert action in actions, (action, actions)
    change = page.locator('#log-table tr[data-action="thresholds.set"]').first.inner_text()
    assert service.key_id in change
    assert "policy.rerank_strength: 0 → 0.4" in change, change
    console.shot("14-audit-log")
    page.fill("#log-action", "thresholds.rollback")
    page.press("#log-action", "Enter")
    expect(page.locator("#log-table tbody tr[data-action]")).to_have_count(1)
    assert page.locator("#log-table tbody tr").first.get_attribute("data-action") == "thresholds.rollback"


def test_keyboard_reaches_every_page_with_a_visible_focus(console: PageWatch, service: Service) -> None:
    page = console.page
    page.click("button[data-page=fairness]")
    page.focus("button[data-page=fairness]")
    page.keyboard.press("Tab")  # keyboard navigation from here on (:focus-visible)
    page.keyboard.press("Shift+Tab")
    seen = []
    for _ in range(5):
        focused = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.dataset.page || e.id, s.outlineStyle, s.outlineWidth]; }"
        )
        seen.append(focused[0])
        assert focused[1] != "none" and focused[2] != "0px", f"no visible focus on {focused[0]}"
        page.keyboard.press("Tab")
    assert seen == ["fairness", "thresholds", "why", "models", "log"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # activates "Audit log" from the keyboard
    page.locator("#page-log").wait_for(state="visible")
    assert page.locator("#page-models").is_hidden()
    # A key the service stops accepting signs the console out, saying so. (Let the calls
    # already under way finish first: one of them meeting the bad key would sign out
    # this page before the reload, and the reloaded one would have nothing to say.)
    page.wait_for_load_state("networkidle")
    page.evaluate("sessionStorage.setItem('clearshelf.adminKey', 'cs_000000000000_revoked')")
    page.reload()
    page.locator("#page-signin").wait_for(state="visible")
    expect(page.locator("#signin-error")).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.getItem('clearshelf.adminKey')") is None
    page.fill("#api-key", service.key)
    page.press("#api-key", "Enter")
    page.locator("#page-log").wait_for(state="visible")  # back where it was (#log)
    # Sign out forgets the key.
    page.click("#sign-out")
    assert page.evaluate("sessionStorage.getItem('clearshelf.adminKey')") is None
    assert page.locator("#page-signin").is_visible()
