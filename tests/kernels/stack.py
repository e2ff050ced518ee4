"""Everything the kernel-pod tests run, wired exactly as the hooks render it.

- a real control plane (tests/e2e/controlplane.py: etcd, kube-apiserver, kube-controller-manager
  with its resourcequota controller), our CRDs and RBAC (manifests/crds, manifests/rbac);
- namespace GATEWAY_NS holding the JupyterGateway, namespace NOTEBOOK_NS holding the
  JupyterNotebook; both enforce Pod Security ``restricted``, NOTEBOOK_NS has a ResourceQuota;
- the children the pure sync hooks render for them, applied with kubectl;
- a real Enterprise Gateway 3.3.0 started from the rendered Deployment (localrun), whose
  in-cluster identity is a real token of the gateway's ServiceAccount (TokenRequest API), so
  the RBAC the hooks render is what lets it create and delete kernel pods;
- the one stand-in, FakeNode, running the kernel pods EG creates as local processes;
- a real Jupyter Server 2.21 started from the rendered notebook Deployment (localrun).

Everything substituted is listed in localrun.SUBSTITUTIONS.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import localrun as lr
import pytest
import rendered
from controlplane import BUILD_SCRIPT, ControlPlane, wait_for
from fake_node import FakeNode, kernel_images
from kubeapi import KubeApi

from hooks.gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, sync_gateway
from hooks.models import API_VERSION
from hooks.notebook import GATEWAYS, sync_notebook
from tests import eg_launcher

REPO = lr.REPO
OUTPUT = REPO / "test-output" / "kernels"
SDIST = eg_launcher.CACHE / f"jupyter_enterprise_gateway-{eg_launcher.VERSION}"
INCLUSTER_SHIM = Path(__file__).resolve().parent / "incluster"
GATEWAY_NS, NOTEBOOK_NS = "gateways", "team-a"
GATEWAY, NOTEBOOK = "gw", "alice"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
QUOTA = {"requests.cpu": "2", "requests.memory": "4Gi", "requests.nvidia.com/gpu": "1", "pods": "10"}
KERNEL_IMAGE = "elyra/kernel-py:3.3.0"
PREEMPTIBLE = "kernels-preemptible"
NOW = rendered.NOW
# The EG image's /usr/local/share/jupyter/kernels: the sdist's kernelspecs, assembled as its
# Makefile does (kernel-launchers/kubernetes/scripts copied into each kubernetes kernelspec).
IMAGE_KERNELS = "/usr/local/share/jupyter/kernels"
IMAGE_PREFIX_KERNELS = "/opt/conda/share/jupyter/kernels"  # the EG image interpreter's own kernelspecs


def missing_parts() -> list[str]:
    """What the suite needs that is not there, each with how to get it."""
    missing = []
    try:
        eg_launcher.sdist()  # fetched by tests/integration/provision.sh; else here (hash pinned)
    except RuntimeError as exc:
        missing.append(str(exc))
    for venv in (lr.EG_VENV, lr.FE_VENV):
        if not (venv / "bin" / "jupyter").exists():
            missing.append(f"{venv} (run: bash tests/integration/provision.sh)")
    return missing


def stock_image_kernels(dest: Path) -> Path:
    """The EG image's kernelspec directory, from the sdist (kernelspecs tarball of its Makefile)."""
    spec = dest / "python_kubernetes"
    (spec / "scripts").mkdir(parents=True, exist_ok=True)
    kernel = json.loads((SDIST / "etc/kernelspecs/python_kubernetes/kernel.json").read_text())
    kernel["metadata"]["process_proxy"]["config"]["image_name"] = KERNEL_IMAGE  # the Makefile's VERSION
    kernel["argv"] = [a.replace(IMAGE_KERNELS, str(dest)) for a in kernel["argv"]]
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
    for name in ("launch_kubernetes.py", "kernel-pod.yaml.j2"):
        shutil.copy(SDIST / "etc/kernel-launchers/kubernetes/scripts" / name, spec / "scripts" / name)
    return dest


def cr(kind: str, name: str, namespace: str, spec: dict) -> dict:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def secret_token(children: list[dict], name: str, key: str = "token") -> str:
    secret = next(c for c in children if c["kind"] == "Secret" and c["metadata"]["name"] == name)
    return base64.b64decode(secret["data"][key]).decode()


class KernelStack:
    def __init__(self, workdir: Path, gateway_spec: dict, notebook_spec: dict):
        self.workdir = Path(workdir)
        self.gateway_spec, self.notebook_spec = gateway_spec, notebook_spec
        self.cp: ControlPlane | None = None
        self.api: KubeApi | None = None
        self.node: FakeNode | None = None
        self.local = lr.LocalStack(self.workdir / "processes")
        self.eg: lr.LocalProcess | None = None
        self.jupyter: lr.LocalProcess | None = None
        self.timings: dict[str, float] = {}
        self.gateway_children: list[dict] = []
        self.notebook_children: list[dict] = []
        self.claims: dict[tuple[str, str], Path] = {}
        self.gateway_starts = 0
        self.init_logs: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        self.cp = ControlPlane(self.workdir / "cluster", extra_controllers=["resourcequota-controller"])
        self.cp.start()
        self.api = KubeApi(self.cp.server, self.cp.ssl_context())
        self.timings["control_plane_s"] = round(time.monotonic() - t0, 2)
        self._install()
        self._render_and_apply()
        self.node = FakeNode(
            self.api, {GATEWAY_NS, NOTEBOOK_NS}, self.workdir / "node", kernel_images(SDIST), lr.EG_VENV, self.claims
        ).start()
        self.start_gateway()
        self._start_notebook()
        self.timings["stack_s"] = round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        """Jupyter Server, then EG, then the node (kernels), then the control plane; always all."""
        with contextlib.suppress(Exception):
            if self.jupyter:  # before the gateway: without it Jupyter Server's shutdown hangs
                self.jupyter.stop()
            self.local.stop_all()
        if self.node:
            self.node.stop()
        if self.cp:
            self.cp.stop()

    # ------------------------------------------------------------------ cluster
    def _install(self) -> None:
        cp = self.cp
        cp.kubectl("apply", "-f", str(REPO / "manifests/crds"), "-f", str(REPO / "manifests/rbac"))
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubeflow.tkestack.io", "--timeout=60s")
        for ns in (GATEWAY_NS, NOTEBOOK_NS):
            cp.create_namespace(ns, RESTRICTED)
        # A low priority lets higher-priority work preempt idle kernels (kernel profiles may name it).
        cp.apply(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": PREEMPTIBLE},
                "value": -10,
                "preemptionPolicy": "Never",
            }
        )
        cp.apply(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "team", "namespace": NOTEBOOK_NS},
                "spec": {"hard": QUOTA},
            }
        )
        wait_for(
            lambda: self.api.get(f"/api/v1/namespaces/{NOTEBOOK_NS}/resourcequotas/team").get("status", {}).get("hard"),
            timeout=60,
            what="the ResourceQuota's status (resourcequota controller)",
        )

    def _render_and_apply(self) -> None:
        """Apply both CRs (the schema must accept them), then the children the hooks render for
        the objects the API server returns, as Metacontroller would."""
        cp = self.cp
        cp.apply(
            [
                cr("JupyterGateway", GATEWAY, GATEWAY_NS, self.gateway_spec),
                cr("JupyterNotebook", NOTEBOOK, NOTEBOOK_NS, self.notebook_spec),
            ]
        )
        gateway = cp.kubectl_json("get", "jupytergateway", GATEWAY, "-n", GATEWAY_NS)
        role = cp.kubectl_json("get", "clusterrole", gateway["spec"].get("clusterRole", "jupyter-gateway-kernels"))
        assert role["metadata"]["labels"][KERNEL_ROLE_LABEL] == "true"
        result = sync_gateway(gateway, {}, {CLUSTER_ROLES: {role["metadata"]["name"]: role}}, NOW, "t" * 48)
        assert result["children"], result["status"]
        self.gateway_children = result["children"]
        self.apply_children(self.gateway_children)
        # The notebook's hook reads the gateway (Ready, as its controller would report) and its Secret.
        gateway["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]}
        secret = next(c for c in self.gateway_children if c["kind"] == "Secret")
        related = {
            GATEWAYS: {f"{GATEWAY_NS}/{GATEWAY}": gateway},
            "Secret.v1": {f"{GATEWAY_NS}/{secret['metadata']['name']}": secret},
        }
        related[CLUSTER_ROLES] = {role["metadata"]["name"]: role}
        notebook = cp.kubectl_json("get", "jupyternotebook", NOTEBOOK, "-n", NOTEBOOK_NS)
        result = sync_notebook(notebook, {}, related, NOW, "n" * 48)
        assert result["children"], result["status"]
        self.notebook_children = result["children"]
        self.apply_children(self.notebook_children)

    def apply_children(self, children: list[dict]) -> str:
        items = json.dumps({"apiVersion": "v1", "kind": "List", "items": children})
        res = self.cp.kubectl("apply", "--server-side", "--field-manager=kernel-tests", "-f", "-", input=items)
        return res.stdout + res.stderr

    def deployment(self, children: list[dict]) -> dict:
        return next(c for c in children if c["kind"] == "Deployment")

    # ------------------------------------------------------------------ processes
    def _incluster_env(self) -> dict[str, str]:
        """A real token of the gateway's ServiceAccount and the cluster CA, where the shim points
        the kubernetes client's in-cluster file names (see incluster/sitecustomize.py)."""
        sa = self.deployment(self.gateway_children)["spec"]["template"]["spec"]["serviceAccountName"]
        token = self.cp.kubectl("create", "token", sa, "-n", GATEWAY_NS, "--duration=2h").stdout.strip()
        folder = self.workdir / "incluster"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(token)
        (folder / "token").chmod(0o600)
        shutil.copy(self.cp.pki / "ca.crt", folder / "ca.crt")
        # For EG's launch_kubernetes.py, which EG hands KUBECONFIG (k8s.py) and the guard keeps.
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": f"https://127.0.0.1:{self.cp.apiserver_port}",
                                                       "certificate-authority": str(folder / "ca.crt")}}],
            "users": [{"name": "gateway", "user": {"tokenFile": str(folder / "token")}}],
            "contexts": [{"name": "gateway", "context": {"cluster": "local", "user": "gateway"}}],
            "current-context": "gateway",
        }  # fmt: skip
        (folder / "kubeconfig").write_text(json.dumps(kubeconfig))
        return {
            "LOCALRUN_KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "LOCALRUN_KUBERNETES_SERVICE_PORT": str(self.cp.apiserver_port),
            "PYTHONPATH": str(INCLUSTER_SHIM),
            "LOCALRUN_INCLUSTER_DIR": str(folder),
            "KUBECONFIG": str(folder / "kubeconfig"),
        }

    def start_gateway(self) -> lr.LocalProcess:
        """(Re)start the gateway pod from the rendered Deployment, as a new pod after a rollout:
        fresh emptyDirs, its init containers run to completion, then EG."""
        t0 = time.monotonic()
        self.gateway_starts += 1
        run = self.workdir / f"gateway-pod-{self.gateway_starts}"
        pod = self.deployment(self.gateway_children)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        incluster = self._incluster_env()
        image = {IMAGE_KERNELS: str(stock_image_kernels(run / "image" / "kernels"))}
        for init in pod.get("initContainers", []):
            self._run_init_container(init, volumes, run, image, incluster)
        container = pod["containers"][0]
        files, mount_dirs = {}, {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                mount_dirs[mount["mountPath"]] = run / "volumes" / mount["name"]
            else:
                files[mount["mountPath"]] = self._volume_files(volume)
        extra = dict(incluster)
        # jupyter_core's system directory /usr/local/share/jupyter: the image's stock kernelspecs,
        # or what the gateway mounts over them.
        system = run / "usr-local-share-jupyter"
        system.mkdir(parents=True, exist_ok=True)
        (system / "kernels").symlink_to(mount_dirs.get(IMAGE_KERNELS, image[IMAGE_KERNELS]), target_is_directory=True)
        extra["JUPYTER_PATH"] = str(system)
        if IMAGE_PREFIX_KERNELS in mount_dirs:
            extra["LOCALRUN_HIDDEN_JUPYTER_PATH"] = str(lr.EG_VENV / "share" / "jupyter")
        token = secret_token(self.gateway_children, f"{GATEWAY}-gateway-auth")
        ports = self.eg.ports if self.eg else None  # the Service's address does not change
        self.eg = self.local.start(
            container,
            files,
            venv=lr.EG_VENV,
            role="gateway",
            token=token,
            ready_path="/api/kernelspecs",
            ready_timeout=90,
            remote_kernels=True,
            extra_env=extra,
            mount_dirs=mount_dirs,
            port_map=ports,
        )
        self.timings["gateway_ready_s"] = round(time.monotonic() - t0, 2)
        return self.eg

    def _volume_files(self, volume: dict) -> dict[str, bytes]:
        """The files the kubelet writes for a ConfigMap or Secret volume."""
        by_name = {(c["kind"], c["metadata"]["name"]): c for c in self.gateway_children + self.notebook_children}
        if "configMap" in volume:
            source = volume["configMap"]
            data = {k: v.encode() for k, v in by_name[("ConfigMap", source["name"])].get("data", {}).items()}
        elif "secret" in volume:
            source = volume["secret"]
            data = {k: base64.b64decode(v) for k, v in by_name[("Secret", source["secretName"])]["data"].items()}
        else:
            raise lr.LocalRunError(f"volume {volume['name']}: the harness has no files for {sorted(volume)}")
        if source.get("items"):
            data = {item["path"]: data[item["key"]] for item in source["items"]}
        return data

    def _run_init_container(self, init: dict, volumes: dict, run: Path, image: dict, extra: dict) -> None:
        """Run one init container of the gateway pod to completion (its command, its env, its
        mounts as local directories, the gateway image's files from the sdist)."""
        paths = dict(image)
        for mount in init.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = run / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "emptyDir" not in volume:
                for name, data in self._volume_files(volume).items():
                    (local / name).write_bytes(data)
            paths[mount["mountPath"]] = str(local)
        argv = [lr.map_path(a, paths) for a in init.get("command", []) + init.get("args", [])]
        if argv[0] == "python":
            argv[0] = str(lr.EG_VENV / "bin" / "python")
        elif argv[0] not in ("/bin/sh", "/bin/bash"):
            raise lr.LocalRunError(f"init container {init['name']}: no local equivalent of {argv[0]}")
        env = lr.hermetic_env(run / init["name"], lr.EG_VENV)
        env.update({e["name"]: lr.map_path(str(e.get("value", "")), paths) for e in init.get("env", [])})
        env.update(extra)
        log = run / f"{init['name']}.log"
        with open(log, "wb") as out:
            res = subprocess.run(argv, env=env, cwd=run, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        self.init_logs[init["name"]] = log.read_text(errors="replace")
        if res.returncode != 0:
            raise lr.LocalRunError(
                f"init container {init['name']} exited {res.returncode}:\n{self.init_logs[init['name']]}"
            )

    def _start_notebook(self) -> None:
        """Jupyter Server from the rendered notebook Deployment; a PersistentVolumeClaim mount is the
        claim's local directory, the one the node mounts in kernel pods."""
        t0 = time.monotonic()
        pod = self.deployment(self.notebook_children)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        container = pod["containers"][0]
        files, mount_dirs = {}, {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                local = self.claims.setdefault((NOTEBOOK_NS, claim), self.workdir / "pvc" / NOTEBOOK_NS / claim)
                mount_dirs[mount["mountPath"]] = local
            else:
                files[mount["mountPath"]] = self._volume_files(volume)
        token = secret_token(self.notebook_children, f"{NOTEBOOK}-notebook-auth")
        self.jupyter = self.local.start_notebook(
            container,
            files,
            token=token,
            services={f"{GATEWAY}.{GATEWAY_NS}:8888": self.eg},
            ready_timeout=90,
            mount_dirs=mount_dirs,
        )
        self.timings["notebook_ready_s"] = round(time.monotonic() - t0, 2)

    def kill_gateway(self, sig: int) -> dict:
        """Stop EG with ``sig`` (SIGTERM: a rollout, SIGKILL: a crash); its kernel pods are left
        to whatever EG does, the node keeps running them."""
        eg = self.eg
        launchers = lr.descendants(eg.pid)  # EG's kernel launchers; none outlives this call
        t0 = time.monotonic()
        eg.proc.send_signal(sig)
        try:
            eg.proc.wait(35)  # a pod's default grace period is 30 s
        except subprocess.TimeoutExpired:
            eg.proc.kill()
            eg.proc.wait(5)
        stopped = {"signal": sig, "rc": eg.proc.returncode, "seconds": round(time.monotonic() - t0, 2)}
        eg.stop()
        for pid in launchers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return stopped

    # ------------------------------------------------------------------ observations
    def kernel_pods(self, namespace: str | None = None) -> list[dict]:
        return self.api.pods(namespace, "component=kernel")

    def kernel_pod(self, kernel_id: str) -> dict | None:
        pods = self.api.pods(None, f"kernel_id={kernel_id}")
        return pods[0] if pods else None

    def eg_post(self, body: dict) -> tuple[int, Any]:
        return self.eg.api("POST", "/api/kernels", body, timeout=120)


def start_stack(name: str, gateway_spec: dict, notebook_spec: dict) -> KernelStack:
    missing = missing_parts()
    if missing:
        pytest.fail("the kernel-pod suite needs: " + "; ".join(missing))
    if not os.environ.get("E2E_SKIP_BUILD"):  # a no-op when the binaries are built
        res = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"{BUILD_SCRIPT} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    workdir = OUTPUT / time.strftime(f"{name}-%Y%m%d-%H%M%S")
    return KernelStack(workdir, gateway_spec, notebook_spec)
