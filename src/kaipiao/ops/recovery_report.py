"""What the recovery drills (`db-failover`, `restore`) measure beyond a drill's usual row: RTO,
RPO with the lost invoices named, and the ledger's verdict; printed under the usual report, added
to its JSON and to its HTML page."""

from __future__ import annotations

import html
import statistics
import subprocess
from dataclasses import asdict, dataclass, field

from rich.console import Console

from kaipiao.ops.processes import clean_env

CALM_FRACTION = 0.8  # "back at rate": a second issuing at least this much of the calm rate


@dataclass(slots=True)
class Recovery:
    drill: str
    mode: str  # db-failover: sync | async; restore: sqlite | postgresql
    killed_at_s: float  # the store was lost (primary killed, store destroyed), s into the load
    promoted_at_s: float  # the standby promoted / the backup restored, s into the load
    rto_accepting_s: float | None  # lost → the first invoice accepted again
    rto_issuing_s: float | None  # lost → issuance back at its calm rate
    rpo_invoices: int  # acknowledged to callers, neither in the store nor recovered
    rpo_named: list[str] = field(default_factory=list)  # seller id / order id of each
    retried: int = 0  # requests refused during the outage, sent again by their callers
    retried_ok: int = 0
    ledger_ok: bool = False
    ledger_verdict: str = ""
    backup_at_s: float | None = None  # restore: when the backup was taken
    recovered: int = 0  # restore: invoices brought back from the platform
    recover_report: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def issuance_back(
    per_second: list[dict[str, float]], killed: float, restored: float
) -> float | None:
    """Seconds from the loss until the first whole second, after `restored`, that issued at
    least `CALM_FRACTION` of the calm rate (the median of the seconds before the loss)."""
    calm = [p["issued"] for p in per_second if 2 <= p["t"] < killed - 1]
    if not calm:
        return None
    rate = statistics.median(calm)
    for point in per_second:
        if point["t"] >= restored and point["issued"] >= CALM_FRACTION * rate:
            return point["t"] + 1.0 - killed
    return None


def ledger_verify(command: list[str]) -> tuple[bool, str]:
    """Run `kaipiao ledger verify`; whether it passed and what it said (its last lines)."""
    done = subprocess.run(  # noqa: S603 - kaipiao itself, an argument list
        command, capture_output=True, text=True, timeout=300, check=False,
        env=clean_env(COLUMNS="200"),
    )  # fmt: skip
    said = " ".join(line.strip() for line in (done.stdout + done.stderr).splitlines()
                    if line.strip())  # fmt: skip
    return done.returncode == 0, said[-600:]


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def lines(r: Recovery) -> list[str]:
    """The figures as plain lines (terminal and HTML)."""
    out = [
        f"mode: {r.mode}",
        f"store lost at {r.killed_at_s:.1f} s; "
        + (f"standby promoted at {r.promoted_at_s:.1f} s" if r.drill == "db-failover"
           else f"restored and recovered by {r.promoted_at_s:.1f} s"),
        f"RTO accepting again: {_s(r.rto_accepting_s)} after the loss"
        + ("" if r.rto_accepting_s is None
           else f" ({_s(max(0.0, r.rto_accepting_s - (r.promoted_at_s - r.killed_at_s)))} "
                "after promotion/restore)"),
        f"RTO issuing at rate again: {_s(r.rto_issuing_s)} after the loss",
        f"RPO: {r.rpo_invoices} acknowledged invoices lost"
        + (f": {', '.join(r.rpo_named[:20])}{' …' if len(r.rpo_named) > 20 else ''}"
           if r.rpo_named else ""),
    ]  # fmt: skip
    if r.backup_at_s is not None:
        out.append(f"backup taken at {r.backup_at_s:.1f} s; {r.recovered} invoices recovered "
                   f"from the platform ({r.recover_report})")  # fmt: skip
    if r.retried:
        out.append(f"refused during the outage and retried by their callers: {r.retried} "
                   f"({r.retried_ok} accepted on retry)")  # fmt: skip
    out.append(f"ledger verify: {'ok' if r.ledger_ok else 'FAILED'}: {r.ledger_verdict}")
    return out


def print_recovery(r: Recovery, console: Console) -> None:
    console.print(f"[bold]{r.drill}[/bold]")
    for line in lines(r):
        console.print(f"  {line}", highlight=False, markup=False)


def html_section(r: Recovery) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines(r))
    return f"<h2>Recovery ({html.escape(r.drill)})</h2><ul>{items}</ul>\n"
