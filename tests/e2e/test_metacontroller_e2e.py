"""JupyterGateway and JupyterNotebook on a real kube-apiserver, kube-controller-manager and Metacontroller.

Metacontroller is the upstream v4.17.2 release binary ($METACONTROLLER_BIN, CRDs from
$METACONTROLLER_CRDS), run out of cluster with the flags the install ships
(manifests/metacontroller-install/flags.yaml). Our manifests are installed with `kubectl apply -k`
through an overlay whose only change is the hook URLs (the hook server runs on 127.0.0.1). No
kubelet runs: pods stay Pending, so the tests assert on API objects. Namespaces enforce the
`restricted` Pod Security Standard, so a pod object that exists has passed the API server's own
admission.

What Metacontroller guarantees, and so what these tests wait for (observed in
/work/shared/notes/metacontroller-observed.md): a parent's status is written only after all its
children exist, and client-side rate limiting spaces writes; updates of a queued parent are
merged (never count syncs); a `Recreate` child is deleted in one sync and created in a later one.
So every check waits for an observable state, and every look-up of a child tolerates its absence.

Each test starts from a cluster without JupyterGateways or JupyterNotebooks and leaves it so,
even when it fails (the autouse `scenario` fixture).
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from pathlib import Path

import pytest
import yaml
from controlplane import METACONTROLLER_INSTALL, REPO_ROOT, ControlPlane, shipped_metacontroller_flags, wait_for
from hooks_next import NEXT_IMAGE
from hookserver import HookServer, hook_token, overlay

from hooks.models import DEFAULT_NOTEBOOK_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.metacontroller]

SAMPLES = REPO_ROOT / "manifests" / "samples"
RBAC = METACONTROLLER_INSTALL / "rbac.yaml"
KERNEL_ROLES = METACONTROLLER_INSTALL / "kernel-roles.yaml"
BIND_ROLE = "metacontroller-gateway-kernel-roles"  # `bind` on the approved kernel roles, by name
GROUP = "kubeflow.tkestack.io"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
SCENARIO_LABEL = "e2e-scenario"  # on namespaces and ClusterRoles a test creates, so teardown finds them
CHILD_SELECTOR = "app.kubernetes.io/managed-by=metacontroller,app.kubernetes.io/part-of=elastic-jupyter"
CHILD_RESOURCES = (
    "deployments,services,secrets,configmaps,serviceaccounts,rolebindings,networkpolicies,persistentvolumeclaims"
)
PARENT_KINDS = ("JupyterGateway", "JupyterNotebook")
GATEWAY = "jupytergateway-sample"
NOTEBOOK = "jupyternotebook-sample"

# (resource, name suffix); wait_children keys each by its resource, a second of a kind by resource+suffix.
GATEWAY_CHILDREN = [
    ("serviceaccount", "-gateway"),
    ("rolebinding", "-gateway"),
    ("configmap", "-gateway"),
    ("configmap", "-gateway-kernelspecs"),
    ("configmap", "-gateway-front-door"),
    ("configmap", "-gateway-access"),
    ("deployment", "-gateway"),
    ("service", ""),
    ("secret", "-gateway-auth"),
    ("networkpolicy", "-gateway"),
]
NOTEBOOK_CHILDREN = [
    ("deployment", "-notebook"),
    ("service", "-notebook"),
    ("secret", "-notebook-auth"),
    ("configmap", "-notebook-config"),  # every notebook here uses a gateway
    ("serviceaccount", "-notebook"),  # its identity at the gateway
]


# ---------------------------------------------------------------- look-ups that tolerate absence
def get(cp: ControlPlane, *args: str) -> dict | None:
    """The object as JSON, or None if it does not exist (right now)."""
    res = cp.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None


def condition(obj: dict | None, type_: str) -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def owned_by(obj: dict, kind: str, name: str) -> bool:
    return any(
        r["kind"] == kind and r["name"] == name and r.get("controller")
        for r in obj["metadata"].get("ownerReferences", [])
    )


def wait_children(cp, namespace, name, kind, children, timeout=60.0) -> dict[str, dict]:
    """Every child present and owned by the parent (a Recreate gap just means "not yet")."""

    def all_there():
        found = {}
        for resource, suffix in children:
            obj = get(cp, resource, f"{name}{suffix}", "-n", namespace)
            if obj is None or not owned_by(obj, kind, name):
                return None
            found[resource if resource not in found else f"{resource}{suffix}"] = obj
        return found

    return wait_for(all_there, timeout=timeout, what=f"children of {kind} {namespace}/{name}")


def fingerprint(obj: dict) -> tuple:
    """What changes when Metacontroller writes the object. A Deployment's resourceVersion also moves
    when kube-controller-manager writes its status, so for it: generation, labels and annotations."""
    meta = obj["metadata"]
    if obj["kind"] == "Deployment":
        return meta["uid"], meta["generation"], json.dumps([meta.get("labels"), meta.get("annotations")])
    return meta["uid"], meta["resourceVersion"]


def fingerprints(cp, namespace, name, kind, children) -> dict[str, tuple]:
    return {r: fingerprint(o) for r, o in wait_children(cp, namespace, name, kind, children).items()}


def wait_status(cp, what: str, *args: str, predicate, timeout: float = 60.0) -> dict:
    """Wait until the object's status satisfies ``predicate`` (status is written after children)."""
    return wait_for(lambda: (obj := get(cp, *args)) and predicate(obj) and obj, timeout=timeout, what=what)


def reason(obj: dict, type_: str) -> str | None:
    return condition(obj, type_).get("reason")


def current(obj: dict) -> bool:
    """The status describes the parent's current spec."""
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def wait_quiet(hooks: HookServer, path: str, since: int, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """At least one call of ``path`` after ``since`` calls, then none for ``quiet`` seconds: the
    queue has drained (Metacontroller merges queued updates, so the number of calls is not fixed)."""
    wait_for(lambda: hooks.calls()[path] > since, timeout=timeout, what=f"a call of {path}")
    last, changed = hooks.calls()[path], time.monotonic()
    deadline = changed + timeout
    while time.monotonic() - changed < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} still being called after {timeout}s")
        time.sleep(0.25)
        now = hooks.calls()[path]
        if now != last:
            last, changed = now, time.monotonic()


def patch(cp, kind: str, name: str, spec: dict, *ns: str) -> None:
    cp.kubectl("patch", kind, name, *ns, "--type=merge", "-p", json.dumps({"spec": spec}))


def notebook(name: str, namespace: str = "default", gateway: dict | None = None) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "JupyterNotebook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gateway": gateway or {"name": GATEWAY, "namespace": "default"}},
    }


# ---------------------------------------------------------------- fixtures
def use_hooks(state: dict, **kwargs) -> HookServer:
    """Start a hook server, point the CompositeControllers at it, make it the current one."""
    cp = state["cp"]
    server = HookServer(cp.workdir, token_file=state["token_file"], **kwargs)
    state["servers"].append(server)
    cp.kubectl("apply", "-k", str(overlay(cp.workdir, server.port)))
    state["hooks"] = server
    return server


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane):
    """Our manifests installed, the hook server and Metacontroller (shipped flags) running.

    Everything is started inside the ``try``, so every process is stopped on every path.
    """
    cp = control_plane
    state = {"cp": cp, "hooks": None, "servers": [], "timings": {}}
    default_labels = (get(cp, "namespace", "default") or {})["metadata"].get("labels", {})
    try:
        cp.kubectl("label", "namespace", "default", *[f"{k}={v}" for k, v in RESTRICTED.items()], "--overwrite")
        cp.apply_metacontroller_crds()
        state["token_file"] = hook_token(cp, cp.workdir)  # Metacontroller sends it; the hooks require it
        use_hooks(state)
        for crd in ("jupytergateways", "jupyternotebooks"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{GROUP}", "--timeout=60s")
            cp.wait_for_resource(f"{crd}.{GROUP}")
        # Started after our CRDs exist, so its first discovery finds them.
        state["metacontroller_pid"] = cp.start_metacontroller(shipped_metacontroller_flags()).pid
        yield state
    finally:
        for server in state["servers"]:
            server.stop()
        cp.stop_metacontroller()
        restore = [f"{k}-" for k in RESTRICTED if k not in default_labels]
        if restore:
            cp.kubectl("label", "namespace", "default", *restore, check=False)


def clean_up(state: dict) -> None:
    """Back to the state before the test: the standard hook server, no CRs, no namespaces or
    ClusterRoles the test made, and every child garbage-collected."""
    cp = state["cp"]
    if state["hooks"] is None or not state["hooks"].alive() or state["hooks"].name != "hooks":
        old = state["hooks"]
        use_hooks(state)
        if old is not None:
            old.stop()
    for kind in ("jupyternotebooks", "jupytergateways"):
        cp.kubectl("delete", kind, "--all", "-A", "--wait=true", "--timeout=60s")
    cp.kubectl("delete", "namespace", "-l", f"{SCENARIO_LABEL}=true", "--wait=true", "--timeout=90s")
    cp.kubectl("delete", "pods", "-A", "-l", "component=kernel", "--wait=true", "--timeout=60s")  # test 9's
    cp.kubectl("delete", "clusterrole", "-l", f"{SCENARIO_LABEL}=true", "--wait=true")
    cp.kubectl("apply", "-f", str(KERNEL_ROLES))  # what Metacontroller may bind, as shipped
    wait_for(lambda: not owned_children(cp), timeout=90, what="garbage collection of every child")


def owned_children(cp: ControlPlane) -> list[str]:
    """Objects a JupyterGateway or JupyterNotebook owns: what Metacontroller made for the parents.

    Other e2e tests of the session apply rendered children directly, with the same labels and no
    owner; they are theirs, so the garbage collection waited for here is of owned objects only.
    """
    items = cp.kubectl_json("get", CHILD_RESOURCES, "-A", "-l", CHILD_SELECTOR)["items"]
    return [
        f"{item['kind']} {item['metadata']['namespace']}/{item['metadata']['name']}"
        for item in items
        if any(
            ref["apiVersion"].split("/")[0] == GROUP and ref["kind"] in PARENT_KINDS
            for ref in item["metadata"].get("ownerReferences", [])
        )
    ]


@pytest.fixture(autouse=True)
def scenario(cluster):
    """Every test starts from, and leaves, a cluster without our CRs (even when it fails)."""
    clean_up(cluster)
    try:
        yield cluster
    finally:
        clean_up(cluster)


def let_metacontroller_bind(cp: ControlPlane, role: str) -> None:
    """The admin's step of approving a kernel role that RBAC enforces (README, "Approving another
    kernel role"): Metacontroller may bind it. clean_up restores the shipped list."""
    add = {"op": "add", "path": "/rules/0/resourceNames/-", "value": role}
    cp.kubectl("patch", "clusterrole", BIND_ROLE, "--type=json", "-p", json.dumps([add]))


def apply_samples(cp) -> None:
    cp.kubectl("apply", "-f", str(SAMPLES / "jupytergateway-sample.yaml"))
    cp.kubectl("apply", "-f", str(SAMPLES / "jupyternotebook-sample.yaml"))


def settled_samples(cp) -> tuple[dict, dict]:
    """Both samples with all children and a current status."""
    gw = wait_children(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)
    nb = wait_children(cp, "default", NOTEBOOK, "JupyterNotebook", NOTEBOOK_CHILDREN)
    wait_status(
        cp,
        "gateway status",
        "jupytergateway",
        GATEWAY,
        predicate=lambda o: current(o) and reason(o, "Ready") == "DeploymentNotAvailable",
    )
    wait_status(
        cp,
        "notebook status",
        "jupyternotebook",
        NOTEBOOK,
        predicate=lambda o: current(o) and reason(o, "GatewayReady") == "GatewayNotReady",
    )
    return gw, nb


@pytest.fixture
def seed(scenario):
    """The original README's two CRs applied and settled; returns (state, gateway children, notebook children)."""
    cp = scenario["cp"]
    apply_samples(cp)
    gw, nb = settled_samples(cp)
    return scenario, gw, nb


# ---------------------------------------------------------------- scenarios
def test_1_the_seed_scenario(scenario):
    """The original README's two CRs, applied unchanged."""
    cp = scenario["cp"]
    started = time.monotonic()
    apply_samples(cp)
    gw = wait_children(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)
    nb = wait_children(cp, "default", NOTEBOOK, "JupyterNotebook", NOTEBOOK_CHILDREN)
    scenario["timings"]["seed: apply to all children"] = time.monotonic() - started

    config = gw["configmap"]["data"]["jupyter_enterprise_gateway_config.json"]
    assert json.loads(config)["RemoteMappingKernelManager"]["cull_idle_timeout"] == 3600
    assert gw["rolebinding"]["roleRef"]["name"] == "jupyter-gateway-kernels"
    env = {e["name"]: e.get("value") for e in nb["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_GATEWAY_URL"] == "http://jupytergateway-sample.default.svc:8888"

    nb_status = wait_status(
        cp,
        "notebook status",
        "jupyternotebook",
        NOTEBOOK,
        predicate=lambda o: current(o) and reason(o, "GatewayReady") == "GatewayNotReady",
    )
    assert nb_status["status"]["gatewayUrl"] == "http://jupytergateway-sample.default.svc:8888"
    # No kubelet, so the gateway's Deployment never becomes available: waited for, not read once
    # (its status is written after its children, and may first say DeploymentMissing).
    wait_status(
        cp,
        "gateway status DeploymentNotAvailable",
        "jupytergateway",
        GATEWAY,
        predicate=lambda o: current(o) and reason(o, "Ready") == "DeploymentNotAvailable",
    )

    table = cp.kubectl("get", "jupyternotebooks").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "GATEWAY", "URL", "AGE"]
    assert GATEWAY in table[1] and "http://jupyternotebook-sample-notebook.default.svc:8888" in table[1]
    assert cp.kubectl("get", "jupytergateways").stdout.split()[:4] == ["NAME", "READY", "CULL-IDLE", "AGE"]
    assert NOTEBOOK in cp.kubectl("get", "jupyter").stdout, "the jupyter category"

    # The ReplicaSets' pods were admitted by the restricted Pod Security admission.
    for selector in (f"{GROUP}/jupytergateway={GATEWAY}", f"{GROUP}/jupyternotebook={NOTEBOOK}"):
        wait_for(lambda s=selector: get(cp, "pods", "-l", s)["items"], timeout=60, what=f"pods {selector}")


def test_2_a_notebook_in_another_namespace_uses_the_shared_gateway(seed):
    state, _, _ = seed
    cp = state["cp"]
    cp.create_namespace("team-a", {**RESTRICTED, SCENARIO_LABEL: "true"})
    cp.apply(notebook("mallory", "team-a"))
    wait_status(
        cp,
        "a namespace the gateway does not allow",
        "jupyternotebook",
        "mallory",
        "-n",
        "team-a",
        predicate=lambda o: current(o) and reason(o, "GatewayReady") == "NamespaceNotAllowed",
    )
    assert get(cp, "deployment", "mallory-notebook", "-n", "team-a") is None
    patch(cp, "jupytergateway", GATEWAY, {"allowedNamespaces": ["team-a"]})
    cp.apply(notebook("alice", "team-a"))
    # In another namespace than its gateway, a notebook also binds the gateway's kernel role there.
    nb = wait_children(
        cp, "team-a", "alice", "JupyterNotebook", [*NOTEBOOK_CHILDREN, ("rolebinding", "-gateway-kernels")]
    )
    assert nb["rolebinding"]["subjects"][0]["name"] == f"{GATEWAY}-gateway"
    env = {e["name"]: e.get("value") for e in nb["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_GATEWAY_URL"] == "http://jupytergateway-sample.default.svc:8888"
    assert env["KERNEL_USERNAME"] == "alice"
    wait_status(
        cp,
        "alice sees the gateway",
        "jupyternotebook",
        "alice",
        "-n",
        "team-a",
        predicate=lambda o: current(o) and reason(o, "GatewayReady") == "GatewayNotReady",
    )
    # mallory was refused before the gateway allowed team-a; the gateway's change resyncs her too.
    wait_children(cp, "team-a", "mallory", "JupyterNotebook", NOTEBOOK_CHILDREN)


def test_2b_keep_paths_take_back_what_the_gateway_no_longer_grants(seed):
    """Issue 15: a kernel role that loses its approval unbinds the notebook's kernels, and a
    notebook whose spec the hook refuses (the CRD stores it) still loses the gateway's client
    labels and RoleBinding when the gateway drops its namespace; the rest is kept. No notebook
    ever holds the gateway's token (its front door knows notebooks by their ServiceAccounts)."""
    state, _, _ = seed
    cp = state["cp"]
    cp.create_namespace("team-a", {**RESTRICTED, SCENARIO_LABEL: "true"})
    role_label = f"{GROUP}/gateway-kernel-role"
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e-kernels-15", "labels": {role_label: "true", SCENARIO_LABEL: "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    let_metacontroller_bind(cp, "e2e-kernels-15")  # README, "Approving another kernel role"
    patch(cp, "jupytergateway", GATEWAY, {"allowedNamespaces": ["team-a"], "clusterRole": "e2e-kernels-15"})
    cp.apply(notebook("alice", "team-a"))
    with_binding = [*NOTEBOOK_CHILDREN, ("rolebinding", "-gateway-kernels")]
    nb = wait_for(
        lambda: (
            (c := wait_children(cp, "team-a", "alice", "JupyterNotebook", with_binding))
            and c["rolebinding"]["roleRef"]["name"] == "e2e-kernels-15"
            and f"{GROUP}/gateway-name" in c["deployment"]["spec"]["template"]["metadata"]["labels"]
            and c
        ),
        timeout=60,
        what="alice with the client labels and a RoleBinding to e2e-kernels-15",
    )
    assert "GatewayClient" not in _secret_config(nb["secret"]), "no gateway token in a notebook"
    uids = {r: o["metadata"]["uid"] for r, o in nb.items() if r != "rolebinding"}

    def alice(ready: str) -> dict:
        return wait_status(
            cp,
            f"alice {ready}",
            "jupyternotebook",
            "alice",
            "-n",
            "team-a",
            predicate=lambda o: current(o) and reason(o, "Ready") == ready,
        )

    def binding_gone() -> bool:
        return get(cp, "rolebinding", "alice-gateway-kernels", "-n", "team-a") is None

    # The role loses its approval: the notebook's RoleBinding goes, the rest stays as it was.
    cp.kubectl("label", "clusterrole", "e2e-kernels-15", f"{role_label}-")
    alice("KernelRoleNotAllowed")
    wait_for(binding_gone, timeout=60, what="alice's RoleBinding deleted")
    kept = wait_children(cp, "team-a", "alice", "JupyterNotebook", NOTEBOOK_CHILDREN)
    assert {r: o["metadata"]["uid"] for r, o in kept.items()} == uids
    labels = kept["deployment"]["spec"]["template"]["metadata"]["labels"]
    assert f"{GROUP}/gateway-name" in labels, "the gateway still allows team-a"

    # Approved again; then a spec the CRD stores but the hook refuses: everything kept.
    cp.kubectl("label", "clusterrole", "e2e-kernels-15", f"{role_label}=true")
    wait_children(cp, "team-a", "alice", "JupyterNotebook", with_binding)
    refused = notebook("alice", "team-a")
    volume = {"name": "scratch", "emptyDir": {"sizeLimit": "1e30"}}
    refused["spec"]["template"] = {"spec": {"containers": [{"name": "notebook", "image": "x"}], "volumes": [volume]}}
    cp.apply(refused)
    alice("InvalidSpec")
    assert not binding_gone(), "kept while the gateway grants it"

    # The gateway drops team-a: client labels and RoleBinding go; the rest stays.
    patch(cp, "jupytergateway", GATEWAY, {"allowedNamespaces": ["team-z"]})
    wait_status(
        cp,
        "alice NamespaceNotAllowed",
        "jupyternotebook",
        "alice",
        "-n",
        "team-a",
        predicate=lambda o: reason(o, "GatewayReady") == "NamespaceNotAllowed" and reason(o, "Ready") == "InvalidSpec",
    )
    wait_for(binding_gone, timeout=60, what="alice's RoleBinding deleted")
    revoked = wait_for(
        lambda: (
            (c := wait_children(cp, "team-a", "alice", "JupyterNotebook", NOTEBOOK_CHILDREN))
            and "GatewayClient" not in _secret_config(c["secret"])
            and f"{GROUP}/gateway-name" not in c["deployment"]["spec"]["template"]["metadata"]["labels"]
            and c
        ),
        timeout=60,
        what="alice's Secret without the gateway's token and pods without the client labels",
    )
    assert {r: o["metadata"]["uid"] for r, o in revoked.items()} == uids, "updated, never recreated"


def _secret_config(secret: dict) -> str:
    data = secret.get("data") or {}
    return base64.b64decode(data.get("jupyter_server_config.json", "")).decode()


def test_3_resyncs_write_nothing(seed):
    state, _, _ = seed
    cp, hooks = state["cp"], state["hooks"]
    before = fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)
    calls = hooks.calls()["/sync/jupytergateway"]
    for i in range(3):  # each touch queues a sync; Metacontroller may merge them
        cp.kubectl("annotate", "jupytergateway", GATEWAY, f"e2e/touch={i}", "--overwrite")
    wait_quiet(hooks, "/sync/jupytergateway", since=calls)
    assert fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN) == before


def test_3a_updates_reach_children(seed):
    state, gw, _ = seed
    cp = state["cp"]
    # cullIdleTimeout: the ConfigMap changes and the pod template changes (a rollout).
    patch(cp, "jupytergateway", GATEWAY, {"cullIdleTimeout": 600})
    wait_for(
        lambda: (
            (c := get(cp, "configmap", f"{GATEWAY}-gateway"))
            and '"cull_idle_timeout": 600' in c["data"]["jupyter_enterprise_gateway_config.json"]
        ),
        timeout=60,
        what="new ConfigMap",
    )
    template_before = gw["deployment"]["spec"]["template"]["metadata"]["annotations"]
    wait_for(
        lambda: (
            (d := get(cp, "deployment", f"{GATEWAY}-gateway"))
            and d["spec"]["template"]["metadata"]["annotations"] != template_before
        ),
        timeout=60,
        what="a rollout of the gateway",
    )

    # clusterRole: the RoleBinding is recreated with the new roleRef (roleRef is immutable):
    # deleted in one sync, created in a later one, so it may be missing in between.
    cp.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "e2e-kernels",
                "labels": {f"{GROUP}/gateway-kernel-role": "true", SCENARIO_LABEL: "true"},
            },
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    # Approving a role takes both steps of the README: the label, and `bind` for Metacontroller
    # (without it the API server refuses the RoleBinding: test_3c).
    let_metacontroller_bind(cp, "e2e-kernels")
    old_uid = gw["rolebinding"]["metadata"]["uid"]
    patch(cp, "jupytergateway", GATEWAY, {"clusterRole": "e2e-kernels"})
    binding = wait_for(
        lambda: (b := get(cp, "rolebinding", f"{GATEWAY}-gateway")) and b["roleRef"]["name"] == "e2e-kernels" and b,
        timeout=60,
        what="RoleBinding to e2e-kernels",
    )
    assert binding["metadata"]["uid"] != old_uid
    wait_status(
        cp,
        "gateway status after the changes",
        "jupytergateway",
        GATEWAY,
        predicate=lambda o: current(o) and reason(o, "Ready") == "DeploymentNotAvailable",
    )


def test_3b_a_cluster_role_without_the_label_is_refused(seed):
    state, gw, _ = seed
    cp = state["cp"]
    patch(cp, "jupytergateway", GATEWAY, {"clusterRole": "cluster-admin"})
    wait_status(
        cp,
        "ClusterRoleNotAllowed",
        "jupytergateway",
        GATEWAY,
        predicate=lambda o: current(o) and reason(o, "Ready") == "ClusterRoleNotAllowed",
    )
    binding = wait_children(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)["rolebinding"]
    assert binding["roleRef"]["name"] == "jupyter-gateway-kernels"
    assert binding["metadata"]["uid"] == gw["rolebinding"]["metadata"]["uid"], "never deleted"


def test_3c_the_api_server_refuses_a_hook_that_binds_cluster_admin(scenario):
    """A hook bug (hooks_buggy.py: the gateway's RoleBinding binds cluster-admin) meets
    Metacontroller's narrowed ClusterRole: `bind` only on the approved kernel roles, so the API
    server refuses the RoleBinding (403) and Metacontroller reports it; the other children are made."""
    cp = scenario["cp"]
    use_hooks(scenario, app="hooks_buggy:create_app", name="hooks-buggy", factory=True)
    cp.apply({"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": "bug"}, "spec": {}})
    refused = wait_for(
        lambda: [
            e["message"]
            for e in get(cp, "events", "-n", "default", "--field-selector", "involvedObject.name=bug")["items"]
            if e["reason"] == "SyncError" and "attempting to grant RBAC permissions not currently held" in e["message"]
        ],
        timeout=60,
        what="Metacontroller's SyncError for the refused RoleBinding",
    )
    assert 'rolebindings.rbac.authorization.k8s.io "bug-gateway" is forbidden' in refused[0], refused
    wait_for(lambda: get(cp, "configmap", "bug-gateway"), timeout=60, what="the gateway's other children")
    assert get(cp, "rolebinding", "bug-gateway") is None
    bindings = get(cp, "rolebindings,clusterrolebindings", "-A")["items"]
    assert not [b for b in bindings if b["roleRef"]["name"] == "cluster-admin" and "bug" in b["metadata"]["name"]]


def test_0_metacontroller_runs_as_its_narrowed_service_account(scenario):
    cp = scenario["cp"]
    environ = Path(f"/proc/{cp.metacontroller.pid}/environ").read_bytes().split(b"\0")
    kubeconfig = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"KUBECONFIG="))
    who = json.loads(cp.kubectl(f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:metacontroller:metacontroller"
    bindings = get(cp, "clusterrolebindings")["items"]
    roles = {
        b["roleRef"]["name"]
        for b in bindings
        if any(
            s.get("name") == "metacontroller" and s.get("namespace") == "metacontroller"
            for s in b.get("subjects") or []
        )
    }
    assert roles == {"metacontroller", BIND_ROLE}
    assert get(cp, "clusterrole", "metacontroller")["rules"] == yaml.safe_load(RBAC.read_text())["rules"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cullIdleTimeout": -1}, "spec.cullIdleTimeout"),
        ({"logLevel": "loud"}, "spec.logLevel"),
        ({"kernels": ["a"], "defaultKernel": "b"}, "defaultKernel must be one of kernels"),
        ({"cullBusy": "yes"}, "spec.cullBusy"),
    ],
)
def test_4_invalid_input_is_rejected_at_apply_and_changes_nothing(seed, spec, message):
    state, _, _ = seed
    cp = state["cp"]
    before = fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)
    generation = get(cp, "jupytergateway", GATEWAY)["metadata"]["generation"]
    cr = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": GATEWAY}, "spec": spec}
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(cr), check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert get(cp, "jupytergateway", GATEWAY)["metadata"]["generation"] == generation
    assert fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN) == before


def test_4b_unknown_fields_and_bad_names_are_rejected(scenario):
    cp = scenario["cp"]
    bad = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "JupyterNotebook",
        "metadata": {"name": "bob"},
        "spec": {"gatway": {"name": "x"}},
    }
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and 'unknown field "spec.gatway"' in res.stderr, res.stderr
    bad = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": "x-notebook"}, "spec": {}}
    res = cp.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and "metadata.name" in res.stderr, res.stderr
    assert get(cp, "jupytergateway", "x-notebook") is None and get(cp, "jupyternotebook", "bob") is None


def test_5_hook_server_down_keeps_children_then_converges(seed):
    state, _, _ = seed
    cp = state["cp"]
    before = fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN)
    status_before = get(cp, "jupytergateway", GATEWAY)["status"]
    state["hooks"].stop()  # the autouse fixture starts a new one whatever happens here
    patch(cp, "jupytergateway", GATEWAY, {"cullInterval": 30})
    wait_for(
        lambda: (
            "SyncError"
            in cp.kubectl("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={GATEWAY}").stdout
        ),
        timeout=60,
        what="a SyncError event",
    )
    assert fingerprints(cp, "default", GATEWAY, "JupyterGateway", GATEWAY_CHILDREN) == before, "children untouched"
    assert get(cp, "jupytergateway", GATEWAY)["status"] == status_before, "no status written while down"
    use_hooks(state)  # a new port: the CompositeControllers are re-pointed, Metacontroller keeps running
    wait_for(
        lambda: (
            (c := get(cp, "configmap", f"{GATEWAY}-gateway"))
            and '"cull_interval": 30' in c["data"]["jupyter_enterprise_gateway_config.json"]
        ),
        timeout=90,
        what="convergence after the outage",
    )
    wait_status(cp, "a current status", "jupytergateway", GATEWAY, predicate=current)
    assert cp.metacontroller is not None and cp.metacontroller.pid == state["metacontroller_pid"]


def test_5b_a_deleted_gateway_is_reported_and_the_notebook_kept(scenario):
    cp = scenario["cp"]
    cp.apply({"apiVersion": f"{GROUP}/v1alpha1", "kind": "JupyterGateway", "metadata": {"name": "doomed"}, "spec": {}})
    cp.apply(notebook("orphan", gateway={"name": "doomed"}))
    wait_children(cp, "default", "orphan", "JupyterNotebook", NOTEBOOK_CHILDREN)
    wait_status(
        cp,
        "orphan sees its gateway",
        "jupyternotebook",
        "orphan",
        predicate=lambda o: current(o) and reason(o, "GatewayReady") == "GatewayNotReady",
    )
    before = {
        r: o["metadata"]["uid"]
        for r, o in wait_children(cp, "default", "orphan", "JupyterNotebook", NOTEBOOK_CHILDREN).items()
    }
    cp.kubectl("delete", "jupytergateway", "doomed", "--wait=true")
    wait_status(
        cp,
        "GatewayNotFound",
        "jupyternotebook",
        "orphan",
        predicate=lambda o: reason(o, "GatewayReady") == "GatewayNotFound",
    )
    # Kept, the same objects (the hooks take back only the labels the gateway's NetworkPolicy
    # admits, so the Deployment is updated, never recreated).
    after = wait_children(cp, "default", "orphan", "JupyterNotebook", NOTEBOOK_CHILDREN)
    assert {r: o["metadata"]["uid"] for r, o in after.items()} == before


def test_6_hot_swap_of_the_hook_server_without_restarting_metacontroller(seed):
    state, _, nb = seed
    cp = state["cp"]
    assert nb["deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == DEFAULT_NOTEBOOK_IMAGE
    old = state["hooks"]
    use_hooks(state, app="hooks_next:create_app", name="hooks-next", factory=True)
    wait_for(
        lambda: (
            (d := get(cp, "deployment", f"{NOTEBOOK}-notebook"))
            and d["spec"]["template"]["spec"]["containers"][0]["image"] == NEXT_IMAGE
        ),
        timeout=90,
        what="the new version's image",
    )
    old.stop()
    assert cp.metacontroller is not None and cp.metacontroller.alive()
    assert cp.metacontroller.pid == state["metacontroller_pid"], "Metacontroller was not restarted"


def test_7_deleting_a_notebook_garbage_collects_its_children(seed):
    state, _, _ = seed
    cp = state["cp"]
    cp.apply(notebook("alice"))
    wait_children(cp, "default", "alice", "JupyterNotebook", NOTEBOOK_CHILDREN)
    cp.kubectl("delete", "jupyternotebook", "alice", "--wait=true")
    wait_for(
        lambda: all(get(cp, r, f"alice{s}") is None for r, s in NOTEBOOK_CHILDREN),
        timeout=90,
        what="garbage collection of alice's children",
    )
    assert get(cp, "deployment", f"{NOTEBOOK}-notebook") is not None, "only alice's children go"


def test_8_measure_apply_to_children(seed):
    """Prints how long a notebook takes from `kubectl apply` to each child (a figure, not a limit)."""
    state, _, _ = seed
    cp = state["cp"]
    samples = []
    for i in range(5):
        name = f"timing-{i}"
        started = time.monotonic()
        cp.apply(notebook(name))
        seen: dict[str, float] = {}

        def all_seen(name=name, started=started, seen=seen) -> bool:
            for resource, suffix in NOTEBOOK_CHILDREN:
                if resource not in seen and get(cp, resource, f"{name}{suffix}") is not None:
                    seen[resource] = time.monotonic() - started
            return len(seen) == len(NOTEBOOK_CHILDREN)

        wait_for(all_seen, timeout=60, interval=0.05, what=f"children of {name}")
        samples.append(seen)
    medians = {r: statistics.median(s[r] for s in samples) for r, _ in NOTEBOOK_CHILDREN}
    print(
        "\n[e2e] median seconds from `kubectl apply` of a JupyterNotebook to its child existing:",
        {r: round(v, 2) for r, v in medians.items()},
    )
    if "seed: apply to all children" in state["timings"]:
        print(f"[e2e] seed scenario, apply to all children: {state['timings']['seed: apply to all children']:.2f}s")
    print(f"[e2e] hook calls served by the current hook server: {dict(state['hooks'].calls())}")


def kernel_pod(name: str, kernel_id: str) -> dict:
    """A kernel pod of the sample notebook, labelled as its gateway's front door and launcher make it."""
    labels = {
        "component": "kernel",
        "kernel_id": kernel_id,
        "kubeflow.tkestack.io/kernel-profile": "python_kubernetes",
        "kubeflow.tkestack.io/notebook": NOTEBOOK,
        "kubeflow.tkestack.io/gateway-name": GATEWAY,
        "kubeflow.tkestack.io/gateway-namespace": "default",
    }
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    container = {"name": "kernel", "image": "elyra/kernel-py:3.3.0", "securityContext": security,
                 "resources": {"limits": {"memory": "512Mi"}}}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"restartPolicy": "Never", "containers": [container]}}  # fmt: skip


def test_9_the_notebooks_status_lists_its_kernels_and_why_they_ended(seed):
    """Metacontroller hands the notebook's hook its kernel pods (a related resource it may only
    read): status.kernels follows them, an OOMKilled pod's reason is kept after the pod is gone."""
    state, _, _ = seed
    cp = state["cp"]
    kernels = lambda o: (o.get("status") or {}).get("kernels") or []  # noqa: E731
    cp.apply(kernel_pod("kernel-a", "k-a"))
    listed = wait_status(
        cp, "the kernel listed", "jupyternotebook", NOTEBOOK,
        predicate=lambda o: [(k["id"], k["phase"]) for k in kernels(o)] == [("k-a", "Pending")],
    )  # fmt: skip
    assert kernels(listed)[0]["profile"] == "python_kubernetes" and kernels(listed)[0]["pod"] == "kernel-a"
    # What a kubelet reports for a kernel over its memory limit (no kubelet here: written as it would).
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    terminated = {"reason": "OOMKilled", "exitCode": 137, "startedAt": finished, "finishedAt": finished}
    status = {"status": {"phase": "Failed", "startTime": finished, "containerStatuses": [
        {"name": "kernel", "image": "elyra/kernel-py:3.3.0", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"terminated": terminated}}]}}  # fmt: skip
    cp.kubectl("patch", "pod", "kernel-a", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    ended = wait_status(
        cp, "the kernel's OOMKilled end", "jupyternotebook", NOTEBOOK,
        predicate=lambda o: [k.get("lastEnd", {}).get("reason") for k in kernels(o)] == ["oom-killed"],
    )  # fmt: skip
    assert kernels(ended)[0]["lastEnd"]["message"] == "out of memory: the kernel used more than its limit of 512Mi"
    # Another notebook's or gateway's pod is not this notebook's kernel.
    stranger = kernel_pod("kernel-b", "k-b")
    stranger["metadata"]["labels"]["kubeflow.tkestack.io/notebook"] = "someone-else"
    cp.apply(stranger)
    cp.kubectl("delete", "pod", "kernel-a", "--wait=true")
    gone = wait_status(
        cp, "the kernel ended", "jupyternotebook", NOTEBOOK,
        predicate=lambda o: [(k["id"], k["phase"]) for k in kernels(o)] == [("k-a", "Ended")],
    )  # fmt: skip
    assert kernels(gone)[0]["lastEnd"] == kernels(ended)[0]["lastEnd"]
    cp.kubectl("delete", "pod", "kernel-b", "--wait=true")
