"""What the hooks render, turned into what localrun starts: a container and its mounted files.

The children come from the pure hook functions, exactly as Metacontroller would apply them;
the only translation is the one a kubelet does: each volumeMount gets the files of its
ConfigMap or Secret (Secret data base64-decoded, `items` honoured).
"""

from __future__ import annotations

import base64
import secrets

from hooks.gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, sync_gateway
from hooks.models import API_VERSION
from hooks.notebook import GATEWAYS, sync_notebook

NOW = "2026-11-26T00:00:00Z"


def _by_kind(children: list[dict]) -> dict[str, dict]:
    """Each child under its kind (the last of a kind wins) and under "<kind>/<name>"."""
    return {key: child for child in children for key in (child["kind"], f"{child['kind']}/{child['metadata']['name']}")}


def gateway_cr(name: str, namespace: str = "default", **spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": "JupyterGateway", "spec": spec,
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1}}  # fmt: skip


def notebook_cr(name: str, namespace: str = "default", **spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": "JupyterNotebook", "spec": spec,
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1}}  # fmt: skip


def render_gateway(cr: dict) -> dict[str, dict]:
    """The gateway's children, by kind, as a first sync renders them (its ClusterRole allowed)."""
    role = cr["spec"].get("clusterRole", "jupyter-gateway-kernels")
    related = {CLUSTER_ROLES: {role: {"metadata": {"name": role, "labels": {KERNEL_ROLE_LABEL: "true"}}}}}
    result = sync_gateway(cr, {}, related, NOW, secrets.token_hex(24))
    assert result["children"], result["status"]
    return _by_kind(result["children"])


def render_notebook(
    cr: dict,
    gateway: dict | None,
    gateway_children: dict[str, dict],
    user_secrets: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict]:
    """The notebook's children, reading the gateway (if any), its token Secret and the user's Secrets
    (name -> {key: text}, e.g. the one spec.auth.passwordSecretRef names) as its customize hook does."""
    related = {GATEWAYS: {}, "Secret.v1": {}}
    if gateway is not None:
        meta = gateway["metadata"]
        related[GATEWAYS][f"{meta['namespace']}/{meta['name']}"] = gateway
    namespace = cr["metadata"]["namespace"]
    for name, data in (user_secrets or {}).items():
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        related["Secret.v1"][f"{namespace}/{name}"] = {
            "metadata": {"name": name, "namespace": namespace},
            "data": encoded,
        }
    if gateway is not None and "Secret" in gateway_children:
        secret = gateway_children["Secret"]
        related["Secret.v1"][f"{meta['namespace']}/{secret['metadata']['name']}"] = secret
    if gateway is not None:
        role = gateway["spec"].get("clusterRole", "jupyter-gateway-kernels")
        related[CLUSTER_ROLES] = {role: {"metadata": {"name": role, "labels": {KERNEL_ROLE_LABEL: "true"}}}}
    result = sync_notebook(cr, {}, related, NOW, secrets.token_hex(24))
    assert result["children"], result["status"]
    return _by_kind(result["children"])


def container_and_files(
    children: dict[str, dict], index: int = 0, projected=None
) -> tuple[dict, dict[str, dict[str, bytes]]]:
    """The Deployment's container ``index`` and, for each of its mounts, the files the kubelet
    writes. ``projected(volume)`` gives the files of a projected volume (a ServiceAccount token:
    identity.py); without it such a mount is an error."""
    pod = children["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][index]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "projected" in volume:
            if projected is None:
                raise AssertionError(f"volume {volume['name']} is projected: pass projected=")
            files[mount["mountPath"]] = projected(volume)
        else:
            files[mount["mountPath"]] = volume_files(children, volume)
    return container, files


def volume_files(children: dict[str, dict], volume: dict) -> dict[str, bytes]:
    """The files the kubelet writes into a volume: a ConfigMap's or Secret's (Secret data
    base64-decoded, `items` honoured); none for an emptyDir or a claim."""
    if "configMap" in volume:
        source = volume["configMap"]
        data = {k: v.encode() for k, v in children[f"ConfigMap/{source['name']}"]["data"].items()}
    elif "secret" in volume:
        source = volume["secret"]
        data = {k: base64.b64decode(v) for k, v in children["Secret"]["data"].items()}
    else:
        return {}
    if source.get("items"):
        data = {item["path"]: data[item["key"]] for item in source["items"]}
    return data


def secret_value(children: dict[str, dict], key: str = "token") -> str:
    return base64.b64decode(children["Secret"]["data"][key]).decode()
