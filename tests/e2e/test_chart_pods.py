"""The image's steps and the chart's pods, run for real without a container runtime.

Nothing but the package registries is reachable here, so no image is built. Instead: the Docker
build context is copied as `.dockerignore` lets it through, `scripts/build-wheels` and
`scripts/install-wheels` (the two RUN steps of the Dockerfile) build and install kaipiao into a
fresh venv, and the chart is rendered with test values. Each rendered container then runs as a
local process with the image's ENTRYPOINT (`tini -- kaipiao`) and its own args and env, the
Secret materialised as files the way the kubelet mounts it, each /tmp its own directory, and
each API replica on its own port (a pod has its own IP): the migration Job once, three API
replicas, two workers, against a fresh PostgreSQL database and the sandbox platform.

Probes are polled on the rendered paths; mid-load, one API replica gets the kubelet's preStop
sleep then SIGTERM, and one worker SIGTERM. The per-seller rate limit shared across replicas is
not checked here (another change builds it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import chart
from tests.databases import _admin, _run, pg_url
from tests.factories import invoice_body
from tests.processes import start_sandbox

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


def dockerfile_entrypoint() -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            return list(json.loads(line.removeprefix("ENTRYPOINT ")))
    raise AssertionError("the Dockerfile has no exec-form ENTRYPOINT")


def build_context(into: Path) -> Path:
    """The files `.dockerignore` lets into the build context (it lists what to keep)."""
    keep = [line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.startswith("!")]  # fmt: skip
    for name in keep:
        source, target = ROOT / name.rstrip("/"), into / name.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.so",
                                                                           "*.pyc"))  # fmt: skip
        else:
            shutil.copy2(source, target)
    return into


def image_env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process in the image: no KAIPIAO_ setting or PYTHONPATH of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KAIPIAO_") and k != "PYTHONPATH"}  # fmt: skip
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    return {**env, **extra}


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kaipiao installed as the image installs it: the Dockerfile's steps, outside a container."""
    text = (ROOT / "Dockerfile").read_text()
    assert "RUN scripts/build-wheels /wheels" in text
    assert "RUN install-wheels /wheels /opt/kaipiao" in text
    tmp = tmp_path_factory.mktemp("image")
    context = build_context(tmp / "context")
    for step in (
        ["build-wheels", tmp / "wheels"],
        ["install-wheels", tmp / "wheels", tmp / "venv"],
    ):
        done = subprocess.run([context / "scripts" / step[0], *step[1:]], env=image_env(),
                              capture_output=True, text=True, timeout=400)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "venv"


def test_the_image_steps_install_a_working_kaipiao(image_venv: Path) -> None:
    entry = dockerfile_entrypoint()
    assert entry == ["tini", "--", "kaipiao"]
    assert shutil.which("tini"), "tini is missing (scripts/services installs it)"
    out = subprocess.run(["kaipiao", "version"], capture_output=True, env=image_env(image_venv),
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert out == "0.1.0"
    # The compiled ledger walker is in the installed wheel, not taken from the source tree.
    walker = subprocess.run(
        [image_venv / "bin" / "python", "-c", "import kaipiao.ledger._walk as w; print(w.__file__)"],
        capture_output=True, text=True, check=True, env=image_env(image_venv),
    ).stdout  # fmt: skip
    assert walker.startswith(str(image_venv))


# -- the pods --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pod:
    name: str
    container: dict[str, Any]
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def get(self, path: str) -> int:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=3).status_code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Kubelet:
    """Just enough of one: mounts, environment, the entrypoint, probes, preStop and SIGTERM."""

    def __init__(self, tmp: Path, docs: list[dict[str, Any]], venv: Path) -> None:
        self.tmp, self.docs, self.venv = tmp, docs, venv
        secret = next(d for d in docs if d["kind"] == "Secret")
        self.secret_dir = tmp / "secret"
        self.secret_dir.mkdir()
        for key, value in secret["data"].items():
            (self.secret_dir / key).write_bytes(base64.b64decode(value))
            (self.secret_dir / key).chmod(0o400)

    def spec(self, suffix: str) -> dict[str, Any]:
        doc = next(d for d in self.docs
                   if d["kind"] in {"Deployment", "Job"} and d["metadata"]["name"].endswith(suffix))  # fmt: skip
        return doc["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]

    def start(self, name: str, container: dict[str, Any], port_env: str | None = None) -> Pod:
        pod_tmp = self.tmp / name / "tmp"
        pod_tmp.mkdir(parents=True)
        mounts = {m["mountPath"]: (self.secret_dir if m["name"] == "secrets" else pod_tmp)
                  for m in container["volumeMounts"]}  # fmt: skip
        env = image_env(self.venv)
        for item in container["env"]:
            value = str(item["value"])
            for path in sorted(mounts, key=len, reverse=True):
                if value.startswith(path):
                    value = str(mounts[path]) + value[len(path) :]
                    break
            env[item["name"]] = value
        env["KAIPIAO_HOST"] = "127.0.0.1"  # every pod on one host: loopback, a port each
        env["TINI_SUBREAPER"] = "1"  # tini is not PID 1 here, as it is in the container
        port = None
        if port_env:
            port = free_port()
            env[port_env] = str(port)
        log = self.tmp / f"{name}.log"
        command = [*dockerfile_entrypoint(), *container.get("command", []), *container["args"]]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        return Pod(name, container, process, log, port)

    def run_to_end(self, name: str, container: dict[str, Any]) -> Pod:
        pod = self.start(name, container)
        assert pod.process.wait(timeout=120) == 0, pod.output()
        return pod

    @staticmethod
    def wait_probe(pod: Pod, probe: str, timeout_s: float = 60) -> None:
        path = pod.container[probe]["httpGet"]["path"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert pod.process.poll() is None, pod.output()
            try:
                if pod.get(path) == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{pod.name}: {probe} {path} not 200 in {timeout_s} s\n{pod.output()}")

    @staticmethod
    def terminate(pod: Pod) -> None:
        """preStop (sleep), then SIGTERM to the container's PID 1 (tini)."""
        sleep = pod.container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        time.sleep(float(sleep.get("seconds", 0)))
        pod.process.send_signal(signal.SIGTERM)


@dataclass
class Load:
    urls: list[str]
    key: str
    stopped: int
    acknowledged: dict[str, str] = field(default_factory=dict)  # order id → invoice id
    statuses: dict[int, list[int]] = field(default_factory=dict)
    failed_on_stopped: int = 0
    retried_ok: int = 0

    async def one(self, client: httpx.AsyncClient, i: int) -> None:
        order = f"K8S-{uuid.uuid4().hex[:12]}"
        body = invoice_body(order)
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"idem-{order}"}
        target = i % len(self.urls)
        failed = False
        for _ in range(50):
            try:
                r = await client.post(f"{self.urls[target]}/v1/invoices", json=body,
                                      headers=headers)  # fmt: skip
                status = r.status_code
            except httpx.TransportError:
                status = 0  # refused or cut: the replica had stopped listening
            self.statuses.setdefault(target, []).append(status)
            if status in (200, 202):
                self.acknowledged[order] = r.json()["id"]
                self.retried_ok += failed
                return
            if status == 409 and r.json()["code"] == "request_in_progress":
                await asyncio.sleep(0.2)  # the first attempt is still being stored: ask again
                continue
            assert target == self.stopped, f"replica {target} answered {status}"
            if not failed:
                self.failed_on_stopped += 1
            failed = True
            target = (target + 1) % len(self.urls)  # the same Idempotency-Key elsewhere
        raise AssertionError(f"{order} was never acknowledged")


def test_rendered_pods_issue_exactly_once_through_a_rolling_stop(
    tmp_path: Path, image_venv: Path
) -> None:
    sandbox = start_sandbox("--profile", "ideal", "--seed", "5", state=tmp_path / "platform.jsonl")
    httpx.put(f"{sandbox.url}/_sandbox/faults",
              json={"dedup": False, "latency": {"kind": "fixed", "mean_ms": 100}},
              timeout=10).raise_for_status()  # fmt: skip
    name = f"kaipiao_pods_{os.getpid()}"
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _run(_admin(f'CREATE DATABASE "{name}"'))  # empty: the migration Job creates the schema
    values = chart.merged(chart.DEFAULTS, {
        "secrets": {"databaseUrl": pg_url(name).replace("+asyncpg", "")},
        "platform": {"url": sandbox.url},
        "api": {"preStopSleepSeconds": 1, "drainSeconds": 2},
        "worker": {"shutdownGraceSeconds": 5},
        "config": {"KAIPIAO_LEDGER_CHECKPOINT_S": "1", "KAIPIAO_LEASE_S": "5",
                   "KAIPIAO_SETTLE_S": "2"},
    })  # fmt: skip
    kubelet = Kubelet(tmp_path, chart.check(values), image_venv)
    pods: list[Pod] = []
    try:
        kubelet.run_to_end("migrate", kubelet.spec("-migrate"))
        api_spec, worker_spec = kubelet.spec("-api"), kubelet.spec("-worker")
        apis = [kubelet.start(f"api-{i}", api_spec, "KAIPIAO_PORT") for i in range(3)]
        workers = [kubelet.start(f"worker-{i}", worker_spec, "KAIPIAO_METRICS_PORT")
                   for i in range(2)]  # fmt: skip
        pods = [*apis, *workers]
        for pod in pods:
            kubelet.wait_probe(pod, "startupProbe")
            kubelet.wait_probe(pod, "readinessProbe")
            kubelet.wait_probe(pod, "livenessProbe")
        seller = subprocess.run(
            ["kaipiao", "seller", "add", "--name", "k8s", "--tax-id", "91310110666007217T",
             "--json"],
            env=image_env(image_venv,
                          KAIPIAO_DATABASE_URL_FILE=str(kubelet.secret_dir / "database-url"),
                          KAIPIAO_DATA_DIR=str(tmp_path / "cli")),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        key = json.loads(seller.stdout)["api_key"]
        load = Load([f"http://127.0.0.1:{p.port}" for p in apis], key, stopped=0)
        readiness_seen: list[int] = []
        asyncio.run(run_load(load, apis[0], workers[0], kubelet, readiness_seen, total=300))
        # The stopped replica turned not ready (503 shutting_down) before it stopped listening,
        # and both stopped pods exited cleanly within their grace periods.
        assert 503 in readiness_seen, readiness_seen
        assert apis[0].process.wait(timeout=api_grace(kubelet)) == 0, apis[0].output()
        assert workers[0].process.wait(timeout=30) == 0, workers[0].output()
        assert "shutting down: not ready, draining" in apis[0].output()
        # No 5xx anywhere; failures only on the stopped replica, each retried successfully.
        every = [s for statuses in load.statuses.values() for s in statuses]
        assert not [s for s in every if s >= 500 and s != 503], load.statuses
        for replica in (1, 2):
            assert set(load.statuses[replica]) <= {200, 202, 409}, load.statuses[replica]
        assert load.retried_ok == load.failed_on_stopped
        assert len(load.acknowledged) == 300
        # Every acknowledged invoice issued, exactly once on the platform.
        survivor = f"http://127.0.0.1:{apis[1].port}"
        wait_issued(survivor, key, set(load.acknowledged.values()), timeout_s=90)
        stats = httpx.get(f"{sandbox.url}/_sandbox/stats", timeout=10).json()
        assert stats["duplicates"] == {"by_serial": 0, "by_order": 0}, stats
        assert stats["blue_issued"] == 300, stats
        # The ledger verifies, its checkpoints signed by several replicas under the one key.
        signers = [p.name for p in apis if "ledger checkpoint" in p.output()]
        assert len(signers) >= 2, signers
        verify = subprocess.run(
            ["kaipiao", "ledger", "verify"], capture_output=True, text=True,
            env=image_env(image_venv,
                          KAIPIAO_DATABASE_URL_FILE=str(kubelet.secret_dir / "database-url"),
                          KAIPIAO_LEDGER_KEY_FILE=str(kubelet.secret_dir / "ledger-key.pem"),
                          KAIPIAO_DATA_DIR=str(tmp_path / "cli")),
        )  # fmt: skip
        assert verify.returncode == 0 and "ledger OK" in verify.stdout, verify
    finally:
        for pod in pods:
            if pod.process.poll() is None:
                pod.process.send_signal(signal.SIGTERM)
        for pod in pods:
            try:
                pod.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pod.process.kill()
        sandbox.stop()
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def api_grace(kubelet: Kubelet) -> float:
    api = next(d for d in kubelet.docs if d["kind"] == "Deployment"
               and d["metadata"]["name"].endswith("-api"))  # fmt: skip
    return float(api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


async def run_load(
    load: Load, api: Pod, worker: Pod, kubelet: Kubelet, readiness: list[int], total: int
) -> None:
    """`total` requests, 12 at a time, round-robin over the replicas; a third of the way in, the
    kubelet stops one API replica and one worker while requests keep coming."""
    sem = asyncio.Semaphore(12)
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> None:
            async with sem:
                if i == total // 3:
                    started.set()
                await load.one(client, i)

        async def stop_pods() -> None:
            await started.wait()
            await asyncio.to_thread(worker.process.send_signal, signal.SIGTERM)
            await asyncio.to_thread(kubelet.terminate, api)
            # Probe /readyz as the kubelet would, until the replica stops listening.
            while api.process.poll() is None:
                try:
                    readiness.append((await client.get(
                        f"http://127.0.0.1:{api.port}/readyz", timeout=2)).status_code)  # fmt: skip
                except httpx.TransportError:
                    break
                await asyncio.sleep(0.1)

        await asyncio.gather(stop_pods(), *(one(i) for i in range(total)))


def wait_issued(url: str, key: str, ids: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = set(ids)
    headers = {"Authorization": f"Bearer {key}"}
    while waiting and time.monotonic() < deadline:
        for invoice_id in list(waiting):
            r = httpx.get(f"{url}/v1/invoices/{invoice_id}", headers=headers, timeout=10)
            if r.json()["status"] == "issued":
                waiting.discard(invoice_id)
        if waiting:
            time.sleep(0.5)
    assert not waiting, f"{len(waiting)} not issued in {timeout_s} s"
