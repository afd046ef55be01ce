"""Every `kaipiao …` command README.md and docs/*.md show, run against a real store and the
sandbox process (tests/e2e/docs_commands.py reads them from the markdown).

`RECIPES` says how each documented command is run: its placeholders filled from a prepared world
(a SQLite data directory with a seller, issued invoices, one in `attention`, two signed
checkpoints; PostgreSQL for the commands that name it; the sandbox process as the platform), and
long runs shortened. A documented command missing from the table fails the test, so new docs come
with their recipe; a recipe must keep the documented subcommand and every documented flag, so it
cannot quietly run something else. A renamed command or flag fails: its recipe runs it as shown.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kaipiao.domain.credit_code import check_character
from tests.e2e.docs_commands import command_path, documented_commands, flags
from tests.e2e.operator import issue_behind_kaipiaos_back, post_invoice, wait_for_status
from tests.processes import KAIPIAO, Running, clean_env, kaipiao, start_process, start_sandbox

READY = {
    "serve": r"kaipiao listening on (http://\S+)",
    "worker": r"kaipiao worker (\S+) issuing",
    "sandbox": r"listening on (http://\S+)",
}
SHORT_DRILL = "--duration 10 --rate 10"  # the shortest drill; tests/e2e/test_drills.py checks more


@dataclass(frozen=True)
class Recipe:
    """How one documented command runs: `run` is the command after `kaipiao`, its {placeholders}
    filled from the world; `> FILE` keeps its output. `kind`: `run` to completion, `server`
    (started, ready, stopped), or `help` for a bare mention (the command exists: `--help`)."""

    run: str
    kind: str = "run"
    exit: int = 0
    expect: str = ""  # a text the output must contain (placeholders filled)
    note: str = ""


def help_of(command: str) -> Recipe:
    return Recipe(f"{command} --help", "help", note="a mention; arguments are elsewhere")


# In the order they run: the world's attention invoice is listed, shown, requeued, then a worker
# and reconciliation settle it; archive before purge; bench last (it adds invoices).
RECIPES: dict[str, Recipe] = {
    # -- bare mentions of a command -------------------------------------------------------------
    "kaipiao drill": help_of("drill"),
    "kaipiao drill SCENARIO": Recipe("drill --help", "help", expect="region-outage",
                                     note="each scenario: tests/e2e/test_drills.py"),
    "kaipiao bench": help_of("bench"),
    "kaipiao bench URL": help_of("bench"),
    "kaipiao plan": help_of("plan"),
    "kaipiao ledger check-proof": help_of("ledger check-proof"),
    "kaipiao warn": help_of("warn"),
    "kaipiao archive": help_of("archive"),
    "kaipiao purge": help_of("purge"),
    "kaipiao reconcile": help_of("reconcile"),
    "kaipiao worker": help_of("worker"),
    "kaipiao seller add": help_of("seller add"),
    # -- the store and sellers ---------------------------------------------------------------------
    "kaipiao migrate": Recipe("migrate"),
    "kaipiao seller demo-key": Recipe("seller demo-key --data-dir {quick}/kaipiao-data",
                                      expect="kp_", note="where the quick start's serve ran"),
    "kaipiao seller add --name N --tax-id T [--quota QPS]":
        Recipe("seller add --name 乙公司 --tax-id {tax_id_1} --quota 20", expect="kp_"),
    "kaipiao seller add --name N --tax-id T [--region R] [--quota QPS] [--invoice-limit AMOUNT] "
    "[--tax-id-check warn] [--allow-network CIDR …] [--platform nuonuo --app-key K --app-secret S "
    "--access-token T] [--json]":
        Recipe("seller add --name 丙公司 --tax-id {tax_id_2} --region 44 --quota 10 "
               "--invoice-limit 100000 --tax-id-check warn --allow-network 10.0.0.0/8 "
               "--platform nuonuo --app-key K --app-secret env:SHOP_NUONUO_SECRET "
               "--access-token T --json", expect='"api_key"'),
    "kaipiao seller add --name 上海某某 --tax-id 91310110666007217T --platform nuonuo --app-key "
    "YOUR_APP_KEY --app-secret env:SHOP_NUONUO_SECRET --access-token 'TOKEN'":
        Recipe("seller add --name 上海某某 --tax-id {tax_id_3} --platform nuonuo "
               "--app-key YOUR_APP_KEY --app-secret env:SHOP_NUONUO_SECRET --access-token TOKEN",
               note="another tax id: the demo seller has the documented one"),
    "kaipiao seller add --invoice-limit AMOUNT":
        Recipe("seller add --name 丁公司 --tax-id {tax_id_4} --invoice-limit 100000",
               expect="kp_"),
    "kaipiao seller mail --tax-id T --host H --sender ADDR [--password env:NAME]":
        Recipe("seller mail --tax-id {tax_id_1} --host smtp.example.com "
               "--sender fapiao@example.com --password env:SELLER_SMTP_PASSWORD",
               expect="mail sender of"),
    "kaipiao seller mail --tax-id 91310110666007217T --host smtp.example.com --port 587 "
    "--security starttls --sender fapiao@seller.example.com --username fapiao "
    "--password env:SELLER_SMTP_PASSWORD":
        Recipe("seller mail --tax-id {tax_id_3} --host smtp.example.com --port 587 "
               "--security starttls --sender fapiao@seller.example.com --username fapiao "
               "--password env:SELLER_SMTP_PASSWORD", expect="mail sender of",
               note="another tax id: the demo seller has the documented one"),
    "kaipiao seller list": Recipe("seller list", expect="platform nuonuo"),
    "kaipiao seller list [--json]": Recipe("seller list --json", expect='"platform": "nuonuo"'),
    "kaipiao operator-key": Recipe("operator-key", expect="kp_"),
    # -- keys (a spare seller's, so the world's demo key keeps working) --------------------------
    "kaipiao seller key list SELLER_ID": Recipe("seller key list {spare_seller}"),
    "kaipiao seller key rotate SELLER_ID": Recipe("seller key rotate {spare_seller}",
                                                  expect="kp_"),
    "kaipiao seller key rotate SELLER_ID [--overlap-hours H]":
        Recipe("seller key rotate {spare_seller} --overlap-hours 1", expect="kp_"),
    "kaipiao seller key revoke SELLER_ID": Recipe("seller key revoke {spare_seller}"),
    "kaipiao seller webhook-secret rotate SELLER_ID":
        Recipe("seller webhook-secret rotate {spare_seller}"),
    "kaipiao operator key create": Recipe("operator key create", expect="kp_"),
    "kaipiao operator key list": Recipe("operator key list"),
    "kaipiao operator key rotate": Recipe("operator key rotate", expect="kp_"),
    "kaipiao operator key revoke KEY_ID": Recipe("operator key revoke --help", "help",
                                                 note="revoking: tests/integration/test_hostile_api.py"),
    "kaipiao seller key rotate": help_of("seller key rotate"),
    "kaipiao seller key revoke": help_of("seller key revoke"),
    "kaipiao seller webhook-secret rotate": help_of("seller webhook-secret rotate"),
    "kaipiao operator key revoke": help_of("operator key revoke"),
    "kaipiao operator add --name wang --role operator":
        Recipe("operator add --name wang --role operator", expect="one-time sign-in token"),
    "kaipiao operator add --name zhang --role viewer":
        Recipe("operator add --name zhang --role viewer", expect="one-time sign-in token"),
    "kaipiao operator list": Recipe("operator list", expect="wang  operator"),
    "kaipiao operator disable zhang": Recipe("operator disable zhang", expect="disabled"),
    "kaipiao invoices requeue": help_of("invoices requeue"),
    "kaipiao seller key …": help_of("seller key"),
    # -- invoices: the operator's path ---------------------------------------------------------------
    "kaipiao invoices list": Recipe("invoices list", expect="{issued_id}"),
    "kaipiao invoices list --status attention":
        Recipe("invoices list --status attention", expect="{attention_id}"),
    "kaipiao invoices show ID": Recipe("invoices show {attention_id}",
                                       expect="reconcile_contradiction"),
    "kaipiao invoices requeue ID": Recipe("invoices requeue {attention_id}",
                                          expect="{attention_id} requeued"),
    "kaipiao status": Recipe("status", expect="attention:"),
    # -- processes: started, ready, stopped ----------------------------------------------------------
    "kaipiao serve": Recipe("serve --port 0", "server",
                            note="in a fresh directory, as the quick start"),
    "kaipiao serve --no-workers": Recipe("serve --port 0 --no-workers", "server"),
    "kaipiao serve --database-url postgresql://… --platform-url https://… --no-workers":
        Recipe("serve --port 0 --database-url {pg} --platform-url {sandbox} --no-workers "
               "--no-demo-seller", "server"),
    "kaipiao worker --platform-url URL": Recipe("worker --platform-url {sandbox}", "server"),
    "kaipiao worker --database-url … --platform-url …":
        Recipe("worker --database-url {pg} --platform-url {sandbox}", "server"),
    "kaipiao worker --platform-url URL --database-url postgresql://…":
        Recipe("worker --platform-url {sandbox} --database-url {pg}", "server"),
    "kaipiao worker --metrics-port 9464":
        Recipe("worker --metrics-port 0 --platform-url {sandbox}", "server",
               note="any free port; a worker needs its platform"),
    "kaipiao sandbox": Recipe("sandbox --port 0", "server"),
    "kaipiao sandbox --nuonuo-app KEY:SECRET": Recipe("sandbox --port 0 --nuonuo-app KEY:SECRET",
                                                      "server"),
    "kaipiao sandbox --port 8700 --profile normal --seed 1 --state sandbox.jsonl":
        Recipe("sandbox --port 0 --profile normal --seed 1 --state {tmp}/sandbox.jsonl", "server"),
    # -- reconciliation (after the worker settled the requeued invoice) -------------------------------
    "kaipiao reconcile [--since ISO-TIME] --platform-url URL":
        Recipe("reconcile --since {since} --platform-url {sandbox}", expect="contradictions 0"),
    # -- the ledger -------------------------------------------------------------------------------------
    "kaipiao ledger checkpoint": Recipe("ledger checkpoint"),
    "kaipiao ledger public-key": Recipe("ledger public-key", expect="PUBLIC KEY"),
    "kaipiao ledger public-key > ledger.pub": Recipe("ledger public-key > {tmp}/ledger.pub"),
    "kaipiao ledger verify": Recipe("ledger verify", expect="ledger OK"),
    "kaipiao ledger verify [--data-dir DIR | --database-url URL] [--public-key PEM] "
    "[--published FILE]":
        Recipe("ledger verify --data-dir kaipiao-data --database-url sqlite:///{data}/kaipiao.db "
               "--public-key {tmp}/ledger.pub --published {data}/ledger-checkpoints.jsonl",
               expect="ledger OK"),
    "kaipiao ledger check-proof proof.json --public-key ledger.pub":
        Recipe("ledger check-proof {tmp}/proof.json --public-key {tmp}/ledger.pub"),
    "kaipiao ledger check-consistency FILE --public-key ledger.pub":
        Recipe("ledger check-consistency {tmp}/consistency.json --public-key {tmp}/ledger.pub"),
    # -- archive, then purge ------------------------------------------------------------------------
    "kaipiao archive --before DATE --out DIR":
        Recipe("archive --before {tomorrow} --out {tmp}/archive-1"),
    "kaipiao archive --before 2026-01-01 --out /archive/2025":
        Recipe("archive --before {tomorrow} --out {tmp}/archive-2",
               note="tomorrow: today's invoices are the ones there are"),
    "kaipiao archive verify /archive/2025 [--public-key ledger.pub]":
        Recipe("archive verify {tmp}/archive-2 --public-key {tmp}/ledger.pub"),
    "kaipiao archive verify DIR":
        Recipe("archive verify {tmp}/archive-1 --public-key {tmp}/ledger.pub", expect="OK"),
    "kaipiao purge --archive /archive/2015 --dry-run":
        Recipe("purge --archive {tmp}/archive-2 --dry-run"),
    "kaipiao purge --archive /archive/2015": Recipe("purge --archive {tmp}/archive-2"),
    "kaipiao purge --archive DIR": Recipe("purge --archive {tmp}/archive-1"),
    # -- backup, restore (into a file of its own), recovery --------------------------------------
    "kaipiao backup": help_of("backup"),
    "kaipiao restore": help_of("restore"),
    "kaipiao backup FILE": Recipe("backup {tmp}/world.backup"),
    "kaipiao restore FILE --platform-url URL [--database-url …]":
        Recipe("restore {tmp}/world.backup --platform-url {sandbox} "
               "--database-url sqlite:///{tmp}/restored.db", exit=1,
               expect="the ledger is rolled back to event",
               note="into a copy. Recovery lists every seller: the world's two Nuonuo sellers "
               "have no reachable platform here, so it names them and exits 1 (the whole path: "
               "tests/e2e/test_recovery_drills.py)"),
    "kaipiao reconcile --recover --since T":
        Recipe("reconcile --recover --since {since} --platform-url {sandbox}", exit=1,
               expect="platform unreachable for seller",
               note="as restore's recovery: the Nuonuo sellers are named, nothing is dropped"),
    # The recovery drills build PostgreSQL clusters: they run in tests/e2e/test_recovery_drills.py
    # with these flags; here their flags are checked against the command (`--help` last).
    "kaipiao drill db-failover [--sync]": Recipe("drill db-failover --sync --help", "help"),
    "kaipiao drill restore": Recipe("drill restore --help", "help"),
    "kaipiao drill db-failover --sync --duration 60 --promote-after 5 --html failover.html":
        Recipe("drill db-failover --sync --duration 60 --promote-after 5 --html "
               "{tmp}/failover.html --help", "help"),
    "kaipiao drill db-failover --duration 60": Recipe("drill db-failover --duration 60 --help",
                                                      "help"),
    "kaipiao drill db-failover --sync --duration 60":
        Recipe("drill db-failover --sync --duration 60 --help", "help"),
    "kaipiao drill db-failover --duration 20": Recipe("drill db-failover --duration 20 --help",
                                                      "help"),
    "kaipiao drill restore --duration 30": Recipe("drill restore --duration 30 --help", "help"),
    "kaipiao drill restore --duration 20": Recipe("drill restore --duration 20 --help", "help"),
    "kaipiao drill restore --database-url postgresql://127.0.0.1:5432/test":
        Recipe("drill restore --database-url {pg} --help", "help"),
    # -- load, drills and sizing (shortened) ---------------------------------------------------------
    "kaipiao bench URL --api-key K --rate R":
        Recipe("bench {serve} --api-key {key} --rate 10 --duration 1", note="1 s of load"),
    'kaipiao bench http://127.0.0.1:8000 --api-key "$KEY" --rate 200 --duration 30':
        Recipe("bench {serve} --api-key {key} --rate 20 --duration 1", note="20/s for 1 s"),
    'kaipiao bench http://127.0.0.1:8000 --api-key "$KEY" --concurrency 32 --duration 30 --json':
        Recipe("bench {serve} --api-key {key} --concurrency 4 --duration 1 --json",
               expect='"latency_ms"', note="4 callers for 1 s"),
    "kaipiao plan … --helm-values": Recipe("plan --invoices-per-day 1000 --helm-values",
                                          expect="replicas"),
    "kaipiao plan --invoices-per-day N … --helm-values":
        Recipe("plan --invoices-per-day 50000 --helm-values", expect="replicas"),
    "kaipiao plan --from-history": Recipe(
        "plan --from-history --data-dir {quick}/kaipiao-data", exit=1,
        expect="no whole hour of intake",
        note="the quick start's store has no intake yet (the world's would depend on the clock's "
        "hour); tests/integration/test_status.py forecasts from stored history"),
    # The drills' own tests run these scenarios with these flags (tests/e2e/test_drills.py,
    # test_drill_warnings.py); here their flags are checked against the command (`--help` last).
    "kaipiao drill slow-platform --duration 60 --rate 40":
        Recipe("drill slow-platform --duration 60 --rate 40 --help", "help",
               note="run: tests/e2e/test_drill_warnings.py"),
    "kaipiao drill failure-spike --duration 60 --rate 40":
        Recipe("drill failure-spike --duration 60 --rate 40 --help", "help",
               note="run: tests/e2e/test_drill_warnings.py"),
    "kaipiao drill slow-platform --duration 120 --rate 20 --seed 1":
        Recipe("drill slow-platform --duration 120 --rate 20 --seed 1 --help", "help",
               note="the 2-minute run's outcome is in docs/early-warning.md"),
    "kaipiao drill failure-spike --duration 120 --rate 20 --seed 1":
        Recipe("drill failure-spike --duration 120 --rate 20 --seed 1 --help", "help",
               note="the 2-minute run's outcome is in docs/early-warning.md"),
    "kaipiao drill clean --duration 30 --rate 20":
        Recipe("drill clean --duration 30 --rate 20 --help", "help",
               note="run: tests/e2e/test_drill_warnings.py"),
    "kaipiao drill clean --duration 600 --rate 20 --seed 1":
        Recipe("drill clean --duration 600 --rate 20 --seed 1 --help", "help",
               note="the 10-minute run's outcome is in docs/early-warning.md"),
    "kaipiao plan --invoices-per-day N …": Recipe("plan --invoices-per-day 1000",
                                                 expect="What breaks first:"),
    "kaipiao plan --invoices-per-day 1000000 --peak-factor 10 --latency-mean 0.8 --latency-p99 5 "
    "--quota 300 --payload-bytes 2048 --retention-years 10 --replicas 2":
        Recipe("plan --invoices-per-day 1000000 --peak-factor 10 --latency-mean 0.8 "
               "--latency-p99 5 --quota 300 --payload-bytes 2048 --retention-years 10 "
               "--replicas 2", expect="What breaks first:"),
    "kaipiao drill surge --duration 40 --rate 20 --seed 1 --compare --html "
    "docs/img/drill-surge.html":
        Recipe("drill surge --duration 40 --rate 20 --seed 1 --compare --html "
               "{tmp}/drill-surge.html --help", "help",
               note="run with --compare --html: tests/e2e/test_drills.py"),
    "kaipiao drill worker-crash --duration 60 --rate 20 --compare --html drill.html":
        Recipe("drill worker-crash --duration 60 --rate 20 --compare --html {tmp}/drill.html "
               "--help", "help", note="run: tests/e2e/test_drills.py"),
    # -- early warning (a small corpus in NAB's layout, written by the world) ----------------------
    "kaipiao warn score FILE.csv [--detector NAME] --out OUT.csv":
        Recipe("warn score {tmp}/series.csv --detector context --out {tmp}/scored.csv"),
    "kaipiao warn evaluate --data DIR [--detector NAME] [--json OUT]":
        Recipe("warn evaluate --data {nab} --detector gaussian --json {tmp}/evaluate.json",
               expect="standard"),
    "kaipiao warn evaluate --data ../shared/data/nab --detector NAME":
        Recipe("warn evaluate --data {nab} --detector context", expect="standard",
               note="the world's small corpus, not the whole benchmark"),
    "kaipiao drill ambiguous --database-url postgresql://127.0.0.1:5432/test":
        Recipe(f"drill ambiguous {SHORT_DRILL} --database-url {{pg}}",
               expect="all invariants hold", note="10 s at 10/s, the test session's database"),
}  # fmt: skip


def test_every_documented_command_has_a_recipe() -> None:
    documented = documented_commands()
    missing = {c: where for c, where in documented.items() if c not in RECIPES}
    assert not missing, (
        "documented commands without a recipe in tests/e2e/test_documented_commands.py: "
        + json.dumps(missing, ensure_ascii=False, indent=1)
    )
    stale = [c for c in RECIPES if c not in documented]
    assert not stale, f"recipes for commands the docs no longer show: {stale}"


def test_recipes_keep_the_documented_command_and_flags() -> None:
    for documented, recipe in RECIPES.items():
        run = "kaipiao " + recipe.run.split(" > ")[0]
        assert command_path(run) == command_path(documented), (documented, recipe.run)
        assert flags(documented) <= flags(run), (documented, flags(documented) - flags(run))


def valid_tax_id(body: str) -> str:
    return body + check_character(body)


@dataclass
class World:
    """The filled-in placeholders, and the processes behind them."""

    values: dict[str, str]
    sandbox: Running
    serve: Running

    def fill(self, text: str) -> str:
        return text.format(**self.values)


def write_corpus(root: Path) -> Path:
    """A series with a step (`series.csv`) and a two-series corpus in NAB's layout (`nab/`)."""
    start = datetime(2014, 4, 1, tzinfo=UTC)
    rows = ["timestamp,value"]
    for n in range(600):
        stamp = (start + timedelta(minutes=5 * n)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{stamp},{10 + (n % 7) * 0.1 + (30 if n >= 400 else 0)}")
    (root / "series.csv").write_text("\n".join(rows) + "\n")
    nab = root / "nab"
    (nab / "data" / "synthetic").mkdir(parents=True)
    (nab / "data" / "synthetic" / "step.csv").write_text("\n".join(rows) + "\n")
    (nab / "data" / "synthetic" / "flat.csv").write_text(
        "\n".join([rows[0], *(r.rsplit(",", 1)[0] + ",10" for r in rows[1:])]) + "\n"
    )
    window = [(start + timedelta(minutes=5 * n)).strftime("%Y-%m-%d %H:%M:%S") for n in (390, 420)]
    windows = {"synthetic/step.csv": [window], "synthetic/flat.csv": []}
    (nab / "combined_windows.json").write_text(json.dumps(windows))
    return nab


def checkpoint(cwd: Path) -> int:
    signed = kaipiao("ledger", "checkpoint", cwd=cwd).stdout
    found = re.search(r"checkpoint: (\d+) events", signed)
    assert found, signed
    return int(found.group(1))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_session_url: str) -> Iterator[World]:
    from tests.databases import _run, truncate_all

    cwd = tmp_path_factory.mktemp("operator")
    sandbox = start_sandbox("--profile", "ideal", "--seed", "1")
    serve = start_process(
        [*KAIPIAO, "serve", "--port", "0", "--platform-url", sandbox.url, "--no-workers"],
        cwd / "serve.log", READY["serve"], env=clean_env(), cwd=cwd,
    )  # fmt: skip
    # The README's quick start in a directory of its own: serve with its in-process sandbox
    # makes the demo seller there (a serve on another platform makes none).
    quick = cwd / "quickstart"
    quick.mkdir()
    start_process([*KAIPIAO, "serve", "--port", "0"], quick / "serve.log", READY["serve"],
                  env=clean_env(), cwd=quick).stop()  # fmt: skip
    try:
        tax_id = valid_tax_id("91310110MA0000009")

        def add_seller(name: str, tax_id: str) -> dict[str, str]:
            added = kaipiao("seller", "add", "--name", name, "--tax-id", tax_id, "--json", cwd=cwd)
            return dict(json.loads(added.stdout))

        key = add_seller("甲公司", tax_id)["api_key"]
        spare = add_seller("戊公司", valid_tax_id("91310115MA0000005"))
        attention, *others = [post_invoice(serve, key, f"DOCS-{n}") for n in range(3)]
        issue_behind_kaipiaos_back(sandbox, attention, tax_id)
        flagged = kaipiao("reconcile", "--platform-url", sandbox.url, cwd=cwd, check=False)
        assert flagged.returncode == 1 and attention["id"] in flagged.stdout, flagged.stdout
        worker = start_process([*KAIPIAO, "worker", "--platform-url", sandbox.url],
                               cwd / "worker.log", READY["worker"], env=clean_env(), cwd=cwd)  # fmt: skip
        try:
            wait_for_status([], cwd, [i["id"] for i in others], "issued")
        finally:
            worker.stop()
        first = checkpoint(cwd)
        post_invoice(serve, key, "DOCS-3")
        second = checkpoint(cwd)
        auth = {"Authorization": f"Bearer {key}"}
        proof = httpx.get(f"{serve.url}/v1/invoices/{others[0]['id']}/proof", headers=auth)
        (cwd / "proof.json").write_text(proof.raise_for_status().text)
        consistency = httpx.get(f"{serve.url}/v1/ledger/consistency",
                                params={"first": first, "second": second}, headers=auth)  # fmt: skip
        (cwd / "consistency.json").write_text(consistency.raise_for_status().text)
        _run(truncate_all(pg_session_url))
        pg = pg_session_url.replace("+asyncpg", "")
        now = datetime.now(UTC)
        nab = write_corpus(cwd)
        values = {
            "tmp": str(cwd), "data": str(cwd / "kaipiao-data"), "sandbox": sandbox.url,
            "nab": str(nab), "spare_seller": spare["seller_id"], "quick": str(quick),
            "serve": serve.url, "key": key, "pg": pg, "attention_id": attention["id"],
            "issued_id": others[0]["id"], "tomorrow": (now + timedelta(days=1)).date().isoformat(),
            "since": (now - timedelta(hours=1)).isoformat(timespec="seconds"),
            "tax_id_1": valid_tax_id("91110108MA0000001"),
            "tax_id_2": valid_tax_id("91440300MA0000002"),
            "tax_id_3": valid_tax_id("91310115MA0000003"),
            "tax_id_4": valid_tax_id("91310115MA0000004"),
        }  # fmt: skip
        yield World(values, sandbox, serve)
    finally:
        serve.stop()
        sandbox.stop()


def run_recipe(world: World, recipe: Recipe) -> tuple[int, str]:
    """Run one recipe; its exit status and output."""
    cwd = Path(world.values["tmp"])
    command, _, into = world.fill(recipe.run).partition(" > ")
    argv = [*KAIPIAO, *shlex.split(command)]
    env = clean_env(SHOP_NUONUO_SECRET="s3cret", COLUMNS="120")
    if recipe.kind == "server":
        name = command.split()[0]
        # A worker works on the world's store; an API or a sandbox starts in its own directory,
        # as after the quick start's install (an API's in-process workers would otherwise issue
        # the world's queued invoices on its in-process platform).
        where = cwd if name == "worker" else cwd / f"fresh-{time.monotonic_ns()}"
        where.mkdir(exist_ok=True)
        try:
            running = start_process(argv, where / f"{name}-{time.monotonic_ns()}.log",
                                    READY[name], env=env, cwd=where)  # fmt: skip
        except RuntimeError as exc:
            return 1, str(exc)
        running.stop()
        return 0, running.output()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    if into:
        Path(into).write_text(done.stdout)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(900)  # ~100 commands and a short drill: minutes on a busy machine
def test_every_documented_command_works(world: World) -> None:
    failures = []
    for documented, recipe in RECIPES.items():
        code, output = run_recipe(world, recipe)
        expected = world.fill(recipe.expect)
        if code != recipe.exit or expected not in output:
            failures.append(f"`{documented}` ran as `kaipiao {world.fill(recipe.run)}`: exit "
                            f"{code} (want {recipe.exit}), wanted {expected!r} in:\n{output[-1500:]}")  # fmt: skip
    assert not failures, "\n\n".join(failures)
