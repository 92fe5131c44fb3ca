"""The explanation commands as a user runs them: train saves the SHAP summary,
``recommend --explain`` prints reasons, ``evaluate --explanations`` reports faithfulness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api import cli
from recsys.bundle import ModelRegistry
from recsys.data.demo import DemoConfig, generate_demo, write_demo


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("CLEARSHELF_DATABASE_URL", "CLEARSHELF_PSEUDONYM_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CLEARSHELF_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cli.console, "width", 250)
    return tmp_path / "home"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_train_bundles_the_shap_summary_and_recommend_explains(home: Path) -> None:
    invoke("demo", "--customers", "150", "--items", "60", "--no-train")
    invoke("train", "--no-content")
    registry = ModelRegistry(home / "models")
    version = registry.active_version()
    assert version is not None
    manifest = registry.read_manifest(version)  # checksums verified, summary included
    assert {"shap_summary.json", "shap_summary.png"} <= set(manifest["files"])
    summary = json.loads((home / "models" / version / "shap_summary.json").read_text())
    assert summary["rows"] > 0 and summary["features"][0]["label"]

    out = invoke("recommend", "C00001", "--k", "5", "--explain")
    assert "customer status: known" in out
    assert "reason" in out and "top contributions (SHAP)" in out
    model, _ = registry.load()
    from api.settings import get_settings
    from explain import Explainer
    from recsys.data.pseudonym import Pseudonymiser

    key = Pseudonymiser(get_settings().pseudonym_key_bytes())("C00001")
    expected = Explainer(model).explain(model.recommend(key, 5))
    for e in expected:
        assert e.reason.text in out
        assert e.attributions is not None and e.attributions.contributions[0].label in out

    cold = invoke("recommend", "someone-new", "--k", "3", "--explain")
    assert "cold_start" in cold and cold.count("Popular right now") == 3
    assert "not scored by the ranker" in cold


def test_evaluate_with_explanations_adds_the_block(home: Path, tmp_path: Path) -> None:
    write_demo(generate_demo(DemoConfig(customers=150, items=60, categories=6, days=90, seed=1)), tmp_path / "data")
    out_json = tmp_path / "r.json"
    out = invoke(
        "evaluate", "--data-dir", str(tmp_path / "data"), "--no-tune", "--no-content", "--baselines", "popularity",
        "--explanations", "--explanation-customers", "30", "--out", str(out_json),
    )
    doc = json.loads(out_json.read_text())
    e = doc["explanations"]
    assert {"faithfulness_rate", "checked", "max_additivity_error", "reason_types", "rank_drop"} <= set(e)
    assert e["customers"] == 30 and e["checked"] > 0 and e["max_additivity_error"] <= 1e-6
    assert e["split"] == doc["split"] == "temporal"
    assert "history-citing reasons pass the counterfactual check" in out
