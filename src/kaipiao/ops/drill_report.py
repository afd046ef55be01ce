"""A drill's report: a table for the terminal and a self-contained HTML page with charts.

The HTML has no scripts and no external files: three inline SVG charts (throughput, intake
latency, backlog) with the fault window shaded, so the incident and the recovery show at a glance
in any browser or attached to a ticket.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from kaipiao.ops.drill import describe_command
from kaipiao.ops.drill_config import DrillReport
from kaipiao.ops.drill_result import Result

COLUMNS: tuple[tuple[str, str], ...] = (
    ("gateway", "gateway"),
    ("sent", "sent"),
    ("accepted", "accepted"),
    ("timeouts", "caller timeouts"),
    ("server_errors", "caller errors/5xx"),
    ("issued", "issued"),
    ("rejected", "rejected"),
    ("waiting", "waiting"),
    ("lost", "lost"),
    ("without_invoice", "orders without invoice"),
    ("duplicates", "duplicates"),
    ("intake", "intake p50/p99"),
    ("issue", "to issue p50/p99"),
    ("backlog_peak", "backlog peak"),
    ("drain_s", "drain"),
    ("recovery_s", "recovery"),
    ("crashes", "processes killed"),
    ("warning", "first warning / breaker open"),
)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def cells(r: Result) -> dict[str, str]:
    return {
        "gateway": r.gateway, "sent": str(r.sent), "accepted": str(r.accepted),
        "timeouts": str(r.timeouts), "server_errors": str(r.server_errors),
        "issued": str(r.issued), "rejected": str(r.rejected), "waiting": str(r.waiting),
        "lost": str(r.lost), "without_invoice": str(r.without_invoice),
        "duplicates": str(r.duplicates),
        "intake": f"{_ms(r.intake_p50)} / {_ms(r.intake_p99)}",
        "issue": f"{_ms(r.issue_p50)} / {_ms(r.issue_p99)}",
        "backlog_peak": str(r.backlog_peak), "drain_s": _seconds(r.drain_s),
        "recovery_s": _seconds(r.recovery_s), "crashes": str(r.crashes),
        "warning": f"{_seconds(r.first_warning_s)} / {_seconds(r.breaker_open_s)}",
    }  # fmt: skip


def print_report(report: DrillReport, console: Console) -> None:
    """The table (one row per gateway, transposed to fit a terminal) and the invariants."""
    c = report.config
    w = c.window
    console.print(
        f"[bold]drill {c.scenario.name}[/bold]: {c.scenario.summary}\n"
        f"{c.duration_s:g} s of load at {c.rate:g}/s, fault from {w.fault_start:g} s to "
        f"{w.fault_end:g} s, seed {c.seed}, store "
        f"{'PostgreSQL' if c.database_url else 'SQLite'}"
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    rows = [cells(r) for r in report.results]
    for row in rows:
        table.add_column(row["gateway"], justify="right")
    for key, label in COLUMNS[1:]:
        table.add_row(label, *(row[key] for row in rows))
    console.print(table)
    for check in report.results[0].checks:
        mark = ("[green]ok  [/green]" if check.ok
                else "[yellow]note[/yellow]" if check.advisory else "[red]FAIL[/red]")  # fmt: skip
        console.print(f"  {mark} {check.name}: {check.detail}")
    verdict = "all invariants hold" if report.passed else "INVARIANTS BROKEN"
    console.print(f"[bold]{verdict}[/bold]  (repeat: {describe_command(c)})")


# -- HTML ------------------------------------------------------------------------------------
WIDTH, HEIGHT, PAD = 860, 220, 46
COLOURS = {"kaipiao": "#1f77b4", "naive": "#d62728"}


def _path(points: Sequence[tuple[float, float]], sx: float, sy: float, y0: float) -> str:
    parts: list[str] = []
    for x, y in points:
        if math.isnan(y):
            continue
        parts.append(f"{'L' if parts else 'M'}{PAD + x * sx:.1f},{y0 - y * sy:.1f}")
    return " ".join(parts)


def _chart(
    title: str,
    unit: str,
    series: list[tuple[str, str, list[tuple[float, float]]]],
    report: DrillReport,
) -> str:
    """One SVG line chart: `series` of (label, colour, points); the fault window shaded."""
    w = report.config.window
    t_max = max([p[0] for _, _, pts in series for p in pts] + [w.load_end, 1.0])
    y_values = [p[1] for _, _, pts in series for p in pts if not math.isnan(p[1])]
    y_max = max([*y_values, 1.0]) * 1.1
    sx = (WIDTH - 2 * PAD) / t_max
    sy = (HEIGHT - 2 * PAD) / y_max
    y0 = HEIGHT - PAD
    out = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'role="img" aria-label="{html.escape(title)}">',
           f'<rect x="{PAD + w.fault_start * sx:.1f}" y="{PAD}" '
           f'width="{(w.fault_end - w.fault_start) * sx:.1f}" height="{HEIGHT - 2 * PAD}" '
           'fill="#f5c6cb" opacity="0.5"/>',
           f'<text x="{PAD + w.fault_start * sx + 4:.1f}" y="{PAD + 12}" font-size="11" '
           f'fill="#a33">fault: {html.escape(report.config.scenario.name)}</text>',
           f'<line x1="{PAD + w.load_end * sx:.1f}" y1="{PAD}" x2="{PAD + w.load_end * sx:.1f}" '
           f'y2="{y0}" stroke="#888" stroke-dasharray="4 3"/>',
           f'<text x="{PAD + w.load_end * sx - 4:.1f}" y="{PAD + 12}" font-size="11" '
           'fill="#555" text-anchor="end">load stops</text>',
           f'<line x1="{PAD}" y1="{y0}" x2="{WIDTH - PAD}" y2="{y0}" stroke="#333"/>',
           f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{y0}" stroke="#333"/>',
           f'<text x="{PAD}" y="{PAD - 14}" font-size="13" font-weight="bold">'
           f'{html.escape(title)}</text>']  # fmt: skip
    for i in range(5):
        value = y_max * i / 4
        y = y0 - value * sy
        out.append(f'<text x="{PAD - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                   f'{value:.0f}</text>')  # fmt: skip
        out.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" '
                   'stroke="#eee"/>')  # fmt: skip
    step = max(5, int(t_max / 10 / 5 + 1) * 5)
    for t in range(0, int(t_max) + 1, step):
        out.append(f'<text x="{PAD + t * sx:.1f}" y="{y0 + 14}" font-size="10" '
                   f'text-anchor="middle">{t} s</text>')  # fmt: skip
    out.append(f'<text x="{WIDTH - PAD}" y="{PAD - 14}" font-size="11" text-anchor="end">'
               f'{html.escape(unit)}</text>')  # fmt: skip
    for n, (label, colour, points) in enumerate(series):
        dash = ' stroke-dasharray="5 3"' if "naive" in label else ""
        out.append(f'<path d="{_path(points, sx, sy, y0)}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.6"{dash}/>')  # fmt: skip
        x = PAD + 10 + n * 190
        out.append(f'<line x1="{x}" y1="{HEIGHT - 12}" x2="{x + 18}" y2="{HEIGHT - 12}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')  # fmt: skip
        out.append(f'<text x="{x + 22}" y="{HEIGHT - 8}" font-size="11">'
                   f'{html.escape(label)}</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def _series(r: Result, key: str) -> list[tuple[float, float]]:
    return [(p["t"], p[key]) for p in r.per_second]


def render_html(report: DrillReport) -> str:
    """The whole report as one HTML document."""
    k = report.results[0]
    naive = report.results[1] if len(report.results) > 1 else None
    throughput = [("kaipiao: accepted/s", "#1f77b4", _series(k, "accepted")),
                  ("kaipiao: issued/s", "#2ca02c", _series(k, "issued"))]  # fmt: skip
    latency = [("kaipiao: intake p99", "#1f77b4", _series(k, "intake_p99_ms"))]
    if naive is not None:
        throughput.append(("naive: issued/s", COLOURS["naive"], _series(naive, "issued")))
        latency.append(("naive: p99", COLOURS["naive"], _series(naive, "intake_p99_ms")))
        throughput.append(("naive: failed/s", "#ff9896", _series(naive, "failed")))
    backlog = [("kaipiao: queued + issuing", "#9467bd", [(t.t, float(t.backlog))
                                                          for t in k.timeline])]  # fmt: skip
    if naive is not None:
        backlog.append(("naive: requests in flight", COLOURS["naive"],
                        [(t.t, float(t.backlog)) for t in naive.timeline]))  # fmt: skip
    rows = [cells(r) for r in report.results]
    head = "".join(f"<th>{html.escape(r['gateway'])}</th>" for r in rows)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{html.escape(r[key])}</td>" for r in rows)
        + "</tr>"
        for key, label in COLUMNS[1:]
    )
    checks = "".join(
        f'<li class="{"ok" if c.ok else "note" if c.advisory else "fail"}">'
        f"{'✓' if c.ok else '–' if c.advisory else '✗'} "
        f"<b>{html.escape(c.name)}</b>: {html.escape(c.detail)}</li>"
        for c in k.checks
    )
    c = report.config
    w = c.window
    verdict = "all invariants hold" if report.passed else "invariants broken"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kaipiao drill {html.escape(c.scenario.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 900px; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; font-size: 13px; }}
th {{ background: #f4f4f4; text-align: left; }}
li.ok {{ color: #17632a; }} li.note {{ color: #7a5b00; }}
li.fail {{ color: #a31515; font-weight: bold; }}
.verdict {{ font-size: 18px; font-weight: bold; }}
</style></head><body>
<h1>kaipiao drill: {html.escape(c.scenario.name)}</h1>
<p>{html.escape(c.scenario.summary)}. {c.duration_s:g} s of open-loop load at {c.rate:g}/s
(× {c.scenario.rate_factor:g} during the fault), fault from {w.fault_start:g} s to
{w.fault_end:g} s, seed {c.seed}, store {"PostgreSQL" if c.database_url else "SQLite"};
started {report.started.isoformat(timespec="seconds")}.</p>
<p class="verdict">{verdict}</p>
<ul>{checks}</ul>
<table><tr><th></th>{head}</tr>{body}</table>
{_chart("Throughput", "invoices/s", throughput, report)}
{_chart("Intake latency (p99 of each second)", "ms", latency, report)}
{_chart("Backlog", "invoices", backlog, report)}
<p>Repeat with <code>{html.escape(describe_command(c))}</code>.</p>
</body></html>
"""
