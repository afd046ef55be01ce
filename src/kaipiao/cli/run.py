"""Commands that run processes: serve, worker, sandbox; and migrate, which readies the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from kaipiao.cli.shared import DatabaseUrl, DataDir, fail, run_db, settings_from
from kaipiao.sandbox.faults import PROFILES

LogLevel = Annotated[str | None, typer.Option(help="debug, info, warning, error.")]


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0: any free port).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    platform_url: Annotated[
        str | None,
        typer.Option(help="Tax platform URL; default: a sandbox in this process."),
    ] = None,
    demo_seller: Annotated[
        bool | None, typer.Option(help="Create a demo seller on first start.")
    ] = None,
    workers: Annotated[
        bool | None,
        typer.Option(help="Run issuing workers in this process (--no-workers: API only)."),
    ] = None,
    log_level: LogLevel = None,
) -> None:
    """Run the gateway: the HTTP API and issuing workers, on an embedded SQLite store by default."""
    from kaipiao import runtime

    settings = settings_from(
        host=host, port=port, data_dir=data_dir, database_url=database_url,
        platform_url=platform_url, demo_seller=demo_seller, log_level=log_level, workers=workers,
    )  # fmt: skip
    runtime.run_process(runtime.serve, settings)


def worker(
    platform_url: Annotated[
        str | None, typer.Option(help="Tax platform URL. [env: KAIPIAO_PLATFORM_URL]")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    lease_s: Annotated[
        float | None, typer.Option(help="Lease per claimed invoice, seconds.")
    ] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(help="Platform calls in flight at most.")
    ] = None,
    settle_s: Annotated[
        float | None,
        typer.Option(help="Platform's longest processing time; a not-found is trusted after it."),
    ] = None,
    log_level: LogLevel = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0: any free one).")
    ] = None,
) -> None:
    """Run an issuing worker (no HTTP API): claims due invoices and issues them."""
    from kaipiao import runtime

    settings = settings_from(
        platform_url=platform_url, data_dir=data_dir, database_url=database_url, lease_s=lease_s,
        max_in_flight=max_in_flight, log_level=log_level, settle_s=settle_s,
        metrics_port=metrics_port,
    )  # fmt: skip
    if settings.platform_url is None:
        fail("kaipiao worker needs --platform-url (or KAIPIAO_PLATFORM_URL)", 2)
    runtime.run_process(runtime.run_worker, settings)


def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply database migrations (safe to run again)."""
    from kaipiao.store.migrate import current_revision

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    revision = run_db(settings, current_revision, migrate=True)
    typer.echo(f"database at revision {revision}")


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8700,
    profile: Annotated[str, typer.Option(help=f"Fault profile: {', '.join(PROFILES)}.")] = "normal",
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    state: Annotated[
        Path | None, typer.Option(help="Keep what was issued in this file across restarts.")
    ] = None,
    nuonuo_app: Annotated[
        list[str] | None,
        typer.Option(help="KEY:SECRET of an app the Nuonuo front accepts (repeatable)."),
    ] = None,
) -> None:
    """Run the sandbox tax platform (a real HTTP server with fault profiles).

    Speaks kaipiao's sandbox protocol under /v1 and Nuonuo's open API at /open/v1/services."""
    if profile not in PROFILES:
        raise typer.BadParameter(
            f"unknown profile; known: {', '.join(PROFILES)}", param_hint="--profile"
        )
    apps: dict[str, str] = {}
    for item in nuonuo_app or []:
        key, sep, secret = item.partition(":")
        if not sep or not key or not secret:
            raise typer.BadParameter("give KEY:SECRET", param_hint="--nuonuo-app")
        apps[key] = secret
    # The sandbox's own runner, not kaipiao.runtime: a sandbox starts in a fraction of the time
    # without the gateway's modules, and tests and drills start many.
    from kaipiao.sandbox.run import install_event_loop, serve_sandbox

    install_event_loop()
    asyncio.run(serve_sandbox(host, port, profile, seed, state, apps))
