"""Logs are JSON with their context, and never carry a key or a tax id in full."""

from __future__ import annotations

import io
import json
import logging

from kaipiao.observability import logs


def test_records_are_json_with_bound_context_and_secrets_masked() -> None:
    out = io.StringIO()
    logs.configure("info", out)
    try:
        logs.clear()
        logs.bind(request_id="r-1", seller_id="sel_1", tax_id="91310110666007217T")
        key = "kp_" + "A" * 43
        logging.getLogger("kaipiao.test").warning(
            "refused key %s for buyer 91310110666007217T", key
        )
        record = json.loads(out.getvalue().strip().splitlines()[-1])
    finally:
        logs.clear()
        logging.getLogger().handlers.clear()
    assert record["level"] == "warning" and record["logger"] == "kaipiao.test"
    assert record["request_id"] == "r-1" and record["seller_id"] == "sel_1"
    assert record["timestamp"].endswith("Z")
    text = json.dumps(record)
    assert "A" * 20 not in text and "91310110666007217T" not in text
    assert "…217T" in record["event"] and record["tax_id"] == "…217T"


def test_mask_hides_short_values_entirely() -> None:
    assert logs.mask("abc") == "…"
    assert logs.mask("0123456789") == "…6789"
