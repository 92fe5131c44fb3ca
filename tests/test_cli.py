"""The CLI as a user runs it: real processes, real files, real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from recsys.data.store import Store

CLI = str(Path(sys.executable).with_name("clearshelf"))


def run(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSHELF_")}
    e.update(CLEARSHELF_HOME=str(tmp_path / "home"), CLEARSHELF_DATABASE_URL=db_url)
    return e


def test_help_lists_commands_and_each_has_an_example() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["--help"]).output
    for command in ("import", "load-dataset", "demo", "db"):
        assert command in out
    for command in (["import"], ["load-dataset"], ["demo"], ["db", "upgrade"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output, command


def test_db_upgrade_then_up_to_date(env: dict[str, str], db_url: str) -> None:
    first = run(["db", "upgrade"], env)
    assert first.returncode == 0, first.stderr
    assert "upgraded from empty to" in first.stdout
    second = run(["db", "upgrade"], env)
    assert "up to date" in second.stdout
    assert Store.open(db_url, upgrade=False).current_revision() == Store.head_revision()


def test_bad_import_exits_nonzero_names_both_problems_changes_nothing(
    env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    items = tmp_path / "items.csv"
    rows = [f"I{i},Item {i},Cat,Brand,{i}.50" for i in range(1, 10)]
    rows[6] = "I7,Item 7,Cat,Brand,seven"  # data row 7
    items.write_text("item_id,title,category,brand,price\n" + "\n".join(rows) + "\n")
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,age_band\nc1,25-34\n")
    events = tmp_path / "events.csv"
    events.write_text("customer_id,item_id\nc1,I1\nc1,GHOST\n")
    good = run(["import", "--customers", str(customers)], env)
    assert good.returncode == 0, good.stderr
    before = Store.open(db_url).counts()
    bad = run(["import", "--items", str(items), "--events", str(events)], env)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "items.csv, row 7 (line 8), column 'price': 'seven' is not a number" in bad.stderr
    assert "events.csv, row 2 (line 3), column 'item_id': unknown item 'GHOST'" in bad.stderr
    assert "nothing was imported" in bad.stderr.splitlines()[0]
    assert Store.open(db_url).counts() == before


def test_import_reports_counts(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("item_id,title\nA,Apple\nB,Bread\n")
    (tmp_path / "c.csv").write_text("customer_id,gender\nx,f\n")
    (tmp_path / "e.csv").write_text("event_id,customer_id,item_id\n1,x,A\n2,x,B\n")
    args = ["import", "--items", str(tmp_path / "i.csv"), "--customers", str(tmp_path / "c.csv"),
            "--events", str(tmp_path / "e.csv"), "--sensitive", "gender"]
    out = run(args, env)
    assert out.returncode == 0, out.stderr
    assert "events: 2 new, 0 already present" in out.stdout
    assert "2 items, 1 customers, 2 events" in out.stdout
    again = run(args, env)
    assert "events: 0 new, 2 already present" in again.stdout


def test_user_error_is_one_line_without_traceback(env: dict[str, str], tmp_path: Path) -> None:
    out = run(["import", "--items", str(tmp_path / "missing.csv")], env)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: items file not found")
    assert "Traceback" not in out.stderr


def test_evaluate_on_a_data_dir_writes_results_and_exports(tmp_path: Path) -> None:
    import json

    import polars as pl

    from recsys.data.demo import DemoConfig, generate_demo, write_demo

    write_demo(generate_demo(DemoConfig(customers=200, items=80, categories=6, days=90, seed=1)), tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSHELF_")}
    env["CLEARSHELF_HOME"] = str(tmp_path / "home")
    out = run(
        ["evaluate", "--data-dir", str(tmp_path / "data"), "--no-tune", "--no-content",
         "--baselines", "popularity,ease", "--out", str(tmp_path / "r.json"), "--export-recs", str(tmp_path / "recs")],
        env,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["k"] == 10 and doc["split"] == "temporal"
    assert set(doc["models"]) == {"clearshelf", "popularity", "ease"}
    for metrics in doc["models"].values():
        for key in ("ndcg@10", "recall@10", "recall@20", "hr@10", "map@10", "coverage", "train_seconds"):
            assert 0 <= metrics[key] <= (1 if key != "train_seconds" else 1e6)
    recs = pl.read_parquet(tmp_path / "recs" / "recommendations.parquet")
    assert set(recs.columns) >= {"customer_id", "model", "rank", "item_id"}
    assert recs["customer_id"].str.starts_with("C").all() and recs["item_id"].str.starts_with("P").all()
    assert "clearshelf / " in out.stdout


def test_evaluate_rejects_a_bad_data_dir_with_row_and_column(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("item_id,price\nA,1\nB,cheap\n")
    (tmp_path / "events.csv").write_text("customer_id,item_id\nu,A\nu,Z\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSHELF_")}
    env["CLEARSHELF_HOME"] = str(tmp_path / "home")
    out = run(["evaluate", "--data-dir", str(tmp_path), "--no-tune"], env)
    assert out.returncode == 1
    assert "items.csv, row 2 (line 3), column 'price'" in out.stderr
    assert "unknown item 'Z'" in out.stderr


def test_demo_train_recommend_round_trip(env: dict[str, str], db_url: str) -> None:
    demo = run(["demo", "--customers", "150", "--items", "60", "--no-train"], env)
    assert demo.returncode == 0, demo.stderr
    assert "150 customers" in demo.stdout
    counts = Store.open(db_url).counts()
    assert counts["customers"] == 150 and counts["items"] == 60 and counts["events"] > 1000
    again = run(["demo", "--customers", "150", "--items", "60", "--no-train"], env)
    assert Store.open(db_url).counts() == counts, "re-running the demo must not duplicate events"
    assert again.returncode == 0
    train = run(["train", "--no-content", "--precomputed-customers", "40"], env)
    assert train.returncode == 0, train.stderr
    assert "trained model" in train.stdout
    models = Path(env["CLEARSHELF_HOME"]) / "models"
    manifest = json.loads((models / (models / "ACTIVE").read_text().strip() / "manifest.json").read_text())
    assert manifest["metrics"]["precomputed_customers"] == 40
    rec = run(["recommend", "C00001", "--k", "5"], env)
    assert rec.returncode == 0, rec.stderr
    assert "customer status: known" in rec.stdout
    cold = run(["recommend", "someone-new", "--k", "3"], env)
    assert "customer status: cold_start" in cold.stdout


@pytest.mark.slow
def test_load_dataset_movielens_into_the_store(env: dict[str, str], db_url: str, shared_data: Path) -> None:
    out = run(["load-dataset", "movielens-100k", "--path", str(shared_data / "ml-100k")], env)
    assert out.returncode == 0, out.stderr
    store = Store.open(db_url)
    assert store.counts() == {"items": 1682, "customers": 943, "events": 100_000}
    assert set(store.sensitive_attributes()) == {"age_band", "gender", "occupation"}
    again = run(["load-dataset", "movielens-100k", "--path", str(shared_data / "ml-100k")], env)
    assert "events: 0 new, 100000 already present" in again.stdout
    assert store.counts()["events"] == 100_000
