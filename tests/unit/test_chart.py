"""The Helm chart (deploy/helm/kaipiao): `helm lint --strict` and `helm template` pass with default
values and with every optional part on, every rendered object passes strict schema validation,
and the rendered objects have the properties a replicated kaipiao needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import chart


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return chart.check(chart.DEFAULTS)


@pytest.fixture(scope="module")
def all_on() -> list[dict[str, Any]]:
    return chart.check(chart.ALL_ON)


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [d["metadata"]["name"] for d in found])
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"])
            for d in docs if d["kind"] in {"Deployment", "Job"}]  # fmt: skip


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_default_and_all_on_render_the_expected_objects(
    defaults: list[dict[str, Any]], all_on: list[dict[str, Any]]
) -> None:
    kinds = sorted(d["kind"] for d in defaults)
    assert kinds == sorted(["Deployment", "Deployment", "Job", "NetworkPolicy",
                            "PodDisruptionBudget", "PodDisruptionBudget", "Secret", "Service",
                            "Service", "ServiceAccount", "ServiceAccount"])  # fmt: skip
    extra = sorted({d["kind"] for d in all_on} - {d["kind"] for d in defaults})
    assert extra == ["HorizontalPodAutoscaler", "Ingress", "PrometheusRule", "ScaledObject",
                     "ServiceMonitor"]  # fmt: skip


def test_the_api_runs_three_replicas_spread_across_nodes(defaults: list[dict[str, Any]]) -> None:
    api = one(defaults, "Deployment", "-api")
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = api["spec"]["template"]["spec"]
    required = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"
    assert required[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone" and spread["maxSkew"] == 1
    assert pod["containers"][0]["args"] == ["serve", "--no-workers"]


def test_probes_and_graceful_termination(defaults: list[dict[str, Any]]) -> None:
    api = one(defaults, "Deployment", "-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = env_of(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    longest_call = float(env["KAIPIAO_PLATFORM_TIMEOUT_S"])
    # The kubelet kills after the grace period: it must cover preStop, the drain and a call.
    assert api["terminationGracePeriodSeconds"] > (
        pre_stop + float(env["KAIPIAO_DRAIN_S"]) + longest_call
    )
    worker = one(defaults, "Deployment", "-worker")["spec"]["template"]["spec"]
    wenv = env_of(worker["containers"][0])
    assert worker["containers"][0]["args"] == ["worker"]
    assert worker["terminationGracePeriodSeconds"] > (
        float(wenv["KAIPIAO_SHUTDOWN_GRACE_S"]) + longest_call
    )
    assert worker["containers"][0]["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_every_pod_runs_restricted(all_on: list[dict[str, Any]]) -> None:
    for name, pod in pod_templates(all_on):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            # Writes go only to the pod's own /tmp and the shared file store (when a claim is
            # given); secrets are read-only files.
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert set(mounts) == {"/tmp", "/var/run/secrets/kaipiao", "/var/lib/kaipiao/files"}, (
                name
            )
            assert mounts["/var/run/secrets/kaipiao"]["readOnly"] is True
            env = env_of(container)
            assert env["KAIPIAO_DATA_DIR"].startswith("/tmp/")
            assert env["KAIPIAO_LEDGER_PUBLISH"] == "false"
            assert env["KAIPIAO_LEDGER_KEY_FILE"] == "/var/run/secrets/kaipiao/ledger-key.pem"
            assert env["KAIPIAO_DATABASE_URL_FILE"] == "/var/run/secrets/kaipiao/database-url"


def test_migrations_run_as_a_hook_before_install_and_upgrade(
    defaults: list[dict[str, Any]],
) -> None:
    job = one(defaults, "Job", "-migrate")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    # What the Job needs exists before it: hooks of a lower weight.
    needed = [one(defaults, "Secret"), one(defaults, "ServiceAccount", "-migrate")]
    assert job["spec"]["template"]["spec"]["serviceAccountName"].endswith("-migrate")
    for doc in needed:
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    # The replicas never migrate themselves.
    for _, pod in pod_templates(defaults):
        assert env_of(pod["containers"][0])["KAIPIAO_MIGRATE_ON_START"] == "false"


def test_disruption_budgets(defaults: list[dict[str, Any]]) -> None:
    assert one(defaults, "PodDisruptionBudget", "-api")["spec"]["minAvailable"] == 2
    assert one(defaults, "PodDisruptionBudget", "-worker")["spec"]["maxUnavailable"] == 1


def test_network_policy_lets_out_only_dns_the_database_and_the_platform(
    all_on: list[dict[str, Any]],
) -> None:
    policy = one(all_on, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert [r["ports"][0]["port"] for r in policy["ingress"]] == ["http", "metrics"]
    egress = [sorted(p["port"] for p in rule["ports"]) for rule in policy["egress"]]
    assert egress == [[53, 53], [5432], [443], [6379]]  # the last: the shared rate limit's Redis
    assert policy["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_the_shared_rate_limit_reaches_every_pod_only_when_set(
    defaults: list[dict[str, Any]], all_on: list[dict[str, Any]]
) -> None:
    for _, pod in pod_templates(all_on):
        for container in pod["containers"]:
            assert env_of(container)["KAIPIAO_RATE_LIMIT_URL"] == "redis://kaipiao-redis:6379/0"
    for _, pod in pod_templates(defaults):
        for container in pod["containers"]:
            assert "KAIPIAO_RATE_LIMIT_URL" not in env_of(container)
    default_egress = one(defaults, "NetworkPolicy")["spec"]["egress"]
    assert [sorted(p["port"] for p in rule["ports"]) for rule in default_egress] == [
        [53, 53],
        [5432],
        [443],
    ]


def test_existing_secret_replaces_the_charts_own() -> None:
    docs = chart.check({"secrets": {"existingSecret": "kaipiao-prod"}})
    assert not [d for d in docs if d["kind"] == "Secret"]
    for _, pod in pod_templates(docs):
        secret = next(v for v in pod["volumes"] if v["name"] == "secrets")
        assert secret["secret"]["secretName"] == "kaipiao-prod"


def test_without_secrets_the_chart_refuses_to_render() -> None:
    with pytest.raises(Exception, match=r"secrets.databaseUrl"):
        chart.render({})


def test_the_prometheus_rule_is_deploy_prometheus_alerts(all_on: list[dict[str, Any]]) -> None:
    link = chart.CHART / "files" / "alerts.yml"
    source = chart.CHART.parents[1] / "prometheus" / "alerts.yml"
    assert link.is_symlink()
    assert Path(os.path.realpath(link)) == source.resolve()
    rule = one(all_on, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(source.read_text())["groups"]


def test_autoscalers_take_over_replicas(all_on: list[dict[str, Any]]) -> None:
    assert "replicas" not in one(all_on, "Deployment", "-api")["spec"]
    assert "replicas" not in one(all_on, "Deployment", "-worker")["spec"]
    hpa = one(all_on, "HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] == 3 and hpa["scaleTargetRef"]["name"].endswith("-api")
    keda = one(all_on, "ScaledObject")["spec"]
    assert keda["scaleTargetRef"]["name"].endswith("-worker")
    assert "kaipiao_invoices" in keda["triggers"][0]["metadata"]["query"]


def test_a_schema_violation_is_caught() -> None:
    doc = chart.render(chart.DEFAULTS)[0]
    bad = {**doc, "spec": {**doc.get("spec", {}), "replicass": 3}}
    with pytest.raises(Exception):  # noqa: B017, PT011 - either validator's error type
        chart.validate(bad)
    monitor = one(chart.render(chart.ALL_ON), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervl"] = "30s"
    with pytest.raises(ValueError, match="fields its CRD does not define"):
        chart.validate(monitor)


def test_invoice_files_are_fetched_only_with_a_shared_store(
    defaults: list[dict[str, Any]], all_on: list[dict[str, Any]]
) -> None:
    """A pod-local file store would serve from one replica what another fetched: without a
    shared claim the chart turns fetching off; with one, every pod mounts it."""
    for _, pod in pod_templates(defaults):
        assert not [v for v in pod["volumes"] if v["name"] == "files"]
        for container in pod["containers"]:
            assert env_of(container)["KAIPIAO_FILES_FETCH"] == "false"
    for _, pod in pod_templates(all_on):
        [volume] = [v for v in pod["volumes"] if v["name"] == "files"]
        assert volume["persistentVolumeClaim"]["claimName"] == "kaipiao-files"
        for container in pod["containers"]:
            env = env_of(container)
            assert "KAIPIAO_FILES_FETCH" not in env
            assert env["KAIPIAO_FILES_DIR"] == "/var/lib/kaipiao/files"
            assert {"name": "files", "mountPath": "/var/lib/kaipiao/files"} in container[
                "volumeMounts"
            ]
