"""An invoice in `attention`, then `kaipiao invoices requeue ID`, as the runbook tells an operator.

The invoice gets there the way reconciliation finds it in the field: the platform has issued its
serial while kaipiao's record still says `queued` (the send landed, its record did not — e.g. a
store restored from a backup taken before the send). Reconciliation flags the contradiction; the
operator requeues; a worker must then ask the platform about the serial and adopt its invoice.
The sandbox runs without deduplication, so a worker that resent instead of querying would issue
the order twice and the test would see it on the platform's own record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.operator import invoices, issue_behind_kaipiaos_back, post_invoice, wait_for_status
from tests.factories import SELLER_TAX_ID
from tests.processes import KAIPIAO, Running, clean_env, kaipiao, start_process, start_serve


def accept_one(store: list[str], cwd: Path) -> dict[str, Any]:
    """A seller and one accepted (queued) invoice, through `kaipiao serve` without workers."""
    kaipiao("migrate", *store, cwd=cwd)
    seller = json.loads(
        kaipiao("seller", "add", "--name", "上海甲公司", "--tax-id", SELLER_TAX_ID,
                "--region", "31", "--json", *store, cwd=cwd).stdout
    )  # fmt: skip
    serve = start_serve(cwd, *store, "--no-workers", "--no-demo-seller")
    try:
        return post_invoice(serve, seller["api_key"], "REQUEUE-1")
    finally:
        serve.stop()


def test_requeue_takes_an_attention_invoice_to_issued_exactly_once(
    tmp_path: Path, store: list[str], sandbox: Running
) -> None:
    httpx.put(f"{sandbox.url}/_sandbox/faults", json={"dedup": False}).raise_for_status()
    invoice = accept_one(store, tmp_path)
    number = issue_behind_kaipiaos_back(sandbox, invoice)

    reconciled = kaipiao("reconcile", "--platform-url", sandbox.url, *store, cwd=tmp_path,
                         check=False)  # fmt: skip
    assert reconciled.returncode == 1, reconciled.stdout + reconciled.stderr
    assert f"{invoice['id']}: issued on the platform as {number}, queued here" in reconciled.stdout
    [waiting] = invoices(store, tmp_path, "--status", "attention")
    assert waiting["id"] == invoice["id"]

    requeued = kaipiao("invoices", "requeue", invoice["id"], *store, cwd=tmp_path)
    assert requeued.returncode == 0
    assert f"{invoice['id']} requeued (issuing)" in requeued.stdout

    worker = start_process(
        [*KAIPIAO, "worker", "--platform-url", sandbox.url, *store],
        tmp_path / "worker.log", r"kaipiao worker (\S+) issuing", env=clean_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        [issued] = wait_for_status(store, tmp_path, [invoice["id"]], "issued")
    finally:
        worker.stop()
    assert issued["invoice_number"] == number

    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["invoices_issued"] == 1, stats
    assert stats["duplicates"] == {"by_serial": 0, "by_order": 0}
    # The worker asked about the serial and never sent it again: the one issue call is ours.
    assert sum(n for call, n in stats["calls"].items() if call.startswith("issue:")) == 1
    assert stats["calls"].get("query:issued", 0) >= 1, stats["calls"]

    shown = kaipiao("invoices", "show", invoice["id"], *store, cwd=tmp_path).stdout
    events = re.findall(r"^ +\S.*? ([a-z_]+) +[{\[]", shown, re.M)
    assert events[:2] == ["accepted", "reconcile_contradiction"], shown
    # Issued once after the requeue; the invoice's files may be stored after it (files_stored).
    assert events[2] == "requeued" and events[3:].count("issued") == 1, shown
    after_requeue = shown.split("requeued", 1)[1]
    assert "query" in after_requeue and "submit" not in after_requeue, shown
    verified = kaipiao("ledger", "verify", *store, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Requeue is for attention invoices only: a second one is refused in one line, no traceback.
    again = kaipiao("invoices", "requeue", invoice["id"], *store, cwd=tmp_path, check=False)
    assert again.returncode != 0
    assert "attention" in again.stderr and "Traceback" not in again.stderr
