"""Convergence at scale with the real Metacontroller: prints figures, passes or fails nothing.

    python -m bench.scale [--cases shipped:100,shipped:300,shipped:1000,default:100] [--steady 60]
                          [--long-steady shipped:1000=300] [--outage shipped:1000=60]
                          [--kernel-pods shipped:1000=1000]

Each case gets a fresh local control plane (tests/e2e/controlplane.py, binaries from
tests/e2e/build.sh) with an audit log of every write, the hook server (`python -m hooks serve`,
as in the image) and Metacontroller ($METACONTROLLER_BIN, CRDs from $METACONTROLLER_CRDS) with
either its default flags or the shipped ones (manifests/metacontroller-install/flags.yaml).
kube-controller-manager runs without its deployment and replicaset controllers: with no kubelet,
1,000 Deployments would only add 1,000 Pending pods and their writes to the audit log.

Per case: one gateway, then N notebooks POSTed at once (8 client threads); seconds until every
notebook has its three children and until every notebook has a status for its generation written
after its children existed (polled each second); then a steady window: writes to parents and children (from the
audit log, by user agent), CPU seconds of the hook server and of Metacontroller, hook calls; peak RSS
of both. Optionally kernel pods (status.kernels makes Metacontroller watch pods): K pods labelled as the
kernels of K notebooks (no kubelet: they stay Pending), seconds until every notebook lists its
kernel; then each pod's status written as a kubelet would for an OOMKilled kernel, seconds until
every notebook shows the end's reason; hook calls, notebook status writes and CPU per pod change,
then a steady window with the pods there, then K pods that are nobody's kernels created and deleted
(Metacontroller matches every pod event against every notebook). Optionally a hook outage: the hook
server stopped for S seconds while the gateway changes and 10 notebooks are added, then restarted on
the same port; seconds until all of it converged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from controlplane import (  # noqa: E402
    DEFAULT_CONTROLLERS,
    ControlPlane,
    Process,
    free_port,
    metacontroller_release,
    shipped_metacontroller_flags,
    wait_for,
)
from hookserver import hook_token, overlay  # noqa: E402

from hooks.kernelspecs import PROFILE_LABEL  # noqa: E402
from hooks.notebook_kernel_status import selector  # noqa: E402

GROUP = "kubeflow.tkestack.io"
NS = "bench"
CONTROLLERS = [c for c in DEFAULT_CONTROLLERS if c not in ("deployment-controller", "replicaset-controller")]
PARENTS = {"jupytergateways", "jupyternotebooks"}
CHILDREN = {
    "deployments",
    "services",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "rolebindings",
    "networkpolicies",
}
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: "", resources: [events]}, {group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: Metadata
  nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*"]
- level: None
"""
METADATA_LIST = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process figures
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_now(hooks: Process, mc: Process) -> dict[str, float]:
    """CPU seconds so far of the hook server and of Metacontroller."""
    return {"hooks": cpu_seconds(hooks.pid), "metacontroller": cpu_seconds(mc.pid)}


def cpu_since(start: dict[str, float], hooks: Process, mc: Process, digits: int) -> dict[str, float]:
    """CPU seconds of each since ``start`` (a ``cpu_now``)."""
    return {k: round(v - start[k], digits) for k, v in cpu_now(hooks, mc).items()}


def peak_rss(hooks: Process, mc: Process) -> dict[str, int]:
    return {"hooks": round(peak_rss_mib(hooks.pid)), "metacontroller": round(peak_rss_mib(mc.pid))}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------- the API
class Api:
    def __init__(self, cp: ControlPlane) -> None:
        self.server = cp.server
        self.ctx = cp.ssl_context()

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        accept: str = "application/json",
        content_type: str = "application/json",
    ) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
            return json.loads(r.read())

    def names(self, resource: str, group: str = "") -> set[str]:
        base = f"/apis/{group}" if group else "/api/v1"
        return {
            i["metadata"]["name"]
            for i in self.request("GET", f"{base}/namespaces/{NS}/{resource}", accept=METADATA_LIST)["items"]
        }

    def notebooks(self) -> list[dict]:
        return self.request("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/jupyternotebooks")["items"]

    def create_notebook(self, name: str) -> None:
        self.request("POST", f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/jupyternotebooks", notebook(name))


def notebook(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "JupyterNotebook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"gateway": {"name": "gw"}},
    }


def settled(notebook: dict) -> bool:
    """A status for the current generation written after the children existed: the first sync
    reports DeploymentMissing; with its Deployment there (no kubelet) it says DeploymentNotAvailable."""
    status = notebook.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return status.get("observedGeneration") == notebook["metadata"]["generation"] and ready.get("reason") in (
        "DeploymentNotAvailable",
        "GatewayNotReady",
    )


def converged(api: Api, names: list[str]) -> tuple[bool, bool]:
    """(every notebook has its three children, every notebook has a current status)."""
    deployments, services, secrets = api.names("deployments", "apps/v1"), api.names("services"), api.names("secrets")
    children = all(
        f"{n}-notebook" in deployments and f"{n}-notebook" in services and f"{n}-notebook-auth" in secrets
        for n in names
    )
    status = {i["metadata"]["name"] for i in api.notebooks() if settled(i)}
    return children, all(n in status for n in names)


def wait_converged(api: Api, names: list[str], t0: float, timeout: float) -> tuple[float, float]:
    t_children = t_status = None
    while time.monotonic() - t0 < timeout:
        children, status = converged(api, names)
        now = time.monotonic() - t0
        if children and t_children is None:
            t_children = now
        if status and t_status is None:
            t_status = now
        if t_children is not None and t_status is not None:
            return t_children, t_status
        time.sleep(1)
    raise TimeoutError(f"not converged after {timeout}s (children at {t_children}, status at {t_status})")


# ---------------------------------------------------------------- audit log
def audit_writes(log: Path, since: float, until: float) -> dict[str, dict[str, int]]:
    """Writes to parents and children between two wall-clock times, by user agent and resource."""
    out: dict[str, dict[str, int]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        resource = ref.get("resource")
        if resource not in PARENTS | CHILDREN or event["verb"] not in ("create", "update", "patch", "delete"):
            continue
        at = iso_seconds(event["requestReceivedTimestamp"])
        if since <= at < until:
            agent = event.get("userAgent", "?").split("/")[0]
            key = resource + ("/" + ref["subresource"] if ref.get("subresource") else "")
            out.setdefault(agent, {}).setdefault(key, 0)
            out[agent][key] += 1
    return out


def write_count(writes: dict[str, dict[str, int]]) -> int:
    """All writes in an ``audit_writes`` result."""
    return sum(sum(v.values()) for v in writes.values())


def discovery_requests(log: Path, since: float, until: float) -> int:
    count = 0
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if (
            "metacontroller" in event.get("userAgent", "")
            and event.get("requestURI", "").startswith(("/api", "/apis"))
            and not event.get("objectRef")
            and since <= iso_seconds(event["requestReceivedTimestamp"]) < until
        ):
            count += 1
    return count


def iso_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def client_requests(mc: Process) -> dict[str, int]:
    """Metacontroller's own count of its API requests (client-go's rest_client_requests_total), by method."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mc.ports['metrics']}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("rest_client_requests_total{"):
            method = line.split('method="')[1].split('"')[0]
            out[method] = out.get(method, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def hook_calls(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("elastic_jupyter_hook_calls_total{")
        )
    )


# ---------------------------------------------------------------- one case
def start_hooks(cp: ControlPlane, port: int) -> Process:
    token = cp.workdir / "hook-token"  # written by hook_token() before the first start
    proc = cp._spawn(
        "hooks",
        [
            sys.executable,
            "-m",
            "hooks",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token-file",
            str(token),
        ],
        env={"PYTHONPATH": str(ROOT)},
    )
    cp._wait_ready(proc, lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200)
    return proc


def case_flags(flags_name: str) -> list[str]:
    """ "default", "shipped", or either with overrides: "shipped+--workers=5+--client-go-qps=50"."""
    base, *overrides = flags_name.split("+")
    flags = shipped_metacontroller_flags() if base == "shipped" else []
    names = {o.split("=")[0] for o in overrides}
    return [f for f in flags if f.split("=")[0] not in names] + overrides


def run_case(flags_name: str, n: int, steady: float, outage: float, kernel_pods: int, workdir: Path) -> dict:
    flags = case_flags(flags_name)
    policy = workdir / "audit-policy.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    policy.write_text(AUDIT_POLICY)
    audit = workdir / "audit.log"
    result: dict = {"flags": flags_name, "args": flags, "n": n, "load_before": loadavg()}
    apiserver_args = [f"--audit-policy-file={policy}", f"--audit-log-path={audit}", "--audit-log-maxsize=0"]
    with ControlPlane(workdir, apiserver_args=apiserver_args, controllers=CONTROLLERS) as cp:
        port = free_port()
        cp.apply_metacontroller_crds()
        hook_token(cp, cp.workdir)
        hooks = start_hooks(cp, port)
        cp.kubectl("apply", "-k", str(overlay(cp.workdir, port)))
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
            cp.wait_for_resource(f"{crd}.{GROUP}")
        mc = cp.start_metacontroller(flags)
        cp.create_namespace(NS)
        api = Api(cp)
        cp.apply(
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "JupyterGateway",
                "metadata": {"name": "gw", "namespace": NS},
                "spec": {},
            }
        )
        wait_for(
            lambda: (
                api.request("GET", f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/jupytergateways/gw").get("status") or {}
            ).get("observedGeneration"),
            timeout=120,
            what="the gateway's status",
        )

        names = [f"nb-{i:04d}" for i in range(n)]
        cpu0 = cpu_now(hooks, mc)
        requests0 = client_requests(mc)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(api.create_notebook, names))
        result["apply_s"] = round(time.monotonic() - t0, 1)
        t_children, t_status = wait_converged(api, names, t0, timeout=1500)
        result["children_s"], result["status_s"] = round(t_children, 1), round(t_status, 1)
        requests1 = client_requests(mc)
        result["convergence_mc_requests"] = {m: requests1[m] - requests0.get(m, 0) for m in requests1}
        result["convergence_cpu_s"] = cpu_since(cpu0, hooks, mc, 1)
        print(
            f"[{flags_name} N={n}] apply {result['apply_s']}s, children {t_children:.1f}s, status {t_status:.1f}s",
            flush=True,
        )

        time.sleep(5)  # the last status writes' own watch events: not part of the steady state
        w0, c0 = time.time(), cpu_now(hooks, mc)
        calls0 = hook_calls(port)
        time.sleep(steady)
        w1 = time.time()
        result["steady_s"] = steady
        result["steady_writes"] = audit_writes(audit, w0, w1)
        result["steady_cpu_s"] = cpu_since(c0, hooks, mc, 2)
        result["steady_hook_calls"] = hook_calls(port) - calls0
        result["steady_discovery_requests"] = discovery_requests(audit, w0, w1)
        print(
            f"[{flags_name} N={n}] steady {steady}s: writes {result['steady_writes']}, "
            f"cpu {result['steady_cpu_s']}, hook calls {result['steady_hook_calls']}",
            flush=True,
        )

        # Before kernel pods and the outage: the kernel phase reports its own.
        result["peak_rss_mib"] = peak_rss(hooks, mc)
        if kernel_pods:
            result.update(kernel_pods_phase(api, hooks, mc, port, audit, names[:kernel_pods], min(steady, 60)))
        if outage:
            figures, hooks = hook_outage(cp, api, hooks, port, outage)
            result.update(figures)
        result["load_after"] = loadavg()
        cp.stop_metacontroller()
    return result


# ---------------------------------------------------------------- kernel pods
def kernel_pod(notebook_name: str) -> dict:
    """A kernel pod of ``notebook_name`` as its gateway's launcher labels it (kernel id = notebook name)."""
    labels = {**selector(notebook_name, ("gw", NS)), "kernel_id": notebook_name, PROFILE_LABEL: "python_kubernetes"}
    container = {"name": "kernel", "image": "elyra/kernel-py:3.3.0", "resources": {"limits": {"memory": "512Mi"}}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{notebook_name}-kernel", "namespace": NS, "labels": labels},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]},
    }


def oom_killed_status() -> dict:
    """What a kubelet writes for a kernel over its memory limit (no kubelet here)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    terminated = {"reason": "OOMKilled", "exitCode": 137, "startedAt": now, "finishedAt": now}
    return {
        "status": {
            "phase": "Failed",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "kernel",
                    "image": "elyra/kernel-py:3.3.0",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }


def kernels_of(api: Api) -> dict[str, list[dict]]:
    return {i["metadata"]["name"]: (i.get("status") or {}).get("kernels") or [] for i in api.notebooks()}


def wait_kernels(api: Api, names: list[str], done, t0: float, what: str) -> float:
    """Seconds from t0 until ``done(kernels)`` holds for every notebook in ``names``."""
    wait_for(lambda: all(done(k) for n, k in kernels_of(api).items() if n in names), timeout=900, interval=1, what=what)
    return round(time.monotonic() - t0, 1)


def kernel_pods_phase(
    api: Api, hooks: Process, mc: Process, port: int, audit: Path, names: list[str], steady: float
) -> dict:
    """One kernel pod per notebook in ``names``: created, then OOMKilled; then a steady window."""
    out: dict = {"kernel_pods": len(names)}
    w0, calls0 = time.time(), hook_calls(port)
    cpu0 = cpu_now(hooks, mc)
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: api.request("POST", f"/api/v1/namespaces/{NS}/pods", kernel_pod(n)), names))
    out["kernels_listed_s"] = wait_kernels(
        api, names, lambda k: [e.get("phase") for e in k] == ["Pending"], t0, "every notebook listing its kernel"
    )
    t1 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: api.request(
                    "PATCH",
                    f"/api/v1/namespaces/{NS}/pods/{n}-kernel/status",
                    oom_killed_status(),
                    content_type="application/merge-patch+json",
                ),
                names,
            )
        )
    out["kernels_ended_s"] = wait_kernels(
        api,
        names,
        lambda k: [(e.get("lastEnd") or {}).get("reason") for e in k] == ["oom-killed"],
        t1,
        "every notebook showing its kernel's OOMKilled end",
    )
    wait_idle(mc.pid)  # the last status writes' own watch events
    w1 = time.time()
    writes = audit_writes(audit, w0, w1)
    status_writes = sum(v.get("jupyternotebooks/status", 0) for v in writes.values())
    out["kernel_phase_hook_calls_per_pod_change"] = round((hook_calls(port) - calls0) / (2 * len(names)), 2)
    out["kernel_phase_status_writes_per_notebook"] = round(status_writes / len(names), 2)
    out["kernel_phase_other_writes"] = write_count(writes) - status_writes
    out["kernel_phase_cpu_s"] = cpu_since(cpu0, hooks, mc, 1)
    c0 = cpu_now(hooks, mc)
    time.sleep(steady)
    out["kernel_steady_s"] = steady
    out["kernel_steady_writes"] = audit_writes(audit, w1, time.time())
    out["kernel_steady_cpu_s"] = cpu_since(c0, hooks, mc, 2)
    out.update(other_pods(api, hooks, mc, port, audit, len(names)))
    out["kernel_peak_rss_mib"] = peak_rss(hooks, mc)
    print(f"[kernel pods {len(names)}] {json.dumps(out)}", flush=True)
    return out


def wait_idle(pid: int, below: float = 0.02) -> None:
    """Until the process used less than ``below`` CPU seconds in each of two consecutive seconds."""
    quiet, last = 0, cpu_seconds(pid)
    while quiet < 2:
        time.sleep(1)
        now = cpu_seconds(pid)
        quiet, last = (quiet + 1 if now - last < below else 0), now


def other_pods(api: Api, hooks: Process, mc: Process, port: int, audit: Path, count: int) -> dict:
    """``count`` pods that are no notebook's kernels, created then deleted: what any pod churn costs."""
    w0, calls0 = time.time(), hook_calls(port)
    cpu0 = cpu_now(hooks, mc)
    labels = {"app": "not-a-kernel"}
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: api.request(
                    "POST",
                    f"/api/v1/namespaces/{NS}/pods",
                    {**kernel_pod(f"other-{i}"), "metadata": {"name": f"other-{i}", "namespace": NS, "labels": labels}},
                ),
                range(count),
            )
        )
    api.request("DELETE", f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dnot-a-kernel")
    wait_idle(mc.pid)
    out = {
        "other_pods": count,
        "other_pods_hook_calls": hook_calls(port) - calls0,
        "other_pods_writes": write_count(audit_writes(audit, w0, time.time())),
        "other_pods_cpu_s": cpu_since(cpu0, hooks, mc, 1),
    }
    print(f"[other pods {count}] {json.dumps(out)}", flush=True)
    return out


def hook_outage(cp: ControlPlane, api: Api, hooks: Process, port: int, seconds: float) -> tuple[dict, Process]:
    """Stop the hooks for ``seconds`` while the gateway changes and 10 notebooks are added."""
    hooks.stop()
    cp.processes.remove(hooks)
    down_at = time.monotonic()
    cp.kubectl("patch", "jupytergateway", "gw", "-n", NS, "--type=merge", "-p", '{"spec": {"cullIdleTimeout": 1200}}')
    late = [f"late-{i}" for i in range(10)]
    for name in late:
        api.create_notebook(name)
    time.sleep(max(0.0, seconds - (time.monotonic() - down_at)))
    restarted = start_hooks(cp, port)
    back = time.monotonic()

    def recovered() -> bool:
        cm = api.request("GET", f"/api/v1/namespaces/{NS}/configmaps/gw-gateway")
        children, status = converged(api, late)
        return (
            children and status and '"cull_idle_timeout": 1200' in cm["data"]["jupyter_enterprise_gateway_config.json"]
        )

    wait_for(recovered, timeout=900, interval=1, what="recovery after the hook outage")
    seconds_to_recover = round(time.monotonic() - back, 1)
    print(f"[outage {seconds}s] recovered {seconds_to_recover}s after the hooks came back", flush=True)
    return {"outage_s": seconds, "recovered_after_s": seconds_to_recover}, restarted


def parse_map(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=") for item in text.split(",") if item)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--cases", default="shipped:100,shipped:300,shipped:1000,default:100,default:300")
    parser.add_argument("--steady", type=float, default=60, help="seconds of steady state per case")
    parser.add_argument("--long-steady", default="shipped:1000=300", help="case=seconds overriding --steady")
    parser.add_argument("--outage", default="shipped:1000=60", help="case=seconds of hook outage")
    parser.add_argument("--kernel-pods", default="shipped:1000=1000", help="case=kernel pods (one per notebook)")
    parser.add_argument("--out", default=str(ROOT / "test-output" / "bench-scale"))
    args = parser.parse_args(argv)
    metacontroller_release()  # fails early, saying how to give it
    long_steady, outages, pods = parse_map(args.long_steady), parse_map(args.outage), parse_map(args.kernel_pods)
    out = Path(args.out) / time.strftime("run-%Y%m%d-%H%M%S")
    results = []
    for case in args.cases.split(","):
        flags_name, n = case.rsplit(":", 1)
        result = run_case(
            flags_name,
            int(n),
            long_steady.get(case, args.steady),
            outages.get(case, 0),
            int(pods.get(case, 0)),
            out / case.replace(":", "-").replace("+", ""),
        )
        results.append(result)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults: {out / 'results.json'}")
    print(table(results))
    return 0


def pair(figures: dict) -> str:
    """'hooks / metacontroller' of a per-process figure."""
    return f"{figures['hooks']} / {figures['metacontroller']}"


CONVERGENCE_COLUMNS = {
    "flags": lambda r: r["flags"],
    "N": lambda r: r["n"],
    "apply (s)": lambda r: r["apply_s"],
    "all children (s)": lambda r: r["children_s"],
    "all status (s)": lambda r: r["status_s"],
    "steady window (s)": lambda r: f"{r['steady_s']:.0f}",
    "writes in window": lambda r: write_count(r["steady_writes"]),
    "CPU s hooks / MC in window": lambda r: pair(r["steady_cpu_s"]),
    "hook calls in window": lambda r: r["steady_hook_calls"],
    "peak RSS MiB hooks / MC": lambda r: pair(r["peak_rss_mib"]),
    "MC API requests per notebook": lambda r: f"{sum(r.get('convergence_mc_requests', {}).values()) / r['n']:.1f}",
    "load before → after": lambda r: f"{r['load_before']} → {r['load_after']}",
}
KERNEL_POD_COLUMNS = {
    "flags": lambda r: r["flags"],
    "N": lambda r: r["n"],
    "kernel pods": lambda r: r["kernel_pods"],
    "all listed (s)": lambda r: r["kernels_listed_s"],
    "all OOMKilled shown (s)": lambda r: r["kernels_ended_s"],
    "hook calls per pod change": lambda r: r["kernel_phase_hook_calls_per_pod_change"],
    "status writes per notebook": lambda r: r["kernel_phase_status_writes_per_notebook"],
    "other writes": lambda r: r["kernel_phase_other_writes"],
    "CPU s hooks / MC": lambda r: pair(r["kernel_phase_cpu_s"]),
    "steady (s)": lambda r: f"{r['kernel_steady_s']:.0f}",
    "writes in steady": lambda r: write_count(r["kernel_steady_writes"]),
    "peak RSS MiB hooks / MC": lambda r: pair(r["kernel_peak_rss_mib"]),
    "other pods created+deleted": lambda r: r["other_pods"],
    "their hook calls / writes": lambda r: f"{r['other_pods_hook_calls']} / {r['other_pods_writes']}",
    "their CPU s hooks / MC": lambda r: pair(r["other_pods_cpu_s"]),
}


def markdown_table(columns: dict, results: list[dict]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(cell(r)) for cell in columns.values()) + " |" for r in results),
    ]


def table(results: list[dict]) -> str:
    rows = markdown_table(CONVERGENCE_COLUMNS, results)
    pod_rows = [r for r in results if r.get("kernel_pods")]
    if pod_rows:
        rows += ["", *markdown_table(KERNEL_POD_COLUMNS, pod_rows)]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
