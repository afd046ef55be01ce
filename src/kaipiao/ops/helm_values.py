"""`kaipiao plan --helm-values`: the plan as values for the Helm chart (deploy/helm/kaipiao), each
number with the reasoning that gave it as a comment, so a reviewer of the values file reads why.

Only what the plan decides is written (replicas, worker limits, resources, grace periods); the
chart's defaults hold the rest, and the secrets are the operator's (docs/deploy.md).
"""

from __future__ import annotations

import math

from kaipiao.ops.plan import (
    API_BASE_MIB,
    CORE_BUDGET,
    DEFAULT_MAX_IN_FLIGHT,
    Plan,
    PlanInput,
    _n,
)

MIN_API_REPLICAS = 3
"""One per node across three nodes: with one node drained and one lost, one still answers."""
PRE_STOP_S = 5  # the chart's api.preStopSleepSeconds
DRAIN_S = 5  # the chart's api.drainSeconds
SHUTDOWN_GRACE_S = 20  # the chart's worker.shutdownGraceSeconds
SLACK_S = 10  # the grace periods' margin over the sum of what they must cover


def _millicores(cores: float) -> int:
    """CPU to request, in millicores: rounded up to 100m, at least 100m."""
    return max(100, math.ceil(cores * 10) * 100)


def _mebibytes(mib: float) -> int:
    """Memory, rounded up to 64 MiB."""
    return math.ceil(mib / 64) * 64


def helm_values(forecast: PlanInput, result: Plan) -> str:
    """A values file for the chart, with the plan's reasoning as comments."""
    f = forecast
    step = {s.name: s for s in result.steps}

    def why(name: str) -> str:
        s = step[name]
        return f"# {name}: {s.formula} = {_n(s.value)} {s.unit}"

    apis = max(MIN_API_REPLICAS, int(step["API processes"].value))
    workers = int(step["worker processes"].value)
    per_worker = int(step["in-flight limit per worker"].value)
    in_flight = max(per_worker, 50)
    api_cpu = _millicores(step["API CPU at the peak"].value / apis / CORE_BUDGET)
    worker_cpu = _millicores(step["worker CPU at the peak"].value / workers / CORE_BUDGET)
    worker_mib = _mebibytes(step["memory per worker"].value)
    api_mib = _mebibytes(API_BASE_MIB)
    timeout = max(10, math.ceil(2 * f.latency_p99_s))
    api_grace = PRE_STOP_S + DRAIN_S + timeout + SLACK_S
    worker_grace = SHUTDOWN_GRACE_S + timeout + SLACK_S
    lines = [
        "# kaipiao chart values from `kaipiao plan`:",
        f"#   {_n(f.invoices_per_day)} invoices/day, peak ×{_n(f.peak_factor)}, platform latency "
        f"{_n(f.latency_mean_s)} s mean / {_n(f.latency_p99_s)} s p99, quota "
        f"{_n(f.quota_per_s)} calls/s",
        "# Use with the chart's defaults and your secrets: helm install kaipiao "
        "deploy/helm/kaipiao -f this.yaml -f secrets.yaml",
        "platform:",
        f"  # twice the platform's p99 latency ({_n(f.latency_p99_s)} s), at least 10 s",
        f"  timeoutSeconds: {timeout}",
        "api:",
        f"  {why('API processes')}",
        f"  # at least {MIN_API_REPLICAS}: one per node; a drained node and a lost one leave one",
        f"  replicas: {apis}",
        "  pdb:",
        "    # a voluntary disruption (drain, upgrade) takes at most one replica at a time",
        f"    minAvailable: {apis - 1}",
        f"  # preStop {PRE_STOP_S} s + drain {DRAIN_S} s + the longest platform call {timeout} s"
        f" + {SLACK_S} s",
        f"  terminationGracePeriodSeconds: {api_grace}",
        "  resources:",
        f"    {why('API CPU at the peak')}",
        f"    # per replica: ÷ {apis} replicas ÷ {CORE_BUDGET} busy at most, rounded up to 100m",
        f"    requests: {{cpu: {api_cpu}m, memory: {api_mib}Mi}}",
        f"    # resident size after warm-up {_n(API_BASE_MIB)} MiB, twice for a surge",
        f"    limits: {{memory: {2 * api_mib}Mi}}",
        "worker:",
        f"  {why('worker processes')}",
        f"  replicas: {workers}",
        f"  {why('in-flight limit per worker')}",
        "  # (at least 50; the adaptive limit keeps the real concurrency below it)",
        f"  maxInFlight: {in_flight}",
        f"  # shutdown grace {SHUTDOWN_GRACE_S} s + the longest platform call {timeout} s"
        f" + {SLACK_S} s",
        f"  terminationGracePeriodSeconds: {worker_grace}",
        "  resources:",
        f"    {why('worker CPU at the peak')}",
        f"    # per worker: ÷ {workers} workers ÷ {CORE_BUDGET} busy at most",
        f"    {why('memory per worker')}",
        f"    requests: {{cpu: {worker_cpu}m, memory: {worker_mib}Mi}}",
        f"    limits: {{memory: {2 * worker_mib}Mi}}",
        "  keda:",
        "    # off by default; when on, it scales between the plan and twice the plan",
        "    enabled: false",
        f"    minReplicas: {workers}",
        f"    maxReplicas: {2 * workers}",
    ]
    if per_worker > DEFAULT_MAX_IN_FLIGHT:
        lines.append(f"# note: {per_worker} calls in flight per worker exceeds the default "
                     f"{DEFAULT_MAX_IN_FLIGHT}; the value above raises it")  # fmt: skip
    lines += [f"# note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"
