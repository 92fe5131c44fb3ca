"""``clearshelf audit`` end to end: real processes, a real store, real training on a small generated world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from api.cli import app
from fairness import ThresholdRepository, ThresholdSettings, preview
from recsys.data.demo import DemoConfig, generate_demo, write_demo
from recsys.data.store import Store

CLI = str(Path(sys.executable).with_name("clearshelf"))
SMALL_WORLD = DemoConfig(customers=160, items=80, categories=5, days=80, seed=8)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSHELF_")}
    e.update(CLEARSHELF_HOME=str(tmp_path / "home"), CLEARSHELF_DATABASE_URL=sqlite_url)
    return e


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["audit", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "--fail-on" in result.output and "--export-outcomes" in result.output


def test_audit_on_the_store(env: dict[str, str], tmp_path: Path) -> None:
    empty = run(["audit", "--no-content"], env)
    assert empty.returncode == 1 and "there are no events to audit" in empty.stderr
    demo = run(["demo", "--customers", str(SMALL_WORLD.customers), "--items", str(SMALL_WORLD.items), "--seed", "8", "--no-train"], env)
    assert demo.returncode == 0, demo.stderr
    # thresholds set in the store (as the admin API would) are what the CLI audits with
    store = Store.open(env["CLEARSHELF_DATABASE_URL"])
    ThresholdRepository(store).set({"audit": {"min_group_size": 10, "resamples": 500}}, actor="test")
    store.dispose()
    out, page, parquet = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "o.parquet"
    res = run(
        ["audit", "--no-content", "--cutoff-days", "21", "--out", str(out), "--html", str(page),
         "--export-outcomes", str(parquet), "--intersect", "age_band,gender", "--sweep",
         "--sweep-attribute", "activity_quintile", "--fail-on", "never"],
        env,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    report = json.loads(out.read_text())
    assert report["thresholds_version"] == 1 and report["statistics"]["min_group_size"] == 10
    assert report["data"]["source"] == "store" and report["sweep"] and report["sweep_attribute"] == "activity_quintile"
    assert "fairness audit" in res.stdout and "trade-off" in res.stdout
    # the page is self-contained: nothing to fetch, nothing to run
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for forbidden in ("http://", "https://", "<script", "<link", "@import", "url(", "src="):
        assert forbidden not in html.lower(), forbidden
    assert html.count("<svg") >= 10 and "Mitigation trade-off" in html and "Provenance" in html
    assert f"cohort size</th><td>{report['cohort_size']:,} customers" in html
    # the admin preview reads the sweep
    sweep = report["sweep"]
    assert [p["strength"] for p in sweep] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(p["max_gap"] is not None and 0 <= p["coverage"] <= 1 for p in sweep)
    proposed = preview(report, ThresholdSettings.parse({"policy": {"rerank_strength": 0.5}}))
    assert proposed["proposed"]["ndcg"] == pytest.approx(sweep[2]["ndcg"])
    assert proposed["current"]["max_gap"] == pytest.approx(sweep[0]["max_gap"])
    assert proposed["attribute"] == "activity_quintile" and proposed["metric"] == "ndcg@10"
    stored = list((Path(env["CLEARSHELF_HOME"]) / "reports").glob("*.json"))
    assert [p.stem for p in stored] == [report["id"]]
    table = pl.read_parquet(parquet)
    assert table.height == report["cohort_size"]
    assert {"customer_id", "age_band", "gender", "region", "activity", "tenure", "age_band & gender", "ndcg@10", "hr@10"} <= set(table.columns)
    assert table["customer_id"].str.len_chars().min() >= 32  # pseudonyms, not "C00001"
    # the same figures recomputed from the export
    m = next(x for x in report["metrics"] if x["attribute"] == "gender" and x["metric"] == "ndcg@10")
    means = dict(table.group_by("gender").agg(pl.col("ndcg@10").mean()).iter_rows())
    for g, v in m["by_group"].items():
        assert v["value"] == pytest.approx(means[g], abs=1e-6)


def test_audit_of_a_data_dir_keeps_raw_ids_and_bad_input_is_clear(env: dict[str, str], tmp_path: Path) -> None:
    data = generate_demo(SMALL_WORLD)
    write_demo(data, tmp_path / "shop")
    parquet, out = tmp_path / "o.parquet", tmp_path / "r.json"
    res = run(["audit", "--data-dir", str(tmp_path / "shop"), "--sensitive", "age_band,gender", "--no-content",
               "--cutoff-days", "21", "--export-outcomes", str(parquet), "--out", str(out), "--fail-on", "warn", "--k", "5",
               "--reasons"], env)
    status = json.loads(out.read_text())["status"]
    assert res.returncode == (3 if status in ("warn", "fail") else 0), res.stderr + res.stdout
    assert json.loads(out.read_text())["data"]["source"] == "data_dir"
    table = pl.read_parquet(parquet)
    assert table["customer_id"].str.starts_with("C").all()
    assert "region" not in table.columns and {"age_band", "gender", "ndcg@5"} <= set(table.columns)
    reasons = [c for c in table.columns if c.startswith("reason:")]  # from the real explainer
    assert reasons and table.select(pl.sum_horizontal(pl.col(reasons).fill_null(0.0))).to_series().min() > 0.99
    bad = run(["audit", "--data-dir", str(tmp_path / "shop"), "--sensitive", "shoe_size", "--no-content"], env)
    assert bad.returncode == 1
    assert "attribute 'shoe_size' is not in the data" in bad.stderr and "Traceback" not in bad.stderr
