"""Kernel pods on the real node (the start of moving tests/kernels off its fake node): the gateway
and notebook the hooks render run as pods from the images of .cache/images; a session opened on the
notebook's Jupyter Server makes Enterprise Gateway create the kernel pod in the notebook's namespace,
the kubelet runs it, `1+1` answers 2, a file saved through the notebook is what the kernel opens
(one local PersistentVolume mounted in both pods), and EG's culling deletes the pod."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE.parent / "kernels", HERE.parent / "integration"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import localrun as lr  # noqa: E402
import stack as ks  # noqa: E402
from controlplane import wait_for  # noqa: E402
from kubeapi import KubeApi  # noqa: E402
from node import IMAGES_DIR, NodeCluster  # noqa: E402
from test_kernel_pods import GATEWAY_SPEC, NOTEBOOK_SPEC  # noqa: E402  (culls after 4 s idle; a 1Gi workspace)

pytestmark = [pytest.mark.node]

IMAGES = ("pause", "enterprise-gateway", "kernel-py", "base-notebook")


@dataclass
class PodServer:
    """A Jupyter server running in a pod, reached at its pod IP (the node's bridge is the host's)."""

    url: str
    token: str

    def api(self, method: str, path: str, body=None, timeout: float = 30):
        return lr.http(method, self.url + path, headers={"Authorization": f"token {self.token}"}, body=body,
                       timeout=timeout)  # fmt: skip


class NodeKernelStack(ks.KernelStack):
    """KernelStack's cluster, CRs and rendered children, on a NodeCluster: every pod is real."""

    def start(self) -> None:
        t0 = time.monotonic()
        self.cp = NodeCluster(self.workdir / "cluster", extra_controllers=["resourcequota-controller"], cached=IMAGES)
        self.cp.start()
        self.api = KubeApi(self.cp.server, self.cp.ssl_context())
        self._install()
        self.workspace = self.cp.local_volume("workspace", NOTEBOOK_SPEC["workspace"]["size"])
        self._render_and_apply()
        for children, ns in ((self.gateway_children, ks.GATEWAY_NS), (self.notebook_children, ks.NOTEBOOK_NS)):
            name = self.deployment(children)["metadata"]["name"]
            self.cp.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=180s", timeout=200)
        notebook = self.api.pods(ks.NOTEBOOK_NS, "app.kubernetes.io/component=notebook")[0]
        token = ks.secret_token(self.notebook_children, f"{ks.NOTEBOOK}-notebook-auth")
        self.jupyter = PodServer(f"http://{notebook['status']['podIP']}:8888", token)
        wait_for(  # the gateway's Service routed (kube-proxy) and resolved (cluster DNS) from the notebook
            lambda: self.jupyter.api("GET", "/api/kernelspecs")[0] == 200,
            timeout=60,
            what="the notebook to list the gateway's kernelspecs",
        )
        self.timings["stack_s"] = round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        if self.cp:
            self.cp.stop()


@pytest.fixture(scope="module")
def kernel_stack(workdir: Path) -> Iterator[NodeKernelStack]:
    missing = [name for name in IMAGES if not (IMAGES_DIR / f"{name}.tar").is_file()]
    if missing:
        pytest.fail(f"images missing from {IMAGES_DIR}: {', '.join(missing)} (run: make images)")
    with NodeKernelStack(workdir / "kernels", GATEWAY_SPEC, NOTEBOOK_SPEC) as running:
        yield running


def test_notebook_kernel_runs_in_a_pod_on_the_node_and_is_culled(kernel_stack: NodeKernelStack, figures) -> None:
    st = kernel_stack
    for pod in st.api.pods(ks.GATEWAY_NS) + st.api.pods(ks.NOTEBOOK_NS):
        assert pod["spec"]["nodeName"] == st.cp.node_name
    t0 = time.monotonic()
    body = {"path": "analysis.ipynb", "type": "notebook", "name": "analysis.ipynb", "kernel": {}}
    status, session = st.jupyter.api("POST", "/api/sessions", body, timeout=120)
    assert status == 201, session
    figures["kernel_session_201_s"] = round(time.monotonic() - t0, 1)
    kernel_id = session["kernel"]["id"]
    pod = st.kernel_pod(kernel_id)
    assert pod["metadata"]["namespace"] == ks.NOTEBOOK_NS
    assert pod["spec"]["nodeName"] == st.cp.node_name
    assert pod["status"]["phase"] == "Running"
    with lr.KernelWS(st.jupyter.url, kernel_id, st.jupyter.token, timeout=60) as ws:
        out = ws.execute("1+1", timeout=60)
        assert out["result"] == "2", out
        # the workspace: one local PersistentVolume, written by the notebook, read by the kernel
        text = f"written through the contents API at {time.time()}"
        saved = {"type": "file", "format": "text", "content": text}
        status, model = st.jupyter.api("PUT", "/api/contents/shared.txt", saved)
        assert status in (200, 201), model
        assert ws.execute("print(open('shared.txt').read(), end='')", timeout=30)["stdout"] == text
    assert (st.workspace / "shared.txt").read_text() == text
    idle = time.monotonic()
    wait_for(lambda: st.kernel_pod(kernel_id) is None, timeout=90, what="EG to cull the idle kernel's pod")
    figures["kernel_idle_to_pod_gone_s"] = round(time.monotonic() - idle, 1)
    assert st.kernel_pods() == []
