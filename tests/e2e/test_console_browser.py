"""The operator console in a real browser: Debian's Chromium, headless, driven by Playwright,
against a real `kaipiao serve` on each store. One browser session per store walks what an
operator on call does: sign in, read the overview, find an invoice by its order id, requeue it
from the attention queue and see it issued; a viewer sees no button and is refused (403) when
posting anyway; a post without the CSRF token is refused; sign-out ends the session on the
server; the audit page and the ledger show the operator's action. Every page passes axe-core
with no critical violation.

Needs /usr/bin/chromium and axe-core (scripts/services installs both; `playwright install` is
never run); without them the test fails, unless CONSOLE_BROWSER=skip. CONSOLE_SHOTS=DIR keeps the overview and invoice screenshots there
(docs/img/ was made that way).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator import issue_behind_kaipiaos_back, post_invoice
from tests.factories import SELLER_TAX_ID
from tests.processes import Running, kaipiao, start_serve

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
AXE = (
    Path(os.environ.get("AXE_CORE_DIR", Path.home() / ".cache" / "kaipiao-npm"))
    / "node_modules/axe-core/axe.min.js"
)
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Missing tools fail the run (CI installs them with scripts/services); CONSOLE_BROWSER=skip
    # skips on a machine that cannot have them.
    if not CHROMIUM.exists() or not AXE.exists():
        message = f"needs {CHROMIUM} and {AXE}: run scripts/services"
        if os.environ.get("CONSOLE_BROWSER") == "skip":
            pytest.skip(message)
        pytest.fail(message)
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


def attention_invoice(store: list[str], cwd: Path, sandbox: Running) -> dict[str, Any]:
    """An invoice in `attention`, as tests/e2e/test_requeue.py makes one: accepted, issued on
    the platform behind kaipiao's back, then flagged by reconciliation."""
    httpx.put(f"{sandbox.url}/_sandbox/faults", json={"dedup": False}).raise_for_status()
    kaipiao("migrate", *store, cwd=cwd)
    seller = json.loads(kaipiao("seller", "add", "--name", "上海甲公司", "--tax-id", SELLER_TAX_ID,
                                "--region", "31", "--json", *store, cwd=cwd).stdout)  # fmt: skip
    serve = start_serve(cwd, *store, "--no-workers", "--no-demo-seller")
    try:
        invoice = post_invoice(serve, seller["api_key"], "CONSOLE-1")
    finally:
        serve.stop()
    issue_behind_kaipiaos_back(sandbox, invoice)
    reconciled = kaipiao("reconcile", "--platform-url", sandbox.url, *store, cwd=cwd, check=False)
    assert reconciled.returncode == 1, reconciled.stdout + reconciled.stderr
    return invoice


def accessible(page: Any) -> None:
    """axe-core on the current page: no critical violation."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"
    )
    critical = [v for v in violations if v["impact"] == "critical"]
    if os.environ.get("CONSOLE_AXE_REPORT"):
        print("axe", page.url, violations)
    assert critical == [], (page.url, violations)


def sign_in(context: Any, base: str, name: str, secret: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/console")
    assert page.url.endswith("/console/sign-in")  # not signed in: sent to the form
    accessible(page)
    page.fill("#name", name)
    page.fill("#secret", secret)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/console")
    assert page.inner_text("#who") == name
    return page


def form_post(page: Any, url: str, form: dict[str, str]) -> int:
    """A form post from this page's session (its cookie), as a hand-made request would be."""
    answer = page.request.post(url, form=form, max_redirects=0)
    return int(answer.status)


def reload_until(page: Any, selector: str, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while page.inner_text(selector) != text:
        assert time.monotonic() < deadline, page.inner_text(selector)
        time.sleep(0.3)
        page.reload()


def test_an_operator_on_call_in_the_console(
    browser: Any, store: list[str], sandbox: Running, tmp_path: Path
) -> None:
    invoice = attention_invoice(store, tmp_path, sandbox)
    kaipiao("operator", "add", "--name", "ops", "--role", "operator", "--password-stdin", *store,
            cwd=tmp_path, input=PASSWORD + "\n")  # fmt: skip
    added = kaipiao("operator", "add", "--name", "viewer1", "--role", "viewer", "--json", *store,
                    cwd=tmp_path)  # fmt: skip
    token = json.loads(added.stdout)["sign_in_token"]
    kaipiao("operator", "add", "--name", "root", "--role", "admin", "--password-stdin", *store,
            cwd=tmp_path, input=PASSWORD + "\n")  # fmt: skip
    serve = start_serve(tmp_path, *store, "--platform-url", sandbox.url, "--no-demo-seller")
    shots = Path(os.environ.get("CONSOLE_SHOTS", tmp_path))
    try:
        base = serve.url
        # bypass_csp: the pages allow no script at all, and axe has to be injected.
        ops = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = sign_in(ops, base, "ops", PASSWORD)
        cookie = next(c for c in ops.cookies() if c["name"] == "kaipiao_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]

        # The overview: incident level, the queue, the charts; Chinese by default.
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.inner_text("#count-attention") == "1"
        assert page.locator("svg.chart").count() == 2
        accessible(page)

        # Find the invoice by its order id; the English switch keeps the page.
        page.click("nav >> text=发票")
        page.fill("#q", "CONSOLE-1")
        page.click("#search")
        page.click(f"a[href='/console/invoices/{invoice['id']}']")
        assert page.inner_text("#status") == "attention"
        page.goto(f"{page.url}?lang=en")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("h2#h-timeline").inner_text() == "Timeline"
        accessible(page)

        # A form post without the CSRF token is refused, and changes nothing.
        no_csrf = {"action": "requeue", "ids": invoice["id"], "note": "no token"}
        assert form_post(page, f"{base}/console/act", no_csrf) == 403

        # An overview left open refreshes itself (without a reload: the same document).
        live = ops.new_page()
        live.goto(f"{base}/console")
        assert live.inner_text("#count-attention") == "1"
        live.evaluate("window.kept = true")

        # Requeue from the attention queue: select, confirm with a reason, see it issued.
        page.goto(f"{base}/console/attention")
        accessible(page)
        page.check(f"#sel-{invoice['id']}")
        page.click("#bulk-requeue")
        assert invoice["id"] in page.inner_text("main")
        accessible(page)
        page.fill("#note", "reconciliation found it issued; requeue to adopt")
        page.click("#confirm")
        page.wait_for_url(re.compile(f".*/console/invoices/{invoice['id']}$"))
        reload_until(page, "#status", "issued")
        timeline = page.inner_text("#timeline")
        assert "requeued" in timeline and "console:ops" in timeline
        accessible(page)
        page.screenshot(path=str(shots / "console-invoice.png"), full_page=True)
        live.wait_for_function(
            "document.getElementById('count-attention').textContent === '0'", timeout=30_000
        )
        assert live.evaluate("window.kept") is True

        # A viewer sees no button, and a requeue posted anyway is refused.
        viewer = browser.new_context(bypass_csp=True)
        vpage = sign_in(viewer, base, "viewer1", token)
        vpage.goto(f"{base}/console")  # Chinese: the viewer never switched
        assert vpage.inner_text("#count-issued") == "1"
        vpage.screenshot(path=str(shots / "console-overview.png"), full_page=True)
        vpage.goto(f"{base}/console/invoices/{invoice['id']}")
        assert vpage.locator("#action-cancel, #action-requeue, #action-reverse").count() == 0
        vpage.goto(f"{base}/console/attention")
        assert vpage.locator("#bulk-requeue").count() == 0
        csrf = vpage.locator("input[name=csrf]").first.get_attribute("value")
        refused = {"csrf": csrf, "action": "requeue", "ids": invoice["id"], "note": "x"}
        assert form_post(vpage, f"{base}/console/act", refused) == 403
        assert form_post(vpage, f"{base}/console/confirm", refused) == 403
        # The one-time token was used up by that sign-in.
        again = browser.new_context().new_page()
        again.goto(f"{base}/console/sign-in")
        again.fill("#name", "viewer1")
        again.fill("#secret", token)
        again.click("#sign-in")
        assert again.locator(".problem").count() == 1

        # The audit page lists the operator's action; the ledger still verifies.
        page.goto(f"{base}/console/audit?operator=ops")
        actions = page.inner_text("#actions")
        assert "console:ops" in actions and "requeued" in actions
        accessible(page)

        # The admin's pages: sellers (with their forms) and operators pass axe too.
        admin = sign_in(browser.new_context(bypass_csp=True), base, "root", PASSWORD)
        for path in ("/console/sellers", "/console/operators"):
            admin.goto(f"{base}{path}")
            assert admin.locator("form[method=post]").count() >= 2
            accessible(admin)

        # Sign-out ends the session on the server: the old cookie no longer opens a page.
        page.click("#sign-out")
        page.wait_for_url(f"{base}/console/sign-in")
        stale = httpx.get(f"{base}/console", cookies={"kaipiao_console": cookie["value"]})
        assert stale.status_code == 303 and stale.headers["location"] == "/console/sign-in"
    finally:
        serve.stop()
    verified = kaipiao("ledger", "verify", *store, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = kaipiao("invoices", "show", invoice["id"], *store, cwd=tmp_path).stdout
    assert '"by":"console:ops"' in shown.replace(" ", ""), shown
