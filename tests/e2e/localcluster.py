"""`make up` / `make down`: the operator on a local single-node cluster, to look at and poke.

    python tests/e2e/localcluster.py up      # etcd, kube-apiserver, kube-controller-manager, and where
                                             # the machine allows (tests/e2e/node.py) a real node:
                                             # kube-scheduler, containerd, CNI, kubelet, kube-proxy;
                                             # the hook server and Metacontroller; samples applied
    python tests/e2e/localcluster.py down    # stops exactly the processes `up` started, deletes the
                                             # pods first and undoes the node's host changes

Metacontroller is the upstream release binary named by $METACONTROLLER_BIN (CRDs from
$METACONTROLLER_CRDS), run with the flags of manifests/metacontroller-install/flags.yaml.
State (certs, kubeconfig, etcd data, logs, the PID file) lives in $UP_STATE_DIR or .cache/up/.
Images come from .cache/images/*.tar (`make images`); the node advertises $UP_GPUS (default 1)
nvidia.com/gpu. Where the machine cannot run a node (not root, ...), `up` says what is missing and
runs the control plane alone: pods are then API objects that stay Pending.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlplane import (
    METACONTROLLER_HOWTO,
    REPO_ROOT,
    ControlPlane,
    ControlPlaneError,
    metacontroller_given,
    shipped_metacontroller_flags,
    wait_for,
)
from hookserver import AUTH_SECRET, HookServer, hook_token, overlay
from node import IMAGES_DIR, POD_MAKERS, NodeCluster, can_run_node

STATE = Path(os.environ.get("UP_STATE_DIR") or REPO_ROOT / ".cache" / "up").resolve()
PIDS = STATE / "pids.json"
GROUP = "kubeflow.tkestack.io"
SAMPLES = REPO_ROOT / "manifests" / "samples"


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def running(entry: dict) -> bool:
    """The recorded process is still this one (same PID and same command), not a reused PID."""
    return cmdline(entry["pid"])[:1] == entry["argv0"]


def recorded() -> list[dict]:
    return json.loads(PIDS.read_text()) if PIDS.exists() else []


def kubectl_hint(cp: ControlPlane) -> str:
    return (
        f"  export KUBECONFIG={cp.kubeconfig}\n"
        f"  export PATH={cp.bin_dir}:$PATH      # kubectl {cp.bin_dir / 'kubectl'}\n"
        "  kubectl get jupyter; kubectl describe jupytergateway jupytergateway-sample; kubectl apply -f <your CR>\n"
        f"  logs: {cp.workdir}/*.log\n"
        "  make down   stops it"
    )


def up() -> int:
    if not metacontroller_given():
        print("make up: needs Metacontroller, which is not part of this repository.\n" + METACONTROLLER_HOWTO)
        return 2
    if any(running(e) for e in recorded()):
        print(f"make up: already running (PIDs in {PIDS}); `make down` first.")
        return 1
    workdir = STATE / "cluster"
    stale = NodeCluster.left_behind(workdir)
    if stale:  # a previous node whose processes are gone but whose host changes are not
        print("make up: undoing the host changes of a node that was not taken down ...", flush=True)
        stale.sweep_host()
    shutil.rmtree(workdir, ignore_errors=True)  # the previous run's cluster: a fresh one each time
    missing = can_run_node()
    if missing:
        print("make up: NO NODE on this machine (pods will stay Pending); it lacks:", flush=True)
        print("  - " + "\n  - ".join(missing), flush=True)
    cp = ControlPlane(workdir) if missing else NodeCluster(workdir, gpus=int(os.environ.get("UP_GPUS", 1)))
    hooks = None
    started = time.monotonic()
    try:
        if missing:
            print("make up: starting etcd, kube-apiserver and kube-controller-manager ...", flush=True)
        else:
            print("make up: starting the control plane and a node (containerd, kubelet, kube-proxy) ...", flush=True)
        cp.start()
        if not missing:
            print(
                f"make up: node {cp.node_name} Ready after {cp.timings['node_ready_s']:.0f}s "
                f"(of which {cp.timings['images_import_s']:.0f}s importing {IMAGES_DIR}/*.tar)",
                flush=True,
            )
        cp.apply_metacontroller_crds()
        token = hook_token(cp, cp.workdir)
        hooks = HookServer(cp.workdir, port=int(os.environ.get("HOOKS_PORT", 0)), access_log=False, token_file=token)
        print(
            f"make up: hook server on http://127.0.0.1:{hooks.port} (bearer token of Secret {AUTH_SECRET})", flush=True
        )
        cp.kubectl("apply", "-k", str(overlay(cp.workdir, hooks.port)))
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
            cp.wait_for_resource(f"{crd}.{GROUP}")
        flags = shipped_metacontroller_flags()
        mc = cp.start_metacontroller(flags)
        print(f"make up: Metacontroller {os.environ['METACONTROLLER_BIN']} {' '.join(flags)}", flush=True)
        processes = [*cp.processes[:-1], hooks.process, mc]  # stopped in reverse: Metacontroller first
        STATE.mkdir(parents=True, exist_ok=True)
        PIDS.write_text(
            json.dumps([{"name": p.name, "pid": p.pid, "argv0": p.popen.args[:1]} for p in processes], indent=1)
        )
        cp.kubectl("apply", "-f", str(SAMPLES / "jupytergateway-sample.yaml"))
        cp.kubectl("apply", "-f", str(SAMPLES / "jupyternotebook-sample.yaml"))
        wait_for(
            lambda: cp.kubectl(
                "get", "jupyternotebook", "jupyternotebook-sample", "-o", "jsonpath={.status.conditions}"
            ).stdout.strip(),
            timeout=120,
            what="the sample notebook's status",
        )
    except BaseException as exc:
        if hooks is not None:
            hooks.stop()
        try:
            cp.stop()
        except ControlPlaneError as teardown:
            print(f"make up: {teardown}", file=sys.stderr)
        PIDS.unlink(missing_ok=True)
        print(f"make up: FAILED, everything stopped ({exc}); logs in {cp.workdir}", file=sys.stderr)
        return 1
    print(f"\nmake up: ready in {time.monotonic() - started:.0f}s. The samples are applied:\n")
    print(cp.kubectl("get", "jupyter").stdout)
    if missing:
        print("No node runs here: pods stay Pending, so READY stays False. To use the cluster:\n")
    else:
        print(cp.kubectl("get", "pods", "-A", "-o", "wide").stdout)
        print("Pods run on the node; `kubectl get pods -A -w` to watch them. To use the cluster:\n")
    print(kubectl_hint(cp))
    print(f"\nKUBECONFIG={cp.kubeconfig}")
    return 0


def stop(entry: dict) -> None:
    """SIGTERM the recorded process, SIGKILL after 15 s; nothing if it is gone (or its PID reused)."""
    if not running(entry):
        return
    os.kill(entry["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while running(entry) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(entry):
        os.kill(entry["pid"], signal.SIGKILL)
    print(f"make down: stopped {entry['name']} (pid {entry['pid']})")


def down() -> int:
    entries = recorded()
    node = NodeCluster.left_behind(STATE / "cluster")
    if not entries and not node:
        print("make down: nothing to stop")
        return 0
    if node and any(e["name"] == "kubelet" and running(e) for e in entries):
        for entry in entries:
            if entry["name"] in POD_MAKERS:
                stop(entry)
        try:  # while the kubelet runs: containers stopped, volumes unmounted, CNI released its way
            node.delete_all_pods()
            print("make down: every pod deleted")
        except Exception as exc:
            print(f"make down: deleting the pods failed ({exc}); they are killed below", file=sys.stderr)
    for entry in reversed(entries):
        stop(entry)
    PIDS.unlink(missing_ok=True)
    if node:
        problems = node.sweep_host()
        if problems:
            print("make down: " + "; ".join(problems), file=sys.stderr)
            return 1
        print("make down: the node's bridge, iptables chains, mounts, cgroups and sysctls undone")
    print(f"make down: done; logs kept in {STATE / 'cluster'}")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["up"]:
        return up()
    if argv[1:] == ["down"]:
        return down()
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ControlPlaneError as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        sys.exit(1)
