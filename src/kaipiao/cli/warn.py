"""`kaipiao warn …`: score a series online, or evaluate a detector on a NAB-layout corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kaipiao.warn.corpus import Series, load_corpus
from kaipiao.warn.evaluate import SCOREBOARD, Evaluation, evaluate
from kaipiao.warn.registry import DEFAULT, DETECTORS, make_detector
from kaipiao.warn.stream import score_csv

warn_app = typer.Typer(
    help="Early warning: score a series online, or evaluate a detector on NAB.",
    no_args_is_help=True,
)

DetectorName = Annotated[str, typer.Option("--detector", help=f"One of: {', '.join(DETECTORS)}.")]


def _detector_or_exit(name: str) -> None:
    if name not in DETECTORS:
        typer.echo(f"error: unknown detector {name!r}; known: {', '.join(DETECTORS)}", err=True)
        raise typer.Exit(2)


@warn_app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="CSV with the columns timestamp,value.")],
    out: Annotated[Path, typer.Option("--out", help="Output: timestamp,value,anomaly_score.")],
    detector: DetectorName = DEFAULT,
) -> None:
    """Score every row of FILE online (each from the rows before it) and write the scores."""
    _detector_or_exit(detector)
    try:
        with file.open(newline="") as source, out.open("w", newline="") as sink:
            rows = score_csv(source, sink, make_detector(detector))
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{rows} rows scored with {detector} → {out}")


@warn_app.command("evaluate")
def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="NAB layout: data/<group>/*.csv, windows.")],
    detector: DetectorName = DEFAULT,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
) -> None:
    """Run a detector over a NAB-layout corpus; print the three profiles' scores."""
    _detector_or_exit(detector)
    started = time.perf_counter()
    try:
        corpus = load_corpus(data)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console = Console()
    total = sum(len(s.values) for s in corpus)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} values"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(detector, total=total)

        def advance(series: Series) -> None:
            progress.update(task, advance=len(series.values), description=series.name)

        result = evaluate(corpus, lambda: make_detector(detector), detector, advance)
    wall = time.perf_counter() - started
    _print(console, result, wall)
    if json_out is not None:
        json_out.write_text(json.dumps(_as_json(result, wall, data), indent=2) + "\n")
        console.print(f"written to {json_out}")


def _print(console: Console, result: Evaluation, wall: float) -> None:
    windows = result.results[0].detected + result.results[0].missed
    console.print(
        f"{result.detector}: {result.series} series, {result.values:,} values, "
        f"{windows} anomaly windows"
    )
    profiles = Table("profile", "score", "threshold", "windows found", "false positives")
    for r in result.results:
        profiles.add_row(
            r.profile.name,
            f"{r.score:.1f}",
            f"{r.threshold:.4f}",
            f"{r.detected}/{r.detected + r.missed}",
            str(r.false_positives),
        )
    console.print(profiles)
    short = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
    groups = Table("group", *(short.get(r.profile.name, r.profile.name) for r in result.results))
    for group in result.results[0].by_group:
        cells = []
        for r in result.results:
            value, fps = r.by_group[group]
            cells.append(f"{value:.1f}" if value is not None else f"{fps} FP, no windows")
        groups.add_row(group, *cells)
    console.print(groups)
    board = Table("published scoreboard (standard, full NAB)", "score")
    ours = result.results[0].score
    mine = (f"[bold]kaipiao {result.detector} (this corpus)[/bold]", f"[bold]{ours:.1f}")
    placed = False
    for name, published in SCOREBOARD:
        if not placed and ours >= published:
            board.add_row(*mine)
            placed = True
        board.add_row(name, f"{published:.1f}")
    if not placed:
        board.add_row(*mine)
    console.print(board)
    console.print(
        f"detector cost {result.microseconds_per_value:.1f} µs/value; "
        f"evaluate wall time {wall:.1f} s"
    )


def _as_json(result: Evaluation, wall: float, data: Path) -> dict[str, Any]:
    return {
        "detector": result.detector,
        "data": str(data),
        "series": result.series,
        "values": result.values,
        "microseconds_per_value": round(result.microseconds_per_value, 2),
        "wall_seconds": round(wall, 2),
        "profiles": {
            r.profile.name: {
                "score": round(r.score, 2),
                "threshold": r.threshold,
                "windows_found": r.detected,
                "windows_missed": r.missed,
                "false_positives": r.false_positives,
                "by_group": {
                    g: {"score": None if s is None else round(s, 2), "false_positives": f}
                    for g, (s, f) in r.by_group.items()
                },
            }
            for r in result.results
        },
        "scoreboard": dict(SCOREBOARD),
    }
