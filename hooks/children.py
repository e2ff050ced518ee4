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


def kept(children: dict, namespace: str, types: frozenset[str]) -> list[dict]:
    """Every observed child as the hooks last applied it, so that nothing changes.

    Metacontroller deletes any observed child a response omits. When the hooks cannot
    compute the desired state (invalid spec, missing gateway) they return this list.
    Metacontroller creates whatever a response holds, with its own cluster-wide rights,
    so a kept child has exactly the identity of the observed object it stands for:
    only objects of the controller's child ``types`` in the parent's ``namespace``,
    whose kind and apiVersion match their group key; the last-applied annotation (which
    anyone who may edit the child can rewrite) is used only if it names that identity.
    """
    out = []
    for key, group in children.items():
        if key not in types or not isinstance(group, dict):
            continue
        kind, _, api_version = key.partition(".")
        for child_key, child in group.items():
            identity = (kind, api_version, namespace, child_key.partition("/")[2])
            if child_key.startswith(f"{namespace}/") and _identity(child) == identity:
                out.append(_as_last_applied(child, identity))
    out.sort(key=lambda c: (c["kind"], c["metadata"]["name"]))
    return out


def _identity(obj) -> tuple | None:
    """(kind, apiVersion, namespace, name) of an object, None if it has none."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    return (obj.get("kind"), obj.get("apiVersion"), meta.get("namespace"), meta.get("name"))


def _as_last_applied(child: dict, identity: tuple) -> dict:
    annotations = child["metadata"].get("annotations")
    annotation = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
    # A RoleBinding's roleRef cannot change, and a forged record of one would make Metacontroller
    # recreate it (Recreate strategy) bound to another role: the observed object is the truth.
    if isinstance(annotation, str) and identity[0] != "RoleBinding":
        try:
            applied = json.loads(annotation)
        except ValueError:
            applied = None
        if _identity(applied) == identity:
            return applied
    # No usable record (server-side apply, an adopted orphan, a forged annotation): the object itself.
    meta = {k: v for k, v in child["metadata"].items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (annotations if isinstance(annotations, dict) else {}).items() if k != LAST_APPLIED}
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
    """(ready, reason, message) of an observed Deployment (read defensively: it is any JSON)."""
    if deployment is None:
        return False, "DeploymentMissing", "the Deployment does not exist yet"
    status = as_dict(deployment.get("status"))
    name = as_dict(deployment.get("metadata")).get("name")
    conditions = status.get("conditions") if isinstance(status.get("conditions"), list) else []
    available = any(
        isinstance(c, dict) and c.get("type") == "Available" and c.get("status") == "True" for c in conditions
    )
    ready = _count(status.get("readyReplicas"))
    wanted = as_dict(deployment.get("spec")).get("replicas", 1)
    wanted = wanted if _count(wanted) == wanted else "?"
    if available and ready >= 1:
        return True, "DeploymentAvailable", f"Deployment {name} has {ready}/{wanted} ready pods"
    return False, "DeploymentNotAvailable", f"Deployment {name} has {ready}/{wanted} ready pods"


def replica_counts(deployment: dict | None) -> dict:
    status = as_dict((deployment or {}).get("status"))
    return {"replicas": _count(status.get("replicas")), "readyReplicas": _count(status.get("readyReplicas"))}


def as_dict(value) -> dict:
    """``value`` if it is an object, else an empty one: observed and related objects are any JSON."""
    return value if isinstance(value, dict) else {}


def _count(value) -> int:
    """A replica count as the status schema wants it: a non-negative int32, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else 0


_PLAIN = {"model_type": "must be an object", "dict_type": "must be an object", "list_type": "must be a list"}
_UNION_BRANCHES = {"int", "str"}  # pydantic's names for the branches of Quantity (int | str)


def spec_error(exc) -> str:
    """The first pydantic error as ``spec.field.path: message``, in the CR's terms."""
    err = exc.errors()[0]
    if err["type"] in ("pod_template", "named_field"):  # already names the fields, from spec on
        return err["msg"]
    loc = [p for p in err["loc"] if p not in _UNION_BRANCHES]
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    if len(loc) < len(err["loc"]):
        return f"{path}: must be a Kubernetes quantity: an integer or a string such as 500m or 2Gi"
    return f"{path}: {_PLAIN.get(err['type'], err['msg'])}"


AUTH_GENERATION = "kubeflow.tkestack.io/auth-generation"


def with_auth_generation(secret: dict, observed_secret, observed_deployment) -> tuple[dict, str]:
    """``secret`` annotated with the generation of its content, and that generation.

    A server reads its secrets only at start, so its pod template carries this number and
    a new one rolls the pods. It counts content changes, so it says nothing about the
    secrets themselves (a hash of a token would let anyone who reads Deployments test
    guesses offline), and it is the same on every resync, so the hooks stay pure.
    """
    generation = 1
    if isinstance(observed_secret, dict):
        kept = _generation(observed_secret.get("metadata"))
        if kept is not None:
            generation = kept if observed_secret.get("data") == secret["data"] else kept + 1
    else:
        # The Secret is gone (deleted, or never there): a new one is new content.
        spec = observed_deployment.get("spec") if isinstance(observed_deployment, dict) else None
        template = spec.get("template") if isinstance(spec, dict) else None
        running = _generation(template.get("metadata") if isinstance(template, dict) else None)
        if running is not None:
            generation = running + 1
    meta = {**secret["metadata"], "annotations": {AUTH_GENERATION: str(generation)}}
    return {**secret, "metadata": meta}, str(generation)


def _generation(meta) -> int | None:
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(AUTH_GENERATION) if isinstance(annotations, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 10 else None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_value(secret, key: str) -> str | None:
    """The decoded text of one key of an observed or related Secret, whatever its shape."""
    data = secret.get("data") if isinstance(secret, dict) else None
    return decoded(data.get(key)) if isinstance(data, dict) else None


def decoded(data: str | None) -> str | None:
    """The text of a Secret's data value (base64), stripped; None if absent or not text."""
    try:
        return base64.b64decode(data, validate=True).decode().strip() if isinstance(data, str) and data else None
    except (binascii.Error, UnicodeDecodeError):
        return None
