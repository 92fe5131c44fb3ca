"""The fairness report: a versioned JSON document and a self-contained HTML page.

The JSON schema is :class:`FairnessReport` (pydantic); its JSON Schema is
shipped as ``fairness/report.schema.json`` (regenerate with
``python -m fairness.report``) and documented in ``docs/fairness.md``.
``SCHEMA_VERSION`` changes when a field is renamed or removed (a new optional
field is a minor bump). The HTML page needs no network: inline CSS and
inline SVG only, no scripts, no fonts, no links out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(__file__).with_name("report.schema.json")

StatusName = Literal["pass", "warn", "fail", "too_small"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalOut(_Model):
    value: float | None
    ci_low: float | None
    ci_high: float | None


class GroupOut(_Model):
    value: float | None = Field(description="the group's mean of the metric")
    ci_low: float | None = Field(description="lower end of the bootstrap interval of value")
    ci_high: float | None
    n: int = Field(description="customers in the group")
    status: StatusName = Field(description="this group against the reference group; too_small below min_group_size")
    difference_to_reference: IntervalOut | None
    ratio_to_reference: IntervalOut | None


class ThresholdPair(_Model):
    ratio_min: float | None
    difference_max: float | None


class MetricOut(_Model):
    attribute: str
    metric: str
    direction: Literal["higher", "lower", "neutral"] = Field(description="which way is better for the customer")
    overall: float | None
    by_group: dict[str, GroupOut]
    difference: float | None = Field(description="largest minus smallest group value (judgeable groups; Fairlearn difference)")
    difference_ci: list[float | None] | None
    ratio: float | None = Field(description="smallest over largest group value (Fairlearn ratio)")
    ratio_ci: list[float | None] | None
    group_min: float | None
    reference_group: str | None
    worst_group: str | None
    status: StatusName
    judged: bool = Field(description="whether this metric counts towards the report status")
    thresholds: ThresholdPair


class ExposureGroupOut(_Model):
    exposure_share: float | None
    relevant_share: float | None
    ratio: float | None
    ratio_ci: list[float | None]
    status: StatusName


class ExposureOut(_Model):
    column: str
    groups: dict[str, ExposureGroupOut]
    ratio_min: float


class SweepPoint(_Model):
    strength: float
    ndcg: float | None = Field(description="overall NDCG@k of the cohort at this re-rank strength")
    max_gap: float | None = Field(description="largest group difference of NDCG@k for sweep_attribute")
    coverage: float | None = Field(description="share of the catalog in anyone's top k")
    gaps: dict[str, float | None] = Field(default_factory=dict, description="largest NDCG gap per attribute")


class DataOut(_Model):
    source: Literal["store", "data_dir"]
    events: int
    customers: int
    items: int
    first_ts: int | None
    last_ts: int | None
    split: Literal["temporal", "random"]
    cutoff: int | None = Field(description="epoch seconds: the audit model saw events up to here")
    cutoff_days: float | None
    train_events: int
    test_events: int


class FairnessReport(_Model):
    schema_version: Literal["1.0"]
    id: str
    created_at: str = Field(description="ISO-8601 UTC")
    model_version: str | None = Field(description="the serving model this audit stands for (None if none is active)")
    audit_model: dict[str, Any] = Field(description="the model trained up to the cutoff that produced the outcomes")
    cohort_size: int
    k: int
    status: Literal["pass", "warn", "fail"]
    thresholds_version: int | None
    thresholds: dict[str, Any]
    policy: dict[str, Any] = Field(description="serving policy the cohort was served with")
    groups: dict[str, str] = Field(description="attribute -> how its groups were formed")
    data: DataOut
    metrics: list[MetricOut]
    item_exposure: ExposureOut | None = None
    sweep: list[SweepPoint] | None = None
    sweep_attribute: str | None = None
    sweep_metric: str | None = None
    statistics: dict[str, Any] = Field(description="bootstrap settings: resamples, confidence, seed, method")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")


def validate_report(report: dict[str, Any]) -> FairnessReport:
    """Parse ``report`` against the schema (raises pydantic ValidationError naming each field)."""
    return FairnessReport.model_validate(report)


def json_schema() -> dict[str, Any]:
    schema = FairnessReport.model_json_schema()
    schema["$id"] = f"clearshelf-fairness-report-{SCHEMA_VERSION}"
    schema["title"] = f"clearshelf fairness report, schema {SCHEMA_VERSION}"
    return schema


# -- plain sentences -----------------------------------------------------------------------

METRIC_SENTENCES: dict[str, str] = {
    "ndcg": "How high up the list the items the customer went on to buy were (1 = all at the very top, 0 = none in the list).",
    "recall": "The share of the items the customer went on to buy that were in the list.",
    "hr": "The share of customers with at least one item in the list that they went on to buy.",
    "popularity": "How mainstream the items shown were: on average, the share of customers who had bought each one.",
    "private_label_share": "The share of the items shown that are the retailer's own (private-label) brand.",
    "price_level": "How expensive the items shown were within their category (0 = cheapest, 1 = dearest).",
    "category_diversity": "How varied the list was: distinct categories over items shown.",
    "cold_start_share": "The share of customers who got the generic popular list instead of a personal one.",
}


def metric_sentence(metric: str) -> str:
    base = metric.split("@", 1)[0]
    if base.startswith("reason:"):
        return f"The share of items shown whose reason was of type '{base[7:]}'."
    return METRIC_SENTENCES.get(base, metric)


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def finding_sentence(m: dict[str, Any]) -> str:
    """One plain sentence saying which group is served worse, by how much, how sure we are."""
    if m["reference_group"] is None:
        return f"Not judged: fewer than two groups of {m['attribute']} are large enough."
    worst = m["worst_group"]
    ref = m["reference_group"]
    g = m["by_group"][worst]
    r = m["by_group"][ref]
    d = g["difference_to_reference"] or {}
    verdict = {"pass": "within the limits", "warn": "beyond a limit, but the interval does not rule out chance",
               "fail": "beyond a limit with the whole 95% interval"}[m["status"]] if m["status"] != "too_small" else "not judged"
    return (
        f"{m['attribute']} = {worst} gets {_f(g['value'])} against {_f(r['value'])} for {ref} "
        f"(gap {_f(d.get('value'))}, 95% CI {_f(d.get('ci_low'))} to {_f(d.get('ci_high'))}): {verdict}."
    )


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2rem;color:#1b1f23;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem;margin-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;font-size:.9rem}
.pass{background:#dff3e4}.warn{background:#fff4d6}.fail{background:#fde2e1}.too_small{background:#eee;color:#555}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;font-weight:600}
.sentence{color:#444;margin:.2rem 0 .5rem}.note{color:#666;font-size:.85rem}
svg text{font-size:11px;fill:#333}
"""
_STATUS_COLOUR = {"pass": "#2a8a3e", "warn": "#c98a00", "fail": "#c0392b", "too_small": "#888"}


def _date(ts: int | None) -> str:
    from datetime import UTC, datetime

    return "n/a" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status.replace("_", " "))}</span>'


def interval_svg(m: dict[str, Any], *, width: int = 560) -> str:
    """Each group's value as a dot with its interval as a bar, the overall value as a line."""
    groups = list(m["by_group"].items())
    row_h, left, right = 22, 150, 70
    height = row_h * len(groups) + 28
    vals = [v for _, g in groups for v in (g["ci_low"], g["ci_high"], g["value"]) if v is not None]
    if m["overall"] is not None:
        vals.append(m["overall"])
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    span = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * span

    parts = [f'<svg role="img" aria-label="{_e(m["metric"])} by {_e(m["attribute"])}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<line x1="{left}" y1="{height - 18}" x2="{left + span}" y2="{height - 18}" stroke="#999"/>')
    parts.append(f'<text x="{left}" y="{height - 4}">{lo:.3f}</text><text x="{left + span - 30}" y="{height - 4}">{hi:.3f}</text>')
    if m["overall"] is not None:
        ox = x(m["overall"])
        parts.append(f'<line x1="{ox:.1f}" y1="4" x2="{ox:.1f}" y2="{height - 18}" stroke="#555" stroke-dasharray="3,3"/>')
        parts.append(f'<text x="{ox + 3:.1f}" y="12">overall {m["overall"]:.3f}</text>')
    for i, (name, g) in enumerate(groups):
        y = 24 + i * row_h
        colour = _STATUS_COLOUR.get(g["status"], "#333")
        parts.append(f'<text x="4" y="{y + 4}">{_e(name)} (n={g["n"]})</text>')
        if g["ci_low"] is not None and g["ci_high"] is not None:
            parts.append(f'<line x1="{x(g["ci_low"]):.1f}" y1="{y}" x2="{x(g["ci_high"]):.1f}" y2="{y}" stroke="{colour}" stroke-width="3"/>')
        if g["value"] is not None:
            parts.append(f'<circle cx="{x(g["value"]):.1f}" cy="{y}" r="4" fill="{colour}"/>')
            parts.append(f'<text x="{left + span + 6}" y="{y + 4}">{g["value"]:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_svg(points: Sequence[tuple[str, float | None]], *, label: str, limit: float | None = None, width: int = 560, height: int = 140) -> str:
    """A small line chart of (x label, value) points; ``limit`` as a dashed line."""
    vals = [v for _, v in points if v is not None]
    if limit is not None:
        vals.append(limit)
    if not vals:
        return '<p class="note">no values yet</p>'
    lo, hi = min(0.0, min(vals)), max(vals) * 1.1 or 1.0
    left, bottom, top = 50, 22, 10
    span_x = width - left - 10
    n = max(len(points) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + i / n * span_x, top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom)

    parts = [f'<svg role="img" aria-label="{_e(label)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>')
    parts.append(f'<text x="2" y="{top + 8}">{hi:.3f}</text><text x="2" y="{height - bottom}">{lo:.3f}</text>')
    if limit is not None:
        _, ly = xy(0, limit)
        parts.append(f'<line x1="{left}" y1="{ly:.1f}" x2="{width - 10}" y2="{ly:.1f}" stroke="#c0392b" stroke-dasharray="4,3"/>')
        parts.append(f'<text x="{width - 90}" y="{ly - 3:.1f}">limit {limit:g}</text>')
    coords = [xy(i, v) for i, (_, v) in enumerate(points) if v is not None]
    if len(coords) > 1:
        parts.append('<polyline fill="none" stroke="#2c6fbb" stroke-width="2" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in coords) + '"/>')
    for i, (name, v) in enumerate(points):
        if v is None:
            continue
        cx, cy = xy(i, v)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#2c6fbb"><title>{_e(name)}: {v:.4f}</title></circle>')
    if points:
        parts.append(f'<text x="{left}" y="{height - 6}">{_e(points[0][0])}</text>')
        if len(points) > 1:
            parts.append(f'<text x="{width - 150}" y="{height - 6}">{_e(points[-1][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any], *, history: Sequence[dict[str, Any]] = ()) -> str:
    """The self-contained page. ``history``: earlier reports (any order) for the trend."""
    r = report
    d = r["data"]
    out: list[str] = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
                      f"<title>clearshelf fairness report {_e(r['id'])}</title><style>{_CSS}</style></head><body>"]
    out.append(f"<h1>Fairness report {_badge(r['status'])}</h1>")
    out.append(
        '<p class="sentence">Does any group of customers get worse recommendations than the others? Each metric below '
        "is compared across the groups of each attribute; bars are 95% bootstrap intervals, the dashed line the value "
        "over everyone. Status: <b>pass</b> = within the limits, <b>warn</b> = the estimate crosses a limit but the "
        "interval does not clear it, <b>fail</b> = the whole interval is beyond the limit.</p>"
    )
    out.append("<h2>Provenance</h2><table>")
    rows = [
        ("report id", r["id"]), ("created", r["created_at"]), ("serving model", r["model_version"] or "none active"),
        ("audit model", r["audit_model"].get("description", "")), ("cohort size", f"{r['cohort_size']:,} customers"),
        ("list length k", r["k"]), ("data", f"{d['source']}: {d['events']:,} events, {d['customers']:,} customers, {d['items']:,} items"),
        ("data dates", f"{_date(d['first_ts'])} to {_date(d['last_ts'])} (UTC)"),
        ("split", f"{d['split']}; cutoff {r['audit_model'].get('cutoff_iso') or 'n/a'}; {d['train_events']:,} training / {d['test_events']:,} held-out events"),
        ("thresholds", f"version {r['thresholds_version']}; policy {json.dumps(r['policy'])}"),
        ("statistics", f"{r['statistics']['resamples']} bootstrap resamples within each group, {r['statistics']['confidence']:.0%} intervals, seed {r['statistics']['seed']}; groups under {r['thresholds']['audit']['min_group_size']} customers are too small to judge"),
    ]
    out += [f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows]
    out.append("</table>")

    out.append("<h2>Gaps against thresholds</h2><table><tr><th>attribute</th><th>metric</th><th>difference [95% CI]</th>"
               "<th>limit</th><th>ratio [95% CI]</th><th>limit</th><th>worst group</th><th>status</th></tr>")
    for m in r["metrics"]:
        if not m["judged"]:
            continue
        dci = m["difference_ci"] or [None, None]
        rci = m["ratio_ci"] or [None, None]
        t = m["thresholds"]
        out.append(
            f"<tr class=\"{_e(m['status'])}\"><td>{_e(m['attribute'])}</td><td>{_e(m['metric'])}</td>"
            f"<td>{_f(m['difference'])} [{_f(dci[0])}, {_f(dci[1])}]</td><td>{_f(t['difference_max'], 2) if t['difference_max'] is not None else 'off'}</td>"
            f"<td>{_f(m['ratio'])} [{_f(rci[0])}, {_f(rci[1])}]</td><td>{_f(t['ratio_min'], 2) if t['ratio_min'] is not None else 'off'}</td>"
            f"<td>{_e(m['worst_group'] or '')}</td><td>{_badge(m['status'])}</td></tr>"
        )
    out.append("</table>")

    by_metric: dict[str, list[dict[str, Any]]] = {}
    for m in r["metrics"]:
        by_metric.setdefault(m["metric"], []).append(m)
    out.append("<h2>Per-group values</h2>")
    for metric, entries in by_metric.items():
        judged = entries[0]["judged"]
        out.append("<section>" if judged else "<details><summary>")
        out.append(f"<h3>{_e(metric)}{'' if judged else ' (reported, not judged)'}</h3>")
        out.append("" if judged else "</summary>")
        out.append(f'<p class="sentence">{_e(metric_sentence(metric))}</p>')
        for m in entries:
            out.append(f"<h4>{_e(m['attribute'])} {_badge(m['status'])}</h4>")
            out.append(f'<p class="sentence">{_e(finding_sentence(m))}</p>')
            out.append(interval_svg(m))
        out.append("</section>" if judged else "</details>")

    exp = r.get("item_exposure")
    if exp:
        out.append("<h2>Item side: exposure against relevance</h2>")
        out.append(
            f'<p class="sentence">For each {_e(exp["column"])} group: its share of the items shown against its share of the '
            "items customers went on to buy. A ratio under the four-fifths limit means that group is under-exposed.</p>"
        )
        out.append("<table><tr><th>group</th><th>exposure share</th><th>relevant share</th><th>ratio [95% CI]</th><th>status</th></tr>")
        for name, g in exp["groups"].items():
            out.append(
                f"<tr class=\"{_e(g['status'])}\"><td>{_e(name)}</td><td>{_f(g['exposure_share'])}</td><td>{_f(g['relevant_share'])}</td>"
                f"<td>{_f(g['ratio'])} [{_f(g['ratio_ci'][0])}, {_f(g['ratio_ci'][1])}]</td><td>{_badge(g['status'])}</td></tr>"
            )
        out.append("</table>")

    if r.get("sweep"):
        out.append("<h2>Mitigation trade-off</h2>")
        out.append(
            f'<p class="sentence">What the re-rank strength buys: overall {_e(r.get("sweep_metric"))} and the largest gap '
            f"between {_e(r.get('sweep_attribute'))} groups, for each strength (0 = the ranker's own order).</p>"
        )
        out.append("<table><tr><th>strength</th><th>overall NDCG</th><th>largest gap</th><th>coverage</th></tr>")
        for p in r["sweep"]:
            out.append(f"<tr><td>{p['strength']:g}</td><td>{_f(p['ndcg'], 4)}</td><td>{_f(p['max_gap'], 4)}</td><td>{_f(p['coverage'], 4)}</td></tr>")
        out.append("</table>")
        out.append(line_svg([(f"{p['strength']:g}", p["max_gap"]) for p in r["sweep"]], label="largest gap by strength"))

    out.append("<h2>Trend</h2>")
    earlier = sorted([h for h in history if h.get("id") != r["id"]], key=lambda h: h.get("created_at", ""))
    series = [*earlier, r]
    if len(series) < 2:
        out.append('<p class="note">This is the first stored report; the trend appears from the second one on.</p>')
    out.append('<p class="sentence">The largest group gap of each judged quality metric over the stored reports (dashed: the limit).</p>')
    for m in r["metrics"]:
        if not m["judged"] or not m["metric"].startswith("ndcg"):
            continue
        pts: list[tuple[str, float | None]] = []
        for h in series:
            match = next((x for x in h.get("metrics", []) if x["attribute"] == m["attribute"] and x["metric"] == m["metric"]), None)
            pts.append((h.get("created_at", "")[:16], match["difference"] if match else None))
        out.append(f"<h4>{_e(m['metric'])} gap by {_e(m['attribute'])}</h4>")
        out.append(line_svg(pts, label=f"trend of {m['metric']} gap by {m['attribute']}", limit=m["thresholds"]["difference_max"]))

    out.append("<h2>Groups</h2><table>")
    out += [f"<tr><th>{_e(a)}</th><td>{_e(t)}</td></tr>" for a, t in r["groups"].items()]
    out.append("</table>")
    out.append(f'<p class="note">clearshelf fairness report schema {_e(r["schema_version"])}.</p></body></html>')
    return "".join(out)


if __name__ == "__main__":  # regenerate the shipped schema file
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {SCHEMA_FILE}")
