"""How a notebook proves who it is to its gateway: its own ServiceAccount's token.

With spec.gateway the notebook gets a child ServiceAccount <name>-notebook (no rights, no
token Secret) and its pod runs as it, without the API server's token
(automountServiceAccountToken false) but with a projected token whose audience is the gateway
(gateway.audience) and which the kubelet renews before it expires. Jupyter Server re-reads
that file for each request to the gateway (jupyter_server_config.py's token renewer), and the
gateway's front door identifies the notebook as (namespace, name) from it with a TokenReview.
No gateway secret reaches the notebook.
"""

from __future__ import annotations

from . import children as ch
from .gateway import audience

TOKEN_DIR = "/var/run/secrets/kubeflow.tkestack.io/gateway"
TOKEN_FILE = "token"
TOKEN_VOLUME = "jupyter-gateway-token"
TOKEN_ENV = "JUPYTER_GATEWAY_TOKEN_FILE"  # read by jupyter_server_config.py
# The kubelet renews a projected token at 80% of its life; the API server's minimum is 600 s.
TOKEN_SECONDS = 3600


def service_account_name(name: str) -> str:
    return f"{name}-notebook"


def service_account(name: str, namespace: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": service_account_name(name), "namespace": namespace, "labels": ch.labels("notebook", name)},
        "automountServiceAccountToken": False,
    }


def pod_parts(name: str, gateway: dict) -> tuple[dict, dict, dict]:
    """(volume, the notebook container's mount, its variable) for the gateway's token."""
    meta = gateway["metadata"]
    source = {"audience": audience(meta["name"], meta["namespace"]), "expirationSeconds": TOKEN_SECONDS}
    volume = {
        "name": TOKEN_VOLUME,
        "projected": {"defaultMode": 0o440, "sources": [{"serviceAccountToken": {**source, "path": TOKEN_FILE}}]},
    }
    mount = {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
    return volume, mount, {"name": TOKEN_ENV, "value": f"{TOKEN_DIR}/{TOKEN_FILE}"}


def service_account_problem(name: str, pod_spec: dict) -> str | None:
    """A template that names another ServiceAccount: the gateway would not know the notebook."""
    wanted = service_account_name(name)
    for field in ("serviceAccountName", "serviceAccount"):
        value = pod_spec.get(field)
        if value not in (None, "", wanted):
            return (
                f"spec.template.spec.{field}: a notebook with a gateway runs as its own ServiceAccount "
                f"{wanted} (the gateway identifies it by that account's token); remove {value!r}"
            )
    return None
