"""Kubernetes identities for local runs: what the API server and a kubelet give the gateway pod's
front door (its ServiceAccount's token, the CA, the API server's address) and a notebook pod (a
projected token of its own ServiceAccount, audience its gateway). Rows service-account-mount,
projected-token and pod-ports of localrun.SUBSTITUTIONS.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import localrun as lr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from controlplane import ControlPlane

from hooks.front_door import IN_CLUSTER
from hooks.gateway import INTERNAL_PORT

TOKEN_REVIEW_RBAC = lr.REPO / "manifests" / "rbac" / "token-review.yaml"


class Identities:
    """Tokens and the in-cluster view of one local control plane."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp

    def install(self, children: list[dict]) -> None:
        """The install's token-review binding, and the namespaces and ServiceAccounts among ``children``."""
        self.cp.kubectl("apply", "-f", str(TOKEN_REVIEW_RBAC))
        namespaces = sorted({c["metadata"]["namespace"] for c in children if c["kind"] == "ServiceAccount"})
        for namespace in namespaces:
            if not self.cp.exists("namespace", namespace):
                self.cp.create_namespace(namespace)
        self.cp.apply([c for c in children if c["kind"] == "ServiceAccount"])

    def token(self, service_account: str, namespace: str, audience: str | None = None, seconds: int = 3600) -> str:
        args = ["create", "token", service_account, "-n", namespace, f"--duration={seconds}s"]
        if audience:
            args.append(f"--audience={audience}")
        return self.cp.kubectl(*args).stdout.strip()

    def projected(self, pod_spec: dict, namespace: str):
        """projected= for rendered.container_and_files: a pod's projected ServiceAccount tokens."""

        def files(volume: dict) -> dict[str, bytes]:
            out = {}
            for source in volume["projected"]["sources"]:
                token = source["serviceAccountToken"]
                value = self.token(
                    pod_spec["serviceAccountName"], namespace, token["audience"], token.get("expirationSeconds", 3600)
                )
                out[token["path"]] = value.encode()
            return out

        return files

    def front_door(self, gateway_children: dict[str, dict]) -> tuple[dict, dict, dict]:
        """The gateway pod's front-door container, its files (with the kubelet's ServiceAccount mount)
        and the API server's address in its environment."""
        import rendered

        deployment = gateway_children["Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        index = next(i for i, c in enumerate(pod["containers"]) if c["name"] == "front-door")
        container, files = rendered.container_and_files(gateway_children, index)
        namespace = deployment["metadata"]["namespace"]
        mount = {"name": "kube-api-access", "mountPath": IN_CLUSTER, "readOnly": True}
        container = {**container, "volumeMounts": [*container["volumeMounts"], mount]}
        files[IN_CLUSTER] = {
            "token": self.token(pod["serviceAccountName"], namespace).encode(),
            "ca.crt": (self.cp.pki / "ca.crt").read_bytes(),
        }
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.cp.apiserver_port)}
        return container, files, env

    def start_front_door(self, stack: lr.LocalStack, gateway_children: dict[str, dict], eg: lr.LocalProcess):
        """The front door beside a started Enterprise Gateway: ready when /healthz is 200 (it asks EG)."""
        container, files, env = self.front_door(gateway_children)
        return stack.start(
            container,
            files,
            venv=lr.EG_VENV,
            role="generic",
            ready_path="/healthz",
            extra_env=env,
            pod_ports={INTERNAL_PORT: eg.ports[INTERNAL_PORT]},
        )


@contextlib.contextmanager
def local_cluster(workdir: Path):
    """A local control plane (etcd, kube-apiserver, kube-controller-manager) for the identities."""
    cp = ControlPlane(Path(workdir) / "cluster")
    try:
        cp.start()
        yield Identities(cp)
    finally:
        cp.stop()


def start_gateway_pod(stack: lr.LocalStack, ids: Identities, children: dict[str, dict], **eg_kwargs):
    """Enterprise Gateway and its front door from the rendered gateway pod: (eg, front door)."""
    import rendered

    container, files = rendered.container_and_files(children)
    eg = stack.start_gateway(container, files, token=rendered.secret_value(children), **eg_kwargs)
    return eg, ids.start_front_door(stack, children, eg)


def start_notebook(stack: lr.LocalStack, ids: Identities, children: dict[str, dict], door: lr.LocalProcess, **kw):
    """The rendered notebook, its gateway's Service pointing at the front door, its projected token
    written from the TokenRequest API."""
    import rendered

    deployment = children["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container, files = rendered.container_and_files(
        children, projected=ids.projected(pod, deployment["metadata"]["namespace"])
    )
    gateway = next(e["value"] for e in container["env"] if e["name"] == "JUPYTER_GATEWAY_URL")
    service = gateway.removeprefix("http://").replace(".svc", "")
    container = {**container, "name": kw.pop("name", container["name"])}
    return stack.start_notebook(container, files, token=rendered.secret_value(children), services={service: door}, **kw)
