"""Builders of Metacontroller hook requests (hook version v2) for the unit tests.

They reproduce what Metacontroller sends: children keyed ``Kind.group/version`` then
``namespace/name``, each observed child carrying the last-applied annotation, and an
empty map for every child type the CompositeController declares.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import yaml

from hooks.children import LAST_APPLIED
from hooks.gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL
from hooks.models import API_VERSION, DEFAULT_KERNEL_CLUSTER_ROLE
from hooks.notebook import GATEWAYS

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-26T10:00:00Z"
LATER = "2026-11-26T11:00:00Z"
TOKEN = "f" * 48


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


RESOURCE_KINDS = {
    "serviceaccounts": "ServiceAccount",
    "rolebindings": "RoleBinding",
    "configmaps": "ConfigMap",
    "deployments": "Deployment",
    "services": "Service",
    "secrets": "Secret",
    "networkpolicies": "NetworkPolicy",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}


def rule_key(rule: dict) -> str:
    """Metacontroller's key for the children of one childResources rule: Kind.group/version."""
    return f"{RESOURCE_KINDS[rule['resource']]}.{rule['apiVersion']}"


def child_types(controller_file: str) -> list[str]:
    """The children keys Metacontroller always sends for a CompositeController's rules."""
    controller = load(f"metacontroller/{controller_file}")
    return [rule_key(r) for r in controller["spec"]["childResources"]]


def parent(kind: str, name: str, spec: dict | None, namespace: str = "default", generation: int = 1) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": generation},
        "spec": {} if spec is None else spec,
    }


def gateway(name: str = "gw", namespace: str = "default", **spec) -> dict:
    return parent("JupyterGateway", name, spec, namespace)


def notebook(name: str = "nb", namespace: str = "default", **spec) -> dict:
    return parent("JupyterNotebook", name, spec, namespace)


def observe(desired: list[dict], types: list[str], status: dict | None = None) -> dict:
    """What Metacontroller would send back after applying ``desired``."""
    children: dict = {key: {} for key in types}
    for child in desired:
        obj = copy.deepcopy(child)
        meta = obj["metadata"]
        meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: json.dumps(child)}
        meta.update(uid=f"uid-{meta['name']}", resourceVersion="7", creationTimestamp=NOW)
        if status and obj["kind"] in status:
            obj["status"] = status[obj["kind"]]
        key = f"{obj['kind']}.{obj['apiVersion']}"
        children.setdefault(key, {})[f"{meta['namespace']}/{meta['name']}"] = obj
    return children


AVAILABLE = {
    "Deployment": {
        "replicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}],
    }
}


def kernel_role(name: str = DEFAULT_KERNEL_CLUSTER_ROLE, allowed: bool = True) -> dict:
    labels = {KERNEL_ROLE_LABEL: "true"} if allowed else {}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": [],
    }
    return {CLUSTER_ROLES: {name: role}}


GATEWAY_TOKEN = "gateway-token-0123456789"


def related_gateway(gw: dict | None, ready: bool = True, token: str | None = GATEWAY_TOKEN) -> dict:
    """What the notebook's customize rules bring: the gateway, its token Secret and the
    ClusterRoles approved for gateways (the default one)."""
    if gw is None:
        return {GATEWAYS: {}, "Secret.v1": {}, **kernel_role()}
    gw = copy.deepcopy(gw)
    status = "True" if ready else "False"
    gw["status"] = {
        "conditions": [{"type": "Ready", "status": status, "reason": "X", "message": "m", "lastTransitionTime": NOW}]
    }
    namespace, name = gw["metadata"]["namespace"], gw["metadata"]["name"]
    secrets = {}
    if token is not None:
        data = {"token": base64.b64encode(token.encode()).decode()}
        secrets[f"{namespace}/{name}-gateway-auth"] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "data": data,
            "metadata": {"name": f"{name}-gateway-auth", "namespace": namespace},
        }
    return {GATEWAYS: {f"{namespace}/{name}": gw}, "Secret.v1": secrets, **kernel_role()}


def user_secret(name: str, data: dict[str, str], namespace: str = "default") -> dict:
    """A user's Secret as a related object (what customize rules by name bring)."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": encoded}
    return {"Secret.v1": {f"{namespace}/{name}": secret}}


def merged(*related: dict) -> dict:
    """One related map from several (the groups' objects put together)."""
    out: dict = {}
    for one in related:
        for key, group in one.items():
            out.setdefault(key, {}).update(group)
    return out


def by_kind(children: list[dict]) -> dict[str, dict]:
    return {c["kind"]: c for c in children}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}
