"""Stored audits on both backends: report schema, offline HTML, repository, lock, erasure, preview."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import insert

from fairness import (
    AuditConfig,
    ReportRepository,
    ThresholdRepository,
    ThresholdSettings,
    erase_customer,
    preview,
    run_audit,
)
from fairness.errors import AuditInputError, AuditLockedError, ReportNotFoundError
from fairness.job import audit_lock
from fairness.report import SCHEMA_FILE, json_schema, validate_report
from recsys.data import schema
from recsys.data.demo import DemoConfig, generate_demo
from recsys.data.importer import import_frames
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store
from tests.test_recommender import SMALL

CONFIG = AuditConfig(recommender=SMALL, cutoff_days=21, intersections=(("age_band", "gender"),))


def load_demo(store: Store, pseudonymiser: Pseudonymiser) -> None:
    data = generate_demo(DemoConfig(customers=260, items=110, categories=6, days=100, seed=4))
    import_frames(store, pseudonymiser, items=data.items, customers=data.customers, events=data.events, sensitive=data.sensitive)


def test_audit_is_stored_and_reported(store: Store, pseudonymiser: Pseudonymiser, tmp_path: Path) -> None:
    load_demo(store, pseudonymiser)
    ThresholdRepository(store).set({"audit": {"resamples": 500}}, actor="test")
    first = run_audit(
        store, tmp_path, config=CONFIG,
        reasons=lambda model: (lambda ranked: [it.sources[0] for it in ranked.items]),  # stands in for explain
    )
    report = first.report
    validate_report(report)
    for key in ("schema_version", "created_at", "model_version", "cohort_size", "metrics"):
        assert key in report
    assert report["thresholds_version"] == 1 and report["statistics"]["resamples"] == 500
    assert report["statistics"]["verdicts"] > 0
    m = next(x for x in report["metrics"] if x["attribute"] == "age_band" and x["metric"] == "ndcg@10")
    for g in m["by_group"].values():
        assert {"value", "ci_low", "ci_high", "n", "status"} <= set(g)
        if g["value"] is not None and g["ci_low"] is not None:
            assert g["ci_low"] <= g["value"] + 1e-9 <= g["ci_high"] + 2e-9
    assert sum(g["n"] for g in m["by_group"].values()) == report["cohort_size"]
    assert {"age_band", "gender", "region", "activity", "activity_quintile", "tenure", "age_band & gender"} <= set(report["groups"])
    assert report["item_exposure"]["column"] == "private_label"
    # the files and the database agree
    assert json.loads(first.json_path.read_text()) == report
    repo = ReportRepository(store)
    assert repo.get(first.report_id) == report
    assert repo.html_path(first.report_id) == first.html_path
    stored = repo.outcomes(first.report_id)
    assert stored.height == report["cohort_size"]
    reason_cols = [c for c in stored.columns if c.startswith("reason:")]
    assert reason_cols and any(m["metric"] == reason_cols[0] for m in report["metrics"])
    shares = stored.select(pl.sum_horizontal(pl.col(reason_cols).fill_null(0.0))).to_series()
    assert shares.to_list() == pytest.approx([1.0] * stored.height)
    assert "first stored report" in first.html_path.read_text()

    # a score floor nobody reaches: known customers get empty lists (undefined outcomes are
    # stored as null, which PostgreSQL's JSON needs)
    ThresholdRepository(store).set({"policy": {"min_score": 1e9}, "audit": {"resamples": 500}}, actor="test")
    second = run_audit(  # same cutoff, so the first audit's model can be reused
        store, tmp_path, config=AuditConfig(recommender=SMALL, cutoff_days=21, k=5), model=first.model,
    )
    assert second.report["policy"]["min_score"] == 1e9 and second.report["thresholds_version"] == 2
    assert repo.outcomes(second.report_id)["popularity"].null_count() > 0
    listed = repo.list()
    assert [r["id"] for r in listed] == [second.report_id, first.report_id]
    assert listed[0]["status"] == second.report["status"] and listed[0]["cohort_size"] == second.report["cohort_size"]
    assert repo.latest() == second.report and second.report["k"] == 5
    assert repo.latest(with_sweep=True) is None  # neither run swept
    page = second.html_path.read_text()
    assert "first stored report" not in page and "Trend" in page
    with pytest.raises(ReportNotFoundError, match="no fairness report with id 'nope'"):
        repo.get("nope")

    # erasure: the DB rows and any outcome file under home/reports
    key = repo.outcomes(first.report_id)["customer_key"][0]
    extra = tmp_path / "reports" / "kept.parquet"
    pl.DataFrame({"customer_key": [key, "other"], "x": [1, 2]}).write_parquet(extra)
    assert repo.count_outcomes(key) == 2
    counts = erase_customer(store, tmp_path, key)
    assert counts == {"audit_outcomes": 2, "outcome_files": 1, "outcome_file_rows": 1}
    assert repo.count_outcomes(key) == 0
    assert pl.read_parquet(extra)["customer_key"].to_list() == ["other"]
    assert erase_customer(store, tmp_path, key)["audit_outcomes"] == 0


def test_preview_interpolates_and_needs_a_sweep() -> None:
    report = {"id": "r1", "policy": {"min_score": None, "rerank_strength": 0.0}, "sweep_attribute": "activity", "sweep_metric": "ndcg@10",
              "sweep": [{"strength": 0.0, "ndcg": 0.20, "max_gap": 0.10, "coverage": 0.01},
                        {"strength": 1.0, "ndcg": 0.18, "max_gap": 0.04, "coverage": 0.03}]}
    out = preview(report, ThresholdSettings.parse({"policy": {"rerank_strength": 0.25, "min_score": 0.1}}))
    assert out["proposed"] == {"strength": 0.25, "ndcg": pytest.approx(0.195), "max_gap": pytest.approx(0.085),
                               "coverage": pytest.approx(0.015), "interpolated": True}
    assert out["notes"] and "min_score" in out["notes"][0]
    with pytest.raises(AuditInputError, match="has no trade-off sweep"):
        preview({"id": "r2"}, ThresholdSettings())


def test_lock_has_one_holder_at_a_time(store: Store, tmp_path: Path) -> None:
    seen: list[bool] = []

    def other() -> None:
        with audit_lock(store) as got:
            seen.append(got)

    with audit_lock(store) as mine:
        assert mine
        with audit_lock(store) as again:  # the same thread may nest
            assert again
        t = threading.Thread(target=other)
        t.start()
        t.join()
        errors: list[BaseException] = []

        def audit_elsewhere() -> None:
            try:
                run_audit(store, tmp_path)
            except AuditLockedError as exc:
                errors.append(exc)

        t2 = threading.Thread(target=audit_elsewhere)
        t2.start()
        t2.join()
        assert len(errors) == 1 and "another audit is running" in str(errors[0])
    assert seen == [False]
    other()  # released: the next holder gets it
    assert seen == [False, True]
    # an expired lease (a crashed holder) is taken over
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    with store.transaction() as conn:
        conn.execute(insert(schema.job_locks).values(name="audit", holder="ghost", acquired_at=past, expires_at=past + timedelta(hours=1)))
    other()
    assert seen == [False, True, True]


def test_shipped_schema_file_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(json_schema()))
