"""Pods on a real node: restricted pods run in containers, Services route to them, volumes are
mounted, limits are enforced, and every kind of failure shows its reason in the pod's status."""

from __future__ import annotations

import json
import time

import pytest
from node import BRIDGE, GPU_RESOURCE, NodeCluster, NodeError, bridge_exists
from testimage import TEST_IMAGE

pytestmark = [pytest.mark.node]
NS = "node-tests"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def nc(node_cluster: NodeCluster) -> NodeCluster:
    node_cluster.create_namespace(NS, RESTRICTED)
    return node_cluster


def pod(name: str, script: str, restart: str = "Never", **spec) -> dict:
    """A pod passing the `restricted` Pod Security Standard: busybox running ``script``."""
    container = {
        "name": "main",
        "image": TEST_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/busybox", "sh", "-c", script],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 2, "containers": [container], **spec},
    }


def http_get(host: str, port: int) -> str:
    """A shell command printing the HTTP response to GET / and failing on no answer (busybox's
    static wget crashes in an image without NSS files, so: nc)."""
    return f'r=$(printf \'GET / HTTP/1.0\\r\\n\\r\\n\' | nc -w 3 {host} {port}) && [ -n "$r" ] && echo "$r"'


def logs(nc: NodeCluster, name: str) -> str:
    return nc.kubectl("logs", "-n", NS, name).stdout


def terminated(p: dict) -> dict:
    """The main container's terminated state (current or last), or {}."""
    for status in p["status"].get("containerStatuses", []):
        return status.get("state", {}).get("terminated") or status.get("lastState", {}).get("terminated") or {}
    return {}


def waiting_reason(p: dict) -> str:
    for status in p["status"].get("containerStatuses", []):
        return status.get("state", {}).get("waiting", {}).get("reason", "")
    return ""


def scheduled_condition(p: dict) -> dict:
    return next((c for c in p["status"].get("conditions", []) if c["type"] == "PodScheduled"), {})


def test_restricted_pod_runs_and_its_logs_are_readable(nc: NodeCluster, figures: dict) -> None:
    web = pod(
        "web",
        "echo serving as $(id -u); mkdir -p /tmp/www; hostname > /tmp/www/index.html; "
        "exec /bin/busybox httpd -f -p 8080 -h /tmp/www",
        container={"ports": [{"containerPort": 8080}]},
    )
    web["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    web["spec"]["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    applied = time.monotonic()
    nc.apply(web)
    running = nc.wait_pod_phase(NS, "web", "Running")
    figures["pod_apply_to_running_s"] = round(time.monotonic() - applied, 1)
    assert running["spec"]["nodeName"] == nc.node_name
    assert running["status"]["podIP"].startswith("10.244.0.")
    assert "serving as 65534" in logs(nc, "web")


def test_cluster_ip_service_reaches_the_pod_also_from_itself(nc: NodeCluster) -> None:
    nc.wait_pod_phase(NS, "web", "Running")
    nc.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    ip = nc.kubectl_json("get", "service", "web", "-n", NS)["spec"]["clusterIP"]
    nc.apply(pod("client", f"until {http_get(ip, 80)}; do sleep 1; done"))
    nc.wait_pod_phase(NS, "client", "Succeeded", timeout=90)
    assert logs(nc, "client").splitlines()[-1] == "web"
    # hairpin: the pod reaches itself through its own Service (kubectl exec: apiserver -> kubelet)
    out = nc.kubectl("exec", "-n", NS, "web", "--", "/bin/busybox", "sh", "-c", http_get(ip, 80))
    assert out.stdout.splitlines()[-1] == "web"


def test_pods_resolve_services_by_name(nc: NodeCluster) -> None:
    nc.wait_pod_phase(NS, "web", "Running")
    nc.apply(pod("byname", f"until {http_get('web', 80)}; do sleep 1; done"))  # web.node-tests.svc.cluster.local
    nc.wait_pod_phase(NS, "byname", "Succeeded", timeout=90)
    assert logs(nc, "byname").splitlines()[-1] == "web"


def test_pods_reach_the_api_server_through_the_kubernetes_service(nc: NodeCluster) -> None:
    nc.apply(pod("api", "until nc -w 2 10.96.0.1 443 </dev/null; do sleep 1; done; echo reached"))
    nc.wait_pod_phase(NS, "api", "Succeeded", timeout=90)
    assert "reached" in logs(nc, "api")


def test_configmap_secret_and_projected_token_are_mounted(nc: NodeCluster) -> None:
    nc.apply(
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": NS}, "data": {"k": "cm"}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": NS},
                "stringData": {"k": "s"},
            },
        ]
    )
    p = pod(
        "volumes",
        "cat /cm/k /secret/k; echo; tr . '\\n' < /token/token | wc -l; ls /var/run/secrets/*/serviceaccount",
    )
    p["spec"]["volumes"] = [
        {"name": "cm", "configMap": {"name": "cm"}},
        {"name": "secret", "secret": {"secretName": "s"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "audience": "test"}}]}},
    ]
    p["spec"]["containers"][0]["volumeMounts"] = [
        {"name": n, "mountPath": f"/{n}", "readOnly": True} for n in ("cm", "secret", "token")
    ]
    nc.apply(p)
    nc.wait_pod_phase(NS, "volumes", "Succeeded")
    cm_secret, dots, *sa_files = logs(nc, "volumes").split()
    assert cm_secret == "cms"
    assert dots == "2", "a JWT has three dot-separated parts"  # `tr` leaves no newline after the last part
    assert {"ca.crt", "namespace", "token"} <= set(sa_files)


def test_memory_limit_ends_in_oomkilled(nc: NodeCluster) -> None:
    p = pod("hog", "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived ${#x}")
    p["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Mi", "cpu": "500m"}}
    nc.apply(p)
    done = nc.wait_pod_phase(NS, "hog", "Failed")
    assert terminated(done)["reason"] == "OOMKilled", json.dumps(done["status"], indent=1)


def test_container_that_exits_shows_its_exit_code(nc: NodeCluster) -> None:
    nc.apply(pod("exits", "echo bye; exit 3"))
    done = nc.wait_pod_phase(NS, "exits", "Failed")
    assert terminated(done)["exitCode"] == 3
    assert terminated(done)["reason"] == "Error"
    assert logs(nc, "exits").strip() == "bye"


def test_unschedulable_pod_shows_the_schedulers_reason(nc: NodeCluster) -> None:
    nc.apply(pod("nowhere", "true", nodeSelector={"example.com/no-such-label": "x"}))
    p = nc.wait_pod(NS, "nowhere", lambda q: scheduled_condition(q).get("status") == "False")
    condition = scheduled_condition(p)
    assert condition["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in condition["message"]
    assert p["status"]["phase"] == "Pending"


def test_image_missing_locally_shows_the_pull_error(nc: NodeCluster) -> None:
    # no registry: containerd sends every pull to a closed local port, so it fails at once, offline
    nc.apply(pod("noimage", "true", container={"image": "localhost/node-tests/not-here:1"}))
    p = nc.wait_pod(NS, "noimage", lambda q: waiting_reason(q) in ("ErrImagePull", "ImagePullBackOff"))
    status = p["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "localhost/node-tests/not-here:1" in status["message"]
    assert p["status"]["phase"] == "Pending"


def test_gpu_extended_resource_is_scheduled_against_the_nodes_count(nc: NodeCluster) -> None:
    assert nc.node()["status"]["capacity"][GPU_RESOURCE] == "1"
    gpu = {"limits": {GPU_RESOURCE: "1"}}
    nc.apply(pod("gpu-1", "sleep 3600", container={"resources": gpu}))
    first = nc.wait_pod_phase(NS, "gpu-1", "Running")
    assert first["spec"]["nodeName"] == nc.node_name
    nc.apply(pod("gpu-2", "sleep 3600", container={"resources": gpu}))
    second = nc.wait_pod(NS, "gpu-2", lambda q: scheduled_condition(q).get("status") == "False")
    assert f"Insufficient {GPU_RESOURCE}" in scheduled_condition(second)["message"]
    nc.kubectl("delete", "pod", "gpu-1", "-n", NS, "--wait=true")
    placed = nc.wait_pod_phase(NS, "gpu-2", "Running")
    assert placed["spec"]["nodeName"] == nc.node_name


def test_a_second_node_is_refused_while_one_runs(nc: NodeCluster, workdir) -> None:
    """Only one node fits a host (one bridge, one pod CIDR); a second start names the running one
    and touches nothing of it."""
    second = NodeCluster(workdir / "second")
    with pytest.raises(NodeError, match=f"another node runs here \\(state in {nc.workdir}"):
        second.start()
    assert bridge_exists(), f"the running node's {BRIDGE} is kept"
    ready = next(c for c in nc.node()["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
