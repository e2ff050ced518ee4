"""What both hooks share: child identity, labels, observed children, conditions."""

from __future__ import annotations

import base64
import binascii
import json

PART_OF = "elastic-jupyter"
LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"

# Metacontroller's keys for the observed children the hooks read (hook version v2).
DEPLOYMENTS = "Deployment.apps/v1"
SECRETS = "Secret.v1"

# Server-owned metadata a hook must never send back.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "selfLink",
    "finalizers",
)


def labels(kind: str, name: str) -> dict[str, str]:
    """Labels of every child of one parent; ``kind`` is ``gateway`` or ``notebook``."""
    return {
        "app.kubernetes.io/name": f"jupyter-{kind}",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": kind,
        "app.kubernetes.io/managed-by": "metacontroller",
        "app.kubernetes.io/part-of": PART_OF,
        f"kubeflow.tkestack.io/jupyter{kind}": name,
    }


def selector(kind: str, name: str) -> dict[str, str]:
    """The pod selector: the parent's own prefixed key plus the component."""
    return {f"kubeflow.tkestack.io/jupyter{kind}": name, "app.kubernetes.io/component": kind}


def gateway_client_labels(gateway: str, namespace: str) -> dict[str, str]:
    """Labels of the notebook pods that use a gateway: its NetworkPolicy admits exactly them."""
    return {"kubeflow.tkestack.io/gateway-name": gateway, "kubeflow.tkestack.io/gateway-namespace": namespace}


def observed(children: dict, key: str, namespace: str, name: str) -> dict | None:
    """One observed child, by its v2 key ``namespace/name``."""
    return (children.get(key) or {}).get(f"{namespace}/{name}")


def kept(children: dict) -> list[dict]:
    """Every observed child as the hooks last applied it, so that nothing changes.

    Metacontroller deletes any observed child a response omits. When the hooks cannot
    compute the desired state (invalid spec, missing gateway) they return this list.
    """
    out = []
    for group in children.values():
        for child in (group or {}).values():
            out.append(_as_last_applied(child))
    out.sort(key=lambda c: (c["kind"], c["metadata"]["name"]))
    return out


def _as_last_applied(child: dict) -> dict:
    annotation = (child.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    if annotation:
        try:
            return json.loads(annotation)
        except ValueError:
            pass
    # No usable record (server-side apply, or an adopted orphan): the object itself.
    meta = {k: v for k, v in child.get("metadata", {}).items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    body = {k: v for k, v in child.items() if k not in ("metadata", "status")}
    return {**body, "metadata": meta}


def response(meta: dict, status: dict, children: list[dict]) -> dict:
    """A sync hook's answer; only keys Metacontroller's v2 parser accepts."""
    return {"status": {"observedGeneration": meta.get("generation", 0), **status}, "children": children}


def previous_conditions(parent: dict) -> list[dict]:
    """The parent's current conditions (whatever shape a hand-made request gives them)."""
    status = parent.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


def condition(type_: str, ok: bool, reason: str, message: str, previous: list | None, now: str) -> dict:
    """A status condition whose lastTransitionTime moves only when its status does.

    Any timestamp that changes on every call would make Metacontroller resync forever.
    """
    status = "True" if ok else "False"
    since = now
    for old in previous or []:
        if old.get("type") == type_ and old.get("status") == status and old.get("lastTransitionTime"):
            since = old["lastTransitionTime"]
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def deployment_ready(deployment: dict | None) -> tuple[bool, str, str]:
    """(ready, reason, message) of an observed Deployment."""
    if deployment is None:
        return False, "DeploymentMissing", "the Deployment does not exist yet"
    status = deployment.get("status") or {}
    name = deployment["metadata"]["name"]
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions") or [])
    ready = status.get("readyReplicas") or 0
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    if available and ready >= 1:
        return True, "DeploymentAvailable", f"Deployment {name} has {ready}/{wanted} ready pods"
    return False, "DeploymentNotAvailable", f"Deployment {name} has {ready}/{wanted} ready pods"


def replica_counts(deployment: dict | None) -> dict:
    status = (deployment or {}).get("status") or {}
    return {"replicas": status.get("replicas") or 0, "readyReplicas": status.get("readyReplicas") or 0}


def spec_error(exc) -> str:
    """The first pydantic error as ``spec.field.path: message``."""
    err = exc.errors()[0]
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    return f"{path}: {err['msg']}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decoded(data: str | None) -> str | None:
    """The text of a Secret's data value (base64), stripped; None if absent or not text."""
    try:
        return base64.b64decode(data, validate=True).decode().strip() if isinstance(data, str) and data else None
    except (binascii.Error, UnicodeDecodeError):
        return None
