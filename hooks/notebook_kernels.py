"""Where a notebook's kernels run, and with which files: the kernel side of the notebook hook.

Kernels run in the notebook's own namespace (so they count against its ResourceQuota and
obey its Pod Security level), beside the notebook's workspace:
  PersistentVolumeClaim <name>-workspace       spec.workspace.size: a new claim (deleted with
                                               the notebook); spec.workspace.claimName: none
  RoleBinding           <name>-gateway-kernels lets the gateway's ServiceAccount run kernel
                                               pods here, only when the gateway lives in another
                                               namespace that allows this one (its own
                                               RoleBinding covers its namespace)
The notebook pod mounts the workspace at WORKSPACE_DIR and starts there (Jupyter Server's
root directory); its environment tells the gateway, through Jupyter Server, which
namespace, claim and notebook a kernel belongs to (KERNEL_* variables, checked by the
gateway's kernel_guard.py before its pod template uses them).
"""

from __future__ import annotations

from pydantic import ValidationError

from .gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, approved
from .gateway import child_name as gateway_child_name
from .kernel_guard import GPU, quantity
from .kernelspecs import WORKSPACE_DIR, profiles
from .models import DEFAULT_KERNEL_CLUSTER_ROLE, JupyterGatewaySpec, JupyterNotebookSpec
from .quantity import canonical_quantity

WORKSPACE_VOLUME = "jupyter-notebook-workspace"


def claim_name(name: str) -> str:
    return f"{name}-workspace"


def role_binding_name(name: str) -> str:
    return f"{name}-gateway-kernels"


def approved_roles_rule() -> dict:
    """customize: every ClusterRole a cluster admin approved for gateways (cluster-scoped)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "resource": "clusterroles",
        "labelSelector": {"matchLabels": {KERNEL_ROLE_LABEL: "true"}},
    }


def workspace_claim(name: str, spec: JupyterNotebookSpec) -> str | None:
    ws = spec.workspace
    if ws is None:
        return None
    return ws.claim_name or claim_name(name)


def kernel_env(name: str, namespace: str, spec: JupyterNotebookSpec) -> list[dict]:
    """KERNEL_* variables Jupyter Server forwards with every kernel start."""
    env = [{"name": "KERNEL_NAMESPACE", "value": namespace}, {"name": "KERNEL_NOTEBOOK", "value": name}]
    claim = workspace_claim(name, spec)
    if claim:
        env += [
            {"name": "KERNEL_WORKSPACE_CLAIM", "value": claim},
            {"name": "KERNEL_WORKSPACE_ACCESS_MODE", "value": spec.workspace.access_mode},
        ]
    return env


def workspace_parts(name: str, spec: JupyterNotebookSpec) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts) of the notebook pod for its workspace."""
    claim = workspace_claim(name, spec)
    if not claim:
        return [], []
    volume = {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    return [volume], [{"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR}]


def children(
    name: str, namespace: str, labels: dict, spec: JupyterNotebookSpec, gateway: dict | None, related: dict
) -> tuple[list[dict], str | None]:
    """(children, problem): the workspace claim and the gateway's RoleBinding here, if any.

    The problem names a ClusterRole the gateway asks for that no cluster admin approved
    (label KERNEL_ROLE_LABEL=true); then no RoleBinding is made.
    """
    out = []
    ws = spec.workspace
    if ws is not None and ws.size is not None:
        claim_spec = {
            "accessModes": [ws.access_mode],
            "resources": {"requests": {"storage": canonical_quantity(ws.size)}},
        }
        if ws.storage_class_name:
            claim_spec["storageClassName"] = ws.storage_class_name
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim_name(name), "namespace": namespace, "labels": labels},
                "spec": claim_spec,
            }
        )
    gw_namespace = (gateway or {}).get("metadata", {}).get("namespace")
    if gateway is None or not gw_namespace or gw_namespace == namespace:
        return out, None
    role = (gateway.get("spec") or {}).get("clusterRole")
    role = role if isinstance(role, str) and role else DEFAULT_KERNEL_CLUSTER_ROLE
    if not approved((related.get(CLUSTER_ROLES) or {}).get(role)):
        return out, f"the gateway's ClusterRole {role} is not one labelled {KERNEL_ROLE_LABEL}=true"
    out.append(role_binding(name, namespace, labels, role, (gateway["metadata"]["name"], gw_namespace)))
    return out, None


def role_binding(name: str, namespace: str, labels: dict, role: str, gateway: tuple[str, str]) -> dict:
    """The RoleBinding that lets the gateway ``(name, namespace)`` run this notebook's kernels here."""
    gw_name, gw_namespace = gateway
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role_binding_name(name), "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": gateway_child_name(gw_name), "namespace": gw_namespace}],
    }


def kept_role_binding(
    name: str, namespace: str, labels: dict, kept: dict, gateway: tuple[str, str] | None, related: dict
) -> dict | None:
    """A kept RoleBinding as a keep path may return it: only this notebook's kernel RoleBinding,
    only while ``gateway`` (None: none) may run kernels here, rebuilt for it from the observed
    (immutable) roleRef, and only while that ClusterRole is approved."""
    ref = kept.get("roleRef") if isinstance(kept.get("roleRef"), dict) else {}
    role = ref.get("name") if ref.get("kind") == "ClusterRole" else None
    if gateway is None or kept["metadata"]["name"] != role_binding_name(name) or not isinstance(role, str):
        return None
    if not approved((related.get(CLUSTER_ROLES) or {}).get(role)):
        return None
    return role_binding(name, namespace, labels, role, gateway)


def resources_fit(spec: JupyterNotebookSpec, gateway: dict) -> tuple[bool, str]:
    """(fits, message): do spec.kernelResources stay within the maximum of the gateway's default
    kernel profile? The gateway's guard refuses a kernel that asks for more, and the user then
    sees only Enterprise Gateway's generic launch error."""
    try:
        gw_spec = JupyterGatewaySpec.model_validate(gateway.get("spec") or {})
    except ValidationError:
        return True, "the gateway's spec is invalid; see its status"
    profile = next((p for p in profiles(gw_spec) if p.name == gw_spec.default_kernel), None)
    if profile is None:
        return True, "the gateway serves no default kernel profile"
    maximum = profile.max_resources.model_dump(by_alias=True, exclude_none=True) if profile.max_resources else {}
    maximum.setdefault(GPU, 0)
    for part in ("requests", "limits"):
        asked = getattr(spec.kernel_resources, part, None) if spec.kernel_resources else None
        for resource, value in (asked.model_dump(by_alias=True, exclude_none=True) if asked else {}).items():
            try:
                over = resource in maximum and _amount(value) > _amount(maximum[resource])
            except ValueError:
                return False, f"spec.kernelResources.{part}.{resource}: {value} is not a positive quantity"
            if over:
                return False, (
                    f"spec.kernelResources.{part}.{resource}: {value} exceeds {maximum[resource]}, the most kernel "
                    f"profile {profile.name} allows: the gateway will refuse to start its kernels"
                )
    return True, f"kernelResources fit kernel profile {profile.name}"


def _amount(value):
    return quantity(canonical_quantity(value))
