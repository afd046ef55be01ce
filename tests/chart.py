"""The Helm chart, rendered and checked offline: `helm lint` and `helm template` through Helm's own
Go SDK (the `helm-python-sdk` wheel bundles it: no helm binary, no cluster), then every manifest
validated strictly - core kinds against Kubernetes' OpenAPI schemas (`kubernetes-validate
--strict`), the operators' kinds (ServiceMonitor, PrometheusRule, ScaledObject) against models
generated from their CRDs, round-tripped so that an unknown field fails as `--strict` would.

`python -m tests.chart [all]` prints the rendered manifests (default values, or every optional
part on) after checking them; scripts/test runs the same checks through tests/unit/test_chart.py.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "kaipiao"
KUBERNETES = "1.30.0"
"""The oldest Kubernetes the chart is validated against (Chart.yaml says >=1.29; the preStop
`sleep` action it uses is on by default from 1.30)."""

# A throwaway Ed25519 key and Fernet key: the chart only base64-encodes them.
LEDGER_KEY = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMQfix+XeaOff4INaTMiv5vxvaRdiUOhWNvCMPz48FPZ
-----END PRIVATE KEY-----
"""
SECRETS_KEY = "0OQllbhYzFPLVirdJAsKg6RTFDaaLXIws5fpq5OTsqs="

DEFAULTS: dict[str, Any] = {
    "secrets": {
        "databaseUrl": "postgresql://kaipiao:secret@db.example.invalid:5432/kaipiao",
        "ledgerKey": LEDGER_KEY,
        "secretsKey": SECRETS_KEY,
    }
}
"""The least a user must give: the chart refuses to render without the three secrets."""

ALL_ON: dict[str, Any] = {
    **DEFAULTS,
    "ingress": {
        "enabled": True, "className": "nginx",
        "tls": [{"secretName": "kaipiao-tls", "hosts": ["kaipiao.example.invalid"]}],
    },
    "api": {"autoscaling": {"enabled": True}},
    "worker": {"keda": {"enabled": True}},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "networkPolicy": {
        "apiFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}],
        "database": {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
        "platform": {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]},
    },
    "extraEnv": [
        {"name": "NUONUO_SECRET",
         "valueFrom": {"secretKeyRef": {"name": "nuonuo", "key": "secret"}}},
    ],
    "config": {"KAIPIAO_LEASE_S": "15"},
    "files": {"existingClaim": "kaipiao-files"},
    "rateLimit": {"redisUrl": "redis://kaipiao-redis:6379/0",
                  "to": [{"podSelector": {"matchLabels": {"app": "redis"}}}]},
}  # fmt: skip


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values layered as `helm -f a -f b` layers them (maps merge, the rest is replaced)."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge(out, copy.deepcopy(layer))
    return out


def _merge(into: dict[str, Any], layer: dict[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def lint(values: dict[str, Any]) -> dict[str, Any]:
    """`helm lint --strict` of the chart with these values: {"messages": [...], "errors": [...]}."""
    return helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")


def render(
    values: dict[str, Any], *, release: str = "kaipiao", namespace: str = "kaipiao"
) -> list[dict[str, Any]]:
    """`helm template`: every manifest of the chart, as Kubernetes objects."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=release, namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def _crd_models() -> dict[str, Any]:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

    return {"ScaledObject": ScaledObject, "ServiceMonitor": ServiceMonitor,
            "PrometheusRule": PrometheusRule}  # fmt: skip


def validate(doc: dict[str, Any]) -> None:
    """Raise if the object is not valid for its kind, strictly (unknown fields are errors)."""
    models = _crd_models()
    if doc["kind"] in models:
        model = models[doc["kind"]].model_validate(doc)
        again = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
        if again != doc:
            raise ValueError(f"{doc['kind']} {doc['metadata']['name']}: fields its CRD does not "
                             f"define, or of the wrong type:\n{doc}\n!=\n{again}")  # fmt: skip
        return
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def check(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Lint, render and validate: the rendered objects, or an AssertionError naming the fault."""
    report = lint(values)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems
    docs = render(values)
    for doc in docs:
        validate(doc)
    return docs


def main(argv: list[str]) -> int:
    values = ALL_ON if argv[1:] == ["all"] else DEFAULTS
    docs = check(values)
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    sys.stderr.write(f"chart: {len(docs)} objects, lint and strict validation pass\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
