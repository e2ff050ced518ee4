"""Prometheus metrics of the hook server, served on /metrics.

One registry per process: run one uvicorn worker per pod (the manifests do) so that a
scrape sees all of a pod's calls; with several workers each answers for itself.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

CALLS = Counter(
    "elastic_jupyter_hook_calls_total", "Hook calls by hook and HTTP status code.", ["hook", "code"], registry=REGISTRY
)
LATENCY = Histogram(
    "elastic_jupyter_hook_duration_seconds",
    "Time to answer a hook call, from the request body to the response.",
    ["hook"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
ERRORS = Counter(
    "elastic_jupyter_hook_errors_total",
    "Hook calls that failed, by kind: unauthorized, too_large, bad_json, bad_request, wrong_kind (4xx), "
    "disconnected (the client left) or internal (5xx).",
    ["hook", "kind"],
    registry=REGISTRY,
)
CHILDREN = Counter(
    "elastic_jupyter_children_rendered_total",
    "Children returned by sync hooks, by kind.",
    ["hook", "kind"],
    registry=REGISTRY,
)
NOT_READY = Counter(
    "elastic_jupyter_parents_not_ready_total",
    "Sync answers whose Ready condition is False, by reason (InvalidSpec counts invalid specs seen).",
    ["hook", "reason"],
    registry=REGISTRY,
)


# Label values come from these closed sets, whatever a request holds: a kept child's kind is
# the observed object's, so a label per claimed kind would let any caller grow /metrics.
CHILD_KINDS = frozenset(
    {
        "ServiceAccount",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "Secret",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    }
)
NOT_READY_REASONS = frozenset(
    {
        "InvalidSpec",
        "DeploymentMissing",
        "DeploymentNotAvailable",
        "ClusterRoleNotFound",
        "ClusterRoleNotAllowed",
        "AuthSecretNotFound",
        "GatewayNotFound",
        "GatewayNotReady",
        "NamespaceNotAllowed",
        "GatewayTokenNotFound",
        "Suspended",
        "KernelRoleNotAllowed",
    }
)


def bounded(value: object, allowed: frozenset) -> str:
    return value if isinstance(value, str) and value in allowed else "other"


def record_result(hook: str, result: dict) -> None:
    """Count what a hook answered: its children by kind and why a parent is not ready."""
    for child in result.get("children") or ():
        CHILDREN.labels(hook, bounded(child.get("kind"), CHILD_KINDS)).inc()
    for condition in (result.get("status") or {}).get("conditions") or ():
        if condition["type"] == "Ready" and condition["status"] != "True":
            NOT_READY.labels(hook, bounded(condition.get("reason"), NOT_READY_REASONS)).inc()
