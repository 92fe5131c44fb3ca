"""``clearshelf audit``: the fairness audit from the command line (see ``fairness``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from api.cli import app, console, open_store, progress_bar, user_errors
from api.settings import get_settings

if TYPE_CHECKING:  # imported when the command runs: `clearshelf --help` stays fast
    from fairness.outcomes import ReasonTypes
    from recsys.recommender import Recommender

EXIT_AUDIT = 3  # the audit ran and its status reached --fail-on

EPILOG = (
    "Examples:\n\n"
    "clearshelf audit --html report.html --fail-on fail\n\n"
    "clearshelf audit --sweep --intersect age_band,income --out report.json\n\n"
    "clearshelf audit --data-dir ./shop --sensitive age_band,gender --export-outcomes outcomes.parquet\n\n"
    f"Exit codes: 0 ok, 1 bad input, {EXIT_AUDIT} the status reached --fail-on."
)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _reason_types(model: Recommender) -> ReasonTypes:
    """The reason type of each served item, from an explainer built once for the audit model."""
    from explain import Explainer

    explainer = Explainer(model)
    return lambda ranked: [e.reason.type for e in explainer.explain(ranked)]


def _read_customers(directory: Path) -> Any:
    import polars as pl

    from recsys.data.validate import read_table

    for suffix in (".parquet", ".csv"):
        p = directory / f"customers{suffix}"
        if p.exists():
            frame = read_table(p, kind="customers").frame
            return frame.with_columns(pl.col("customer_id").cast(pl.Utf8).str.strip_chars())
    return pl.DataFrame({"customer_id": []}, schema={"customer_id": pl.Utf8})


@app.command("audit", epilog=EPILOG)
@user_errors
def audit_command(
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report to this file.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the HTML page to this file.")] = None,
    fail_on: Annotated[Literal["fail", "warn", "never"], typer.Option(help=f"Exit with code {EXIT_AUDIT} when the report's status is at least this.")] = "fail",
    sweep: Annotated[bool, typer.Option("--sweep", help="Also compute the mitigation trade-off (overall NDCG, largest gap, coverage per re-rank strength).")] = False,
    sweep_attribute: Annotated[str, typer.Option(help="Group attribute whose largest NDCG gap the sweep tracks.")] = "activity",
    intersect: Annotated[list[str] | None, typer.Option(help="Cross two or more attributes, e.g. age_band,income (repeatable).")] = None,
    export_outcomes: Annotated[Path | None, typer.Option(help="Write the per-customer outcome table as Parquet (customer_id, group columns, metric columns). On the store customer_id is the pseudonym; with --data-dir it is the id in the data.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Audit a generic dataset directory (items, events, customers) instead of the store; the report is written to files only.")] = None,
    sensitive: Annotated[str | None, typer.Option(help="Comma-separated sensitive customer columns to group by (default on the store: those declared at import).")] = None,
    k: Annotated[int | None, typer.Option(min=1, max=100, help="List length to judge (default: the thresholds' audit.k, 10).")] = None,
    split: Annotated[Literal["temporal", "random"], typer.Option(help="temporal: judge the last --cutoff-days; random: a seeded 20% hold-out per customer (ratings data).")] = "temporal",
    cutoff_days: Annotated[float, typer.Option(min=0.01, help="Train the audit model on events up to this many days before the newest; judge on the rest.")] = 28.0,
    max_customers: Annotated[int | None, typer.Option(min=1, help="Audit a seeded random sample of this many cohort customers.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the hold-out (data without timestamps), sampling and bootstrap.")] = 42,
    no_content: Annotated[bool, typer.Option("--no-content", help="Train the audit model without the text-embedding source (faster).")] = False,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons", help="Also measure the share of each reason type (runs the explainer on every list).")] = False,
) -> None:
    """Run the fairness audit now: per-group outcomes with 95% intervals, status against the thresholds, report."""
    from dataclasses import replace

    from fairness.audit import AuditConfig, audit_frames
    from fairness.job import audit_recommender, run_audit, write_files, write_outcomes
    from fairness.report import render_html
    from fairness.thresholds import ThresholdRepository
    from recsys.recommender import RecommenderConfig

    settings = get_settings()
    home = settings.ensure_home()
    store = open_store(settings)
    combos = tuple(tuple(_names(c)) for c in (intersect or []))
    for combo in combos:
        if len(combo) < 2:
            raise typer.BadParameter("--intersect needs two or more comma-separated attributes, e.g. age_band,income")
    config = AuditConfig(
        k=k, split=split, cutoff_days=cutoff_days, seed=seed, sensitive=tuple(_names(sensitive)) if sensitive else None,
        intersections=combos, sweep=sweep, sweep_attribute=sweep_attribute, max_customers=max_customers,
    )
    factory = _reason_types if reasons else None
    with progress_bar() as progress:
        if data_dir is None:
            result = run_audit(
                store, home, config=config, reasons=factory, progress=progress,
                export_outcomes=export_outcomes, without_content=no_content,
            )
            report, json_path, html_path = result.report, result.json_path, result.html_path
            page = html_path.read_text(encoding="utf-8")
        else:
            from recsys.evaluation.job import dataset_hierarchy, load_data_dir

            events, catalog = load_data_dir(data_dir)
            level2, level3 = dataset_hierarchy(data_dir.name)
            rc = RecommenderConfig(level2_column=level2, level3_column=level3)
            config = replace(config, recommender=audit_recommender(rc, home, without_content=no_content))
            run = audit_frames(
                events, catalog, _read_customers(data_dir),
                config=replace(config, sensitive=config.sensitive or ()),
                thresholds=ThresholdRepository(store).current(), source="data_dir",
                reasons=factory, progress=progress,
            )
            report = run.report
            page = render_html(report)
            json_path, html_path = write_files(report, page, home / "reports" / "data-dir")
            if export_outcomes is not None:
                write_outcomes(run, export_outcomes)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
    _summary(report)
    console.print(f"report {report['id']}: {json_path} and {html_path}")
    if export_outcomes is not None:
        console.print(f"per-customer outcomes written to {export_outcomes}")
    severity = {"pass": 0, "warn": 1, "fail": 2}
    if fail_on != "never" and severity[report["status"]] >= severity[fail_on]:
        raise typer.Exit(code=EXIT_AUDIT)


def _summary(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"fairness audit · status {report['status']} · cohort {report['cohort_size']:,} · k={report['k']}")
    for col in ("attribute", "metric", "overall", "difference [95% CI]", "ratio", "worst group", "status"):
        table.add_column(col)
    for m in report["metrics"]:
        if not m["judged"]:
            continue
        ci = m["difference_ci"] or [None, None]

        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        table.add_row(
            m["attribute"], m["metric"], f(m["overall"]), f"{f(m['difference'])} [{f(ci[0])}, {f(ci[1])}]",
            f(m["ratio"]), m["worst_group"] or "", m["status"],
        )
    console.print(table)
    if not report["statistics"].get("verdicts", 1):
        console.print(
            f"note: no group reached {report['statistics']['min_group_size']} customers, so nothing was judged; "
            "the status 'pass' means 'not enough data' here"
        )
    if report.get("sweep"):
        console.print(f"trade-off ({report['sweep_attribute']}, {report['sweep_metric']}):")
        for p in report["sweep"]:
            gap = "n/a" if p["max_gap"] is None else f"{p['max_gap']:.4f}"
            console.print(f"  strength {p['strength']:.2f}: NDCG {p['ndcg']:.4f}, largest gap {gap}, coverage {p['coverage']:.4f}")
