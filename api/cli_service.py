"""``clearshelf serve`` and ``clearshelf keys``: the HTTP service from the command line."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import app, console, err_console, open_store, progress_bar, pseudonymiser, user_errors
from api.settings import Settings, get_settings

keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _demo_setup(settings: Settings, store: Any, host: str, port: int) -> None:
    """Empty store: demo world, a trained model, a first audit and an admin key (printed once)."""
    from api.training import train_bundle
    from recsys.data.demo import DemoConfig, generate_demo
    from recsys.data.importer import import_frames

    console.print("empty store: generating the demo world (2,000 customers, 500 products, six months) ...")
    data = generate_demo(DemoConfig())
    with progress_bar() as progress:
        report = import_frames(
            store, pseudonymiser(settings), items=data.items, customers=data.customers,
            events=data.events, sensitive=data.sensitive, progress=progress,
        )
    console.print(f"loaded in {report.seconds:.1f} s: {report.summary()}")
    with progress_bar() as progress:
        info = train_bundle(store, settings.resolved_home, progress=progress)
    console.print(f"trained model {info.version} in {info.manifest['metrics']['train_seconds']:.1f} s")
    _first_audit(settings, store)
    from api.auth import create_key

    created = create_key(store, role="admin", name="demo admin")
    sample = str(data.customers["customer_id"][0])
    base = f"http://{host}:{port}"
    console.print()
    console.print("[bold]admin API key (shown once, store it now):[/]")
    console.print(created.key, markup=False, highlight=False)
    console.print()
    console.print("try:", markup=False)
    for line in (
        f"curl -s '{base}/recommendations?customer_id={sample}&k=5'",
        f"curl -s '{base}/recommendations?customer_id=someone-new&k=5&explain=false'",
        f"curl -s -H 'X-API-Key: {created.key}' {base}/admin/models",
        f"curl -s -H 'X-API-Key: {created.key}' {base}/fairness/reports/latest",
        f"curl -s -H 'X-API-Key: {created.key}' {base}/admin/thresholds",
        f"open {base}/docs (API reference) and {base}/admin/console",
    ):
        console.print("  " + line, markup=False, highlight=False)
    console.print()


def _first_audit(settings: Settings, store: Any) -> None:
    from fairness.audit import AuditConfig
    from fairness.job import run_audit

    console.print("running a first fairness audit (with the re-rank trade-off sweep) ...")
    with progress_bar() as progress:
        result = run_audit(store, settings.resolved_home, config=AuditConfig(sweep=True), progress=progress)
    console.print(f"fairness report {result.report_id}: {result.report.get('status')}")


def _quiet_server_class() -> Any:
    import contextlib

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn re-raises a caught Ctrl+C after its graceful shutdown, which ends a clean stop in a
        KeyboardInterrupt traceback; we have shut down already, so we swallow it."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            with super().capture_signals():
                try:
                    yield
                finally:
                    captured = getattr(self, "_captured_signals", None)
                    if isinstance(captured, list):
                        captured.clear()

    return QuietServer


def _quiet_server(config: Any) -> Any:
    return _quiet_server_class()(config)


@app.command(
    "serve",
    epilog=(
        "Examples: clearshelf serve --demo\n\n"
        "clearshelf serve --host 0.0.0.0 --port 8000 --workers 2"
    ),
)
@user_errors
def serve_command(
    demo: Annotated[bool, typer.Option("--demo", help="On an empty store: generate demo data, train, audit, create an admin key and print it once.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each loads the model).")] = 1,
) -> None:
    """Run the HTTP service (uvicorn with uvloop and httptools)."""
    import uvicorn

    settings = get_settings()
    store = open_store(settings)
    if demo:
        if store.counts()["events"] == 0:
            _demo_setup(settings, store, host, port)
        else:
            console.print("the store already holds data: serving it (no demo data generated, no new key)")
            from recsys.bundle import ModelRegistry

            if ModelRegistry(settings.resolved_home / "models").active_version() is None:
                from api.training import train_bundle

                with progress_bar() as progress:
                    info = train_bundle(store, settings.resolved_home, progress=progress)
                console.print(f"trained model {info.version}")
    store.dispose()
    common: dict[str, Any] = {
        "host": host, "port": port, "http": "httptools", "loop": "uvloop",
        "access_log": False, "log_config": None, "timeout_graceful_shutdown": 10,
    }
    console.print(f"serving on http://{host}:{port} with {workers} worker{'s' if workers > 1 else ''} "
                  f"(API reference at /docs); Ctrl+C stops")
    if workers == 1:
        from api.app import create_app

        _quiet_server(uvicorn.Config(create_app(settings), **common)).run()
        return
    # Every worker is a fresh process that builds its app from the environment;
    # the metrics of all of them are aggregated through this directory.
    import os

    metrics_dir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=settings.ensure_home()))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # glibc gives each thread of a worker's request thread pool its own malloc arena
    # (up to 8 per core), and a worker's memory then grows in arena-sized steps as
    # cached answers churn; two arenas keep it flat (docs/performance.md, Soak).
    # Read by glibc at process start, so it applies to the workers spawned below.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # one listening socket per worker (SO_REUSEPORT): the kernel spreads connections over them
    # instead of the first worker to wake taking every waiting one (api/workers.py)
    from api.workers import SpreadWorkers, reuseport_sockets

    config = uvicorn.Config("api.app:create_app", factory=True, workers=workers, **common)
    try:
        SpreadWorkers(config, reuseport_sockets(host, port, workers)).run()
    except KeyboardInterrupt:  # as uvicorn.run: a Ctrl+C during startup is a clean stop
        pass
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@keys_app.command("create", epilog="Example: clearshelf keys create --role admin --name 'ops team'")
@user_errors
def keys_create(
    role: Annotated[str, typer.Option(help="admin (everything), privacy (customer data rights) or reader (public routes when keys are required).")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from api.auth import ROLES, create_key

    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}")
    created = create_key(open_store(), role=role, name=name)
    err_console.print(f"created key {created.principal.key_id} with role {role}; it is shown only now:")
    console.print(created.key, markup=False, highlight=False)


@keys_app.command("list", epilog="Example: clearshelf keys list")
@user_errors
def keys_list() -> None:
    """List keys (ids, roles, names; never the keys)."""
    from rich.table import Table

    from api.auth import list_keys

    table = Table()
    for col in ("key id", "role", "name", "created", "last used", "revoked"):
        table.add_column(col)
    for k in list_keys(open_store()):
        table.add_row(str(k["key_id"]), str(k["role"]), str(k["name"] or ""), str(k["created_at"]),
                      str(k["last_used_at"] or ""), str(k["revoked_at"] or ""))
    console.print(table)


@keys_app.command("revoke", epilog="Example: clearshelf keys revoke 3f9a0c1b2d4e")
@user_errors
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after cs_).")]) -> None:
    """Revoke a key (takes effect in every worker within 10 seconds)."""
    from api.auth import revoke_key
    from recsys.errors import ClearshelfError

    if not revoke_key(open_store(), key_id, actor=None):
        raise ClearshelfError(f"no active key with id {key_id}: see `clearshelf keys list`")
    console.print(f"revoked key {key_id}")
