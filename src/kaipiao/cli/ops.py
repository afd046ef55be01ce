"""Running a deployment: `status`, `reconcile`, and the offline tools `plan` and `bench`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from kaipiao.cli.shared import AsJson, DatabaseUrl, DataDir, fail, run_db, settings_from


def status(
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The queue, every worker's breakers and limits, and the incident level."""
    from kaipiao.clock import utcnow
    from kaipiao.services import status as service

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    snap = run_db(settings, lambda db: service.snapshot(db, utcnow()))
    if as_json:
        typer.echo(json.dumps(snap.to_json(), ensure_ascii=False))
        return
    for line in service.render(snap):
        typer.echo(line)


def reconcile(
    since: Annotated[
        str | None,
        typer.Option(
            help="Compare what changed since this UTC time (ISO 8601); default: 24 h ago."
        ),
    ] = None,
    platform_url: Annotated[
        str | None, typer.Option(help="Tax platform URL. [env: KAIPIAO_PLATFORM_URL]")
    ] = None,
    recover: Annotated[
        bool,
        typer.Option(
            help="After a restore: bring back as issued what the platform issued "
            "(kaipiao restore does this itself)."
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare local state with the platform's listing; exit 1 if anything contradicts."""
    from kaipiao.clock import utcnow
    from kaipiao.runtime import reconcile_once, recover_once

    settings = settings_from(
        platform_url=platform_url, data_dir=data_dir, database_url=database_url
    )
    url = settings.platform_url
    if url is None:
        fail("kaipiao reconcile needs --platform-url (or KAIPIAO_PLATFORM_URL)", 2)
    try:
        start = datetime.fromisoformat(since) if since else utcnow() - timedelta(hours=24)
    except ValueError:
        fail(f"--since {since!r} is not an ISO 8601 time", 2)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if recover:
        found = run_db(settings, lambda db: recover_once(settings, db, url, since=start))
        typer.echo(
            f"{found.listed} listed, {len(found.recovered)} brought back, "
            f"{len(found.settled)} settled, {len(found.contradictions)} contradictions"
        )
        for line in [*found.recovered, *found.settled]:
            typer.echo(f"  recovered {line}")
        for line in found.contradictions:
            typer.echo(f"  attention {line}")
        for seller_id in found.unreachable:  # never silent: exit 1 says some were not compared
            typer.echo(f"  platform unreachable for seller {seller_id}", err=True)
        raise typer.Exit(1 if found.unreachable or found.contradictions else 0)
    report = run_db(settings, lambda db: reconcile_once(settings, db, url, since=start))
    typer.echo(f"checked {report.checked}, settled {report.settled}, "
               f"contradictions {len(report.contradictions)} "
               f"(deviation {report.deviation:.4%})")  # fmt: skip
    for line in report.contradictions:
        typer.echo(f"  contradiction: {line}")
    for seller_id in report.unreachable:
        typer.echo(f"  platform unreachable for seller {seller_id}", err=True)
    if report.contradictions or report.unreachable:
        raise typer.Exit(1)


def plan(
    invoices_per_day: Annotated[
        int | None, typer.Option(help="Invoices a day on average (or --from-history).")
    ] = None,
    peak_factor: Annotated[float, typer.Option(help="Peak rate ÷ average rate.")] = 10.0,
    latency_mean: Annotated[float, typer.Option(help="Platform latency, mean, seconds.")] = 0.8,
    latency_p99: Annotated[float, typer.Option(help="Platform latency, p99, seconds.")] = 5.0,
    quota: Annotated[float, typer.Option(help="Platform calls/s allowed, all sellers.")] = 300.0,
    payload_bytes: Annotated[int, typer.Option(help="Size of one invoice request.")] = 2048,
    retention_years: Annotated[int, typer.Option(help="Years invoices are kept.")] = 10,
    replicas: Annotated[int, typer.Option(help="Processes of each kind, at least.")] = 2,
    failure_rate: Annotated[float, typer.Option(help="Share of platform calls failing.")] = 0.005,
    disk_iops: Annotated[int, typer.Option(help="Write IOPS the database disk sustains.")] = 3000,
    concurrent_users: Annotated[
        int | None, typer.Option(help="Callers at once, for the field's pool rule.")
    ] = None,
    helm_values: Annotated[
        bool, typer.Option(help="Print values for the Helm chart, the reasoning as comments.")
    ] = False,
    from_history: Annotated[
        bool,
        typer.Option(
            help="Take the last 24 h of stored intake as the forecast, and say "
            "when each quota or the backlog SLO is exceeded at its trend."
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Capacity planner: what a deployment needs at its peak, with the reasoning shown."""
    from kaipiao.ops.plan import PlanInput, render
    from kaipiao.ops.plan import plan as work_out

    def say(text: str) -> None:  # with --helm-values, the history is a comment of the YAML
        typer.echo(f"# {text}".rstrip() if helm_values else text)

    if from_history:
        from kaipiao.clock import utcnow
        from kaipiao.services import forecast as exhaustion

        settings = settings_from(data_dir=data_dir, database_url=database_url)
        now = utcnow()
        history = run_db(settings, lambda db: exhaustion.recent_intake(db, now))
        if not history:
            fail(
                "no whole hour of intake stored in the last 72 h (history counts whole hours, the "
                "current one is not yet one): nothing to plan from",
                1,
            )
        last_day = history[-24:]
        invoices_per_day = invoices_per_day or max(1, round(sum(last_day) * 24 / len(last_day)))
        mean = sum(last_day) / len(last_day)
        peak_factor = max(1.0, max(last_day) / mean) if mean else peak_factor
        say(f"from history: {len(history)} h of intake; last {len(last_day)} h → "
                   f"{invoices_per_day} invoices/day, hourly peak factor {peak_factor:.2f} "
                   "(peaks within an hour are higher: check against --peak-factor)")  # fmt: skip
        for line in exhaustion.render(run_db(settings, lambda db: exhaustion.exhaustion(db, now))):
            say(line)
        say("")
    if invoices_per_day is None:
        fail("--invoices-per-day is required (or --from-history)", 2)

    try:
        forecast = PlanInput(
            invoices_per_day=invoices_per_day, peak_factor=peak_factor,
            latency_mean_s=latency_mean, latency_p99_s=latency_p99, quota_per_s=quota,
            payload_bytes=payload_bytes, retention_years=retention_years, replicas=replicas,
            failure_rate=failure_rate, disk_iops=disk_iops, concurrent_users=concurrent_users,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc), 2)
    if helm_values:
        from kaipiao.ops.helm_values import helm_values as values_for

        typer.echo(values_for(forecast, work_out(forecast)), nl=False)
        return
    typer.echo(render(forecast, work_out(forecast)))


def bench(
    url: Annotated[str, typer.Argument(help="A kaipiao base URL, e.g. http://127.0.0.1:8000.")],
    api_key: Annotated[
        list[str], typer.Option(help="Seller API key (repeatable: requests alternate).")
    ],
    rate: Annotated[
        float | None, typer.Option(help="Open loop: requests/s, answered or not.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Closed loop: requests kept outstanding.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="A caller's timeout, seconds.")] = 5.0,
    as_json: AsJson = False,
) -> None:
    """Load a kaipiao URL with invoice requests; print throughput and latency percentiles."""
    from kaipiao.ops.bench import run_bench

    if (rate is None) == (concurrency is None):
        fail("give exactly one of --rate (open loop) or --concurrency (closed loop)", 2)
    if duration <= 0 or (rate is not None and rate <= 0) or (concurrency or 1) < 1:
        fail("--duration and --rate must be positive, --concurrency at least 1", 2)
    code = run_bench(url.rstrip("/"), api_key, rate, concurrency, duration, timeout, as_json)
    raise typer.Exit(code)
