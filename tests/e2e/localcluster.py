"""`make up` / `make down`: the operator on a local control plane, to look at and poke.

    python tests/e2e/localcluster.py up      # etcd, kube-apiserver, kube-controller-manager,
                                             # the hook server and Metacontroller; samples applied
    python tests/e2e/localcluster.py down    # stops exactly the processes `up` started

Metacontroller is the upstream release binary named by $METACONTROLLER_BIN (CRDs from
$METACONTROLLER_CRDS), run with the flags of manifests/metacontroller-install/flags.yaml.
State (certs, kubeconfig, etcd data, logs, the PID file) lives in $UP_STATE_DIR or .cache/up/.
There is no kubelet and no scheduler: pods are API objects that stay Pending.
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
    shutil.rmtree(workdir, ignore_errors=True)  # the previous run's cluster: a fresh one each time
    cp = ControlPlane(workdir)
    hooks = None
    started = time.monotonic()
    try:
        print("make up: starting etcd, kube-apiserver and kube-controller-manager ...", flush=True)
        cp.start()
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
            lambda: (
                "GatewayNotReady"
                in cp.kubectl(
                    "get", "jupyternotebook", "jupyternotebook-sample", "-o", "jsonpath={.status.conditions}"
                ).stdout
            ),
            timeout=120,
            what="the sample notebook's status",
        )
    except BaseException as exc:
        if hooks is not None:
            hooks.stop()
        cp.stop()
        PIDS.unlink(missing_ok=True)
        print(f"make up: FAILED, everything stopped ({exc}); logs in {cp.workdir}", file=sys.stderr)
        return 1
    print(f"\nmake up: ready in {time.monotonic() - started:.0f}s. The samples are applied:\n")
    print(cp.kubectl("get", "jupyter").stdout)
    print("No kubelet runs here: pods stay Pending, so READY stays False. To use the cluster:\n")
    print(kubectl_hint(cp))
    print(f"\nKUBECONFIG={cp.kubeconfig}")
    return 0


def down() -> int:
    entries = recorded()
    if not entries:
        print("make down: nothing to stop")
        return 0
    for entry in reversed(entries):
        if not running(entry):
            continue
        os.kill(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 15
        while running(entry) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(entry):
            os.kill(entry["pid"], signal.SIGKILL)
        print(f"make down: stopped {entry['name']} (pid {entry['pid']})")
    PIDS.unlink()
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
