"""Schemathesis against a live `kaipiao serve`, on SQLite and on PostgreSQL: every check, no
5xx, every response matches the schema. Run with a seller's key and, separately, an operator's
(which reaches the admin routes). Examples per operation are bounded so the CI time stays
within a minute or two per store.

One check is left out, `positive_data_acceptance` (a schema-valid request must be accepted):
the tax rules (credit-code checksums, amount × rate = tax within the platform's tolerance,
the seller's invoice limit, a cursor that must name an invoice) cannot be written in JSON
Schema, so schema-valid invoices are rightly refused with their rule's code (docs/domain.md).
Every bound that can be written is in the schema (patterns, lengths, quantity > 0)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.databases import create_pg_database, drop_pg_database
from tests.factories import invoice_body
from tests.processes import clean_env, kaipiao, start_serve


def _schemathesis(url: str, key: str, examples: int) -> str:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(schemathesis), "run", f"{url}/openapi.json",
         "-H", f"Authorization: Bearer {key}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", str(examples), "--seed", "7",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    summary = report.split("SUMMARY")[-1]
    assert " passed" in report and not re.search(r"\b\d+ failed\b", summary), summary
    return report


def _first_checkpoint(url: str, key: str) -> None:
    """One invoice and a signed checkpoint, so proofs answer 200 (before the first checkpoint
    they answer the documented, retryable `503 no_checkpoint`)."""
    headers = {"Authorization": f"Bearer {key}"}
    invoice = httpx.post(f"{url}/v1/invoices", json=invoice_body("FUZZ-0"), headers=headers)
    proof = f"{url}/v1/invoices/{invoice.json()['id']}/proof"
    deadline = time.monotonic() + 30
    while httpx.get(proof, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "no checkpoint was signed"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_openapi_fuzzing_finds_no_server_error_and_no_schema_violation(
    tmp_path: Path, store: str
) -> None:
    name = f"kaipiao_fuzz_{os.getpid()}"
    flags = ["--database-url", create_pg_database(name)] if store == "postgresql" else []
    serve = start_serve(tmp_path, "--no-demo-seller", *flags,
                        env={"KAIPIAO_INTAKE_RATE_PER_S": "100000",
                             "KAIPIAO_AUTH_FAILURE_BURST": "100000",
                             "KAIPIAO_LEDGER_CHECKPOINT_S": "0.2"})  # fmt: skip
    try:
        created = json.loads(kaipiao("seller", "add", "--name", "fuzz", "--tax-id",
                                     "91310110666007217T", "--json", *flags, cwd=tmp_path).stdout)  # fmt: skip
        operator = json.loads(kaipiao("operator", "key", "create", "--json", *flags,
                                      cwd=tmp_path).stdout)  # fmt: skip
        _first_checkpoint(serve.url, created["api_key"])
        _schemathesis(serve.url, created["api_key"], 30)
        _schemathesis(serve.url, operator["api_key"], 10)
        assert "Traceback" not in serve.output()
    finally:
        serve.stop()
        if store == "postgresql":
            drop_pg_database(name)
