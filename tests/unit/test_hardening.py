"""Issue 9: what an adversarial review found, each shown gone (items 1, 3, 4, 5, 6; the AppArmor
half of item 6 is in test_children_valid.py, item 2 in test_no_5xx.py).

Metacontroller creates whatever a sync response holds, with cluster-wide rights: the hooks
must answer only with children of the parent's own identity and namespace, take back what a
revoked gateway gave, and publish no function of a secret where others can read it.
"""

from __future__ import annotations

import copy
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.children import LAST_APPLIED
from hooks.crd import crds
from hooks.gateway import CHILD_TYPES as GATEWAY_CHILD_TYPES
from hooks.gateway import sync_gateway
from hooks.notebook import CHILD_TYPES as NOTEBOOK_CHILD_TYPES
from hooks.notebook import customize_notebook, sync_notebook
from tests.builders import (
    AVAILABLE,
    NOW,
    ROOT,
    TOKEN,
    by_kind,
    child_types,
    gateway,
    kernel_role,
    load,
    merged,
    notebook,
    observe,
    related_gateway,
    user_secret,
)

GW_TYPES = child_types("jupytergateway.yaml")
NB_TYPES = child_types("jupyternotebook.yaml")


def identities(children: list[dict]) -> set[tuple]:
    return {(c["kind"], c["apiVersion"], c["metadata"].get("namespace"), c["metadata"]["name"]) for c in children}


def observed_identities(children: dict) -> set[tuple]:
    return {
        (c["kind"], c["apiVersion"], c["metadata"]["namespace"], c["metadata"]["name"])
        for group in children.values()
        for c in group.values()
    }


def test_the_hooks_know_exactly_their_controllers_child_types():
    assert set(GW_TYPES) == GATEWAY_CHILD_TYPES
    assert set(NB_TYPES) == NOTEBOOK_CHILD_TYPES


# --- 1. keep paths return only what was observed ---

FORGED_ROLE_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "pwn", "namespace": "kube-system"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"kind": "User", "name": "mallory"}],
}


def _running_gateway(namespace="team-a"):
    parent = gateway("gw", namespace)
    desired = sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"]
    return observe(desired, GW_TYPES, AVAILABLE), desired


def _running_notebook(namespace="team-a"):
    gw = gateway("gw", namespace)
    parent = notebook("nb", namespace, gateway={"name": "gw"})
    desired = sync_notebook(parent, {}, related_gateway(gw), NOW, TOKEN)["children"]
    return observe(desired, NB_TYPES, AVAILABLE), desired


def test_a_forged_last_applied_annotation_creates_nothing_new():
    """The issue's exploit: the ConfigMap's annotation rewritten to a cluster-admin RoleBinding in
    kube-system, then a keep path (a ClusterRole that does not exist)."""
    children, desired = _running_gateway()
    config_map = next(iter(children["ConfigMap.v1"].values()))
    config_map["metadata"]["annotations"][LAST_APPLIED] = json.dumps(FORGED_ROLE_BINDING)
    result = sync_gateway(gateway("gw", "team-a", clusterRole="nope"), children, {}, NOW, TOKEN)
    assert result["status"]["conditions"][0]["reason"] == "ClusterRoleNotFound"
    assert "pwn" not in json.dumps(result["children"])
    assert identities(result["children"]) <= observed_identities(children)
    name = config_map["metadata"]["name"]
    kept_map = next(c for c in result["children"] if c["kind"] == "ConfigMap" and c["metadata"]["name"] == name)
    original = next(c for c in desired if c["kind"] == "ConfigMap" and c["metadata"]["name"] == name)
    assert kept_map["data"] == original["data"], "kept as observed, minus server fields"
    assert "uid" not in kept_map["metadata"] and LAST_APPLIED not in kept_map["metadata"].get("annotations", {})

    # The notebook's variant: a Service annotated as a privileged Deployment, and no gateway.
    children, _ = _running_notebook()
    service = next(iter(children["Service.v1"].values()))
    evil = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "root", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"hostPID": True, "containers": [{"name": "x", "image": "x"}]}}},
    }
    service["metadata"]["annotations"][LAST_APPLIED] = json.dumps(evil)
    result = sync_notebook(notebook("nb", "team-a", gateway={"name": "gw"}), children, {}, NOW, TOKEN)
    assert result["status"]["conditions"][0]["reason"] == "GatewayNotFound"
    assert "kube-system" not in json.dumps(result["children"])
    assert identities(result["children"]) <= observed_identities(children)


def test_observed_entries_that_cannot_be_children_are_not_returned():
    children, _ = _running_gateway()
    foreign = copy.deepcopy(FORGED_ROLE_BINDING)
    children["RoleBinding.rbac.authorization.k8s.io/v1"]["kube-system/pwn"] = foreign  # another namespace
    misfiled = copy.deepcopy(next(iter(children["ConfigMap.v1"].values())))
    misfiled["kind"] = "Secret"  # its own identity does not match its group
    children["ConfigMap.v1"]["team-a/misfiled"] = misfiled
    children["ClusterRoleBinding.rbac.authorization.k8s.io/v1"] = {"pwn": foreign}  # no child type of ours
    result = sync_gateway(gateway("gw", "team-a", cullIdleTimeout=-1), children, kernel_role(), NOW, TOKEN)
    assert result["status"]["conditions"][0]["reason"] == "InvalidSpec"
    names = {c["metadata"]["name"] for c in result["children"]}
    assert "pwn" not in names and "misfiled" not in names
    assert {c["metadata"]["namespace"] for c in result["children"]} == {"team-a"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_identity_like = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1"]),
        "kind": st.sampled_from(["ConfigMap", "Deployment", "RoleBinding", "Secret", "Service", "ClusterRoleBinding"]),
        "metadata": st.fixed_dictionaries(
            {"name": st.sampled_from(["gw-gateway", "gw", "nb-notebook", "pwn"])},
            optional={"namespace": st.sampled_from(["team-a", "kube-system", ""])},
        ),
    },
    optional={"roleRef": st.just(FORGED_ROLE_BINDING["roleRef"]), "spec": _json},
)
_annotation = st.one_of(_identity_like.map(json.dumps), _json.map(json.dumps), st.text(max_size=20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_annotation_content_yields_only_observed_identities_in_the_parents_namespace(data):
    for hook in ("gateway", "notebook"):
        children, _ = _running_gateway() if hook == "gateway" else _running_notebook()
        for group in children.values():
            for child in group.values():
                if data.draw(st.booleans()):
                    child["metadata"]["annotations"][LAST_APPLIED] = data.draw(_annotation)
        if hook == "gateway":
            parent = gateway(
                "gw", "team-a", **data.draw(st.sampled_from([{"clusterRole": "nope"}, {"cullInterval": 0}]))
            )
            result = sync_gateway(parent, children, kernel_role(), NOW, TOKEN)
        else:
            parent = notebook(
                "nb", "team-a", **data.draw(st.sampled_from([{"gateway": {"name": "gw"}}, {"suspend": 1}]))
            )
            result = sync_notebook(parent, children, {}, NOW, TOKEN)
        assert result["status"]["conditions"][0]["status"] == "False"
        assert identities(result["children"]) <= observed_identities(children)
        assert {c["metadata"]["namespace"] for c in result["children"]} <= {"team-a"}


def test_a_normal_kept_child_equals_its_last_applied_configuration():
    for children, desired, result in (
        (*_running_gateway(), None),
        (*_running_notebook(), None),
    ):
        if "ConfigMap.v1" in children:
            result = sync_gateway(gateway("gw", "team-a", cullInterval=0), children, kernel_role(), NOW, TOKEN)
        else:
            result = sync_notebook(notebook("nb", "team-a", suspend="yes"), children, {}, NOW, TOKEN)
        assert result["children"] == sorted(desired, key=lambda c: (c["kind"], c["metadata"]["name"]))


# --- 3. revoked access takes effect ---


def _revocation_case(gateway_after):
    """A notebook in team-b using gateway infra/gw, then the gateway as ``gateway_after``."""
    before = gateway("gw", "infra", allowedNamespaces=["team-b"])
    parent = notebook("nb", "team-b", gateway={"name": "gw", "namespace": "infra"})
    first = sync_notebook(parent, {}, related_gateway(before), NOW, TOKEN)
    running = observe(first["children"], NB_TYPES, AVAILABLE)
    related = related_gateway(gateway_after) if gateway_after is not None else related_gateway(None)
    return first, sync_notebook(parent, running, related, NOW, TOKEN)


def _pod_labels(result):
    return by_kind(result["children"])["Deployment"]["spec"]["template"]["metadata"]["labels"]


def test_a_namespace_dropped_from_allowed_namespaces_loses_the_client_labels_and_never_held_a_token():
    """The gateway's front door refuses the namespace at once (its allowed-namespaces file); the
    notebook's pods also lose the labels the gateway's NetworkPolicy admits."""
    for after, reason in (
        (gateway("gw", "infra", allowedNamespaces=["team-c"]), "NamespaceNotAllowed"),
        (None, "GatewayNotFound"),
    ):
        first, revoked = _revocation_case(after)
        assert "gateway-token-0123456789" not in json.dumps(first)
        assert "kubeflow.tkestack.io/gateway-name" in _pod_labels(first)
        assert revoked["status"]["conditions"][0]["reason"] == reason
        kept = {c["kind"] for c in revoked["children"]}
        assert kept == {"Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount"}, "server kept"
        labels = _pod_labels(revoked)
        assert (
            "kubeflow.tkestack.io/gateway-name" not in labels and "kubeflow.tkestack.io/gateway-namespace" not in labels
        )


def test_a_cluster_role_that_loses_its_approval_or_disappears_is_unbound():
    children, _ = _running_gateway()
    for related in (kernel_role(allowed=False), {}):
        result = sync_gateway(gateway("gw", "team-a"), children, related, NOW, TOKEN)
        kinds = [c["kind"] for c in result["children"]]
        assert "RoleBinding" not in kinds
        assert {"Deployment", "ServiceAccount", "ConfigMap", "Service", "Secret", "NetworkPolicy"} <= set(kinds)


def test_a_kept_role_binding_is_never_taken_from_its_annotation():
    """Whoever may edit the RoleBinding's annotation must not get Metacontroller to recreate it
    (Recreate strategy) bound to another role."""
    children, _ = _running_gateway()
    binding = next(iter(children["RoleBinding.rbac.authorization.k8s.io/v1"].values()))
    forged = {**json.loads(binding["metadata"]["annotations"][LAST_APPLIED]), "roleRef": FORGED_ROLE_BINDING["roleRef"]}
    binding["metadata"]["annotations"][LAST_APPLIED] = json.dumps(forged)
    roles = merged(kernel_role(), {"ClusterRole.rbac.authorization.k8s.io/v1": {"cluster-admin": {"metadata": {}}}})
    result = sync_gateway(gateway("gw", "team-a", cullInterval=0), children, roles, NOW, TOKEN)
    assert by_kind(result["children"])["RoleBinding"]["roleRef"]["name"] == "jupyter-gateway-kernels"


def test_a_notebooks_kept_role_binding_is_the_observed_one():
    gw = gateway("gw", "infra", allowedNamespaces=["team-a"])
    parent = notebook("nb", "team-a", gateway={"name": "gw", "namespace": "infra"})
    desired = sync_notebook(parent, {}, related_gateway(gw), NOW, TOKEN)["children"]
    children = observe(desired, NB_TYPES, AVAILABLE)
    binding = next(iter(children["RoleBinding.rbac.authorization.k8s.io/v1"].values()))
    forged = {**json.loads(binding["metadata"]["annotations"][LAST_APPLIED]), "roleRef": FORGED_ROLE_BINDING["roleRef"]}
    binding["metadata"]["annotations"][LAST_APPLIED] = json.dumps(forged)
    result = sync_notebook(notebook("nb", "team-a", suspend="x"), children, related_gateway(gw), NOW, TOKEN)
    kept = by_kind(result["children"])["RoleBinding"]
    assert kept["roleRef"] == by_kind(desired)["RoleBinding"]["roleRef"]


def test_no_notebook_reads_a_secret_of_its_gateway():
    """Notebooks authenticate with their own ServiceAccount: Metacontroller fetches no Secret of
    the gateway's namespace for them, whatever the gateway allows."""
    for namespace in ("team-a", "team-b", "infra"):
        rules = customize_notebook(notebook("nb", namespace, gateway={"name": "gw", "namespace": "infra"}))
        assert not [r for r in rules["relatedResources"] if r["resource"] == "secrets"]


# --- 4. nothing readable fingerprints a secret ---


def _readable(children: list[dict]) -> str:
    """Everything a user without access to Secrets can read of the children."""
    return json.dumps([c for c in children if c["kind"] != "Secret"], sort_keys=True)


def test_no_readable_child_depends_on_the_gateways_token():
    def gateway_children(token):
        return sync_gateway(
            gateway("gw", auth={"secretRef": {"name": "t"}}),
            {},
            merged(kernel_role(), user_secret("t", {"token": token})),
            NOW,
            TOKEN,
        )["children"]

    assert _readable(gateway_children("weak-one")) == _readable(gateway_children("weak-two"))

    def notebook_children(token):
        related = related_gateway(gateway(), token=token)
        return sync_notebook(notebook(gateway={"name": "gw"}), {}, related, NOW, TOKEN)["children"]

    assert _readable(notebook_children("weak-one")) == _readable(notebook_children("weak-two"))


def test_a_changed_gateway_token_rolls_the_gateway_and_a_resync_changes_nothing():
    def synced(token, children=None):
        related = merged(kernel_role(), user_secret("t", {"token": token}))
        return sync_gateway(gateway("gw", auth={"secretRef": {"name": "t"}}), children or {}, related, NOW, TOKEN)

    def generation(result):
        pod = by_kind(result["children"])["Deployment"]["spec"]["template"]
        return pod["metadata"]["annotations"]["kubeflow.tkestack.io/auth-generation"]

    first = synced("token-one")
    running = observe(first["children"], GW_TYPES, AVAILABLE)
    assert synced("token-one", running)["children"] == first["children"]
    assert (generation(first), generation(synced("token-two", running))) == ("1", "2")
    # The generated Secret deleted by someone: a new token, so the pods must roll too.
    del running["Secret.v1"]["default/gw-gateway-auth"]
    assert generation(synced("token-one", running)) == "2"


# --- 5. credentials are not in CR specs ---


def test_the_crd_holds_no_credential_and_a_stored_one_is_refused_by_name():
    auth = crds()["jupyternotebooks.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["auth"]["properties"]
    assert "token" not in auth and "password" not in auth
    assert {"secretRef", "passwordSecretRef"} <= set(auth)
    children, desired = _running_notebook()
    for field in ("token", "password"):
        parent = notebook("nb", "team-a", gateway={"name": "gw"}, auth={field: "hunter2-secret"})
        result = sync_notebook(parent, children, related_gateway(gateway("gw", "team-a")), NOW, TOKEN)
        ready = result["status"]["conditions"][0]
        assert ready["reason"] == "InvalidSpec" and ready["message"].startswith(f"spec.auth.{field}:"), ready
        assert "hunter2-secret" not in json.dumps(result)
        assert identities(result["children"]) == identities(desired), "children kept"


def test_the_view_role_exposes_no_credential():
    roles = [doc for doc in yaml.safe_load_all((ROOT / "manifests/rbac/user-roles.yaml").read_text()) if doc]
    view = next(r for r in roles if r["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-view"))
    for rule in view["rules"]:
        assert "secrets" not in rule["resources"] and set(rule["verbs"]) <= {"get", "list", "watch"}
    # What the view role reads: the CRs, whose schema has no credential field (above), and status,
    # which names Secrets but holds none.
    schema = json.dumps(crds()["jupyternotebooks.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    for word in ('"token":', '"password":', '"hashedPassword"'):
        assert word not in schema
    assert load("manifests/samples/jupyternotebook-sample.yaml")["spec"].get("auth") is None


# --- 6. no Secret in the notebook container's environment ---


def test_no_secret_reaches_the_notebook_containers_environment():
    def reason(container: dict) -> str:
        notebook_container = {"name": "notebook", "image": "x", **container}
        template = {"spec": {"containers": [notebook_container, {"name": "side", "image": "y", **container}]}}
        return sync_notebook(notebook(template=template), {}, {}, NOW, TOKEN)["status"]["conditions"][0]["message"]

    from_secret = reason({"envFrom": [{"secretRef": {"name": "db"}}]})
    assert "spec.template.spec.containers[0].envFrom[0].secretRef:" in from_secret
    assert "containers[1]" not in from_secret, "a sidecar's environment is not logged by Jupyter Server"
    key_ref = reason({"env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]})
    assert "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef:" in key_ref
    assert "Deployment" in [
        c["kind"]
        for c in sync_notebook(
            notebook(
                template={
                    "spec": {
                        "containers": [{"name": "notebook", "image": "x", "envFrom": [{"configMapRef": {"name": "c"}}]}]
                    }
                }
            ),
            {},
            {},
            NOW,
            TOKEN,
        )["children"]
    ], "a ConfigMap is fine"


# --- 2. what reaches a hook gets a clean answer naming the field ---


def test_bad_values_that_reach_the_hooks_are_named_without_python_internals():
    children, desired = _running_gateway()
    for spec, message in (
        ({"resources": "big"}, "spec.resources: must be an object"),
        ({"resources": {"limits": {"cpu": "1e30"}}}, "spec.resources.limits.cpu: 1e30 is out of range"),
        ({"resources": {"limits": {"cpu": "1e1000000"}}}, "spec.resources.limits.cpu: 1e1000000 is out of range"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu: must be a Kubernetes quantity"),
    ):
        result = sync_gateway(gateway("gw", "team-a", **spec), children, kernel_role(), NOW, TOKEN)
        ready = result["status"]["conditions"][0]
        assert ready["reason"] == "InvalidSpec" and ready["message"].startswith(message), ready
        assert identities(result["children"]) == identities(desired)
    children, desired = _running_notebook()
    related = related_gateway(gateway("gw", "team-a"))
    for template_spec, message in (
        ({"containers": [{"name": "notebook", "image": "x", "env": "oops"}]}, "spec.template.spec.containers[0].env:"),
        ({"containers": [{"name": "notebook", "image": "x", "env": [5]}]}, "spec.template.spec.containers[0].env[0]:"),
        ({"containers": [{"name": "notebook", "image": "x"}], "volumes": "x"}, "spec.template.spec.volumes:"),
        ({"containers": [{"name": "notebook"}]}, "spec.template.spec.containers[0].image: required"),
        (
            {"containers": [{"name": "notebook", "image": "x"}], "initContainers": [5]},
            "spec.template.spec.initContainers[0]:",
        ),
        (
            {"containers": [{"name": "notebook", "image": "x", "resources": {"limits": {"cpu": "1e30"}}}]},
            "spec.template.spec.containers[0].resources.limits[cpu]: 1e30 is out of range",
        ),
    ):
        parent = notebook("nb", "team-a", gateway={"name": "gw"}, template={"spec": template_spec})
        result = sync_notebook(parent, children, related, NOW, TOKEN)
        ready = result["status"]["conditions"][0]
        assert ready["reason"] == "InvalidSpec" and ready["message"].startswith(message), ready
        assert identities(result["children"]) == identities(desired)
    parent = notebook("nb", "team-a", gateway={"name": "gw"}, kernelResources={"limits": {"memory": "1e30"}})
    ready = sync_notebook(parent, children, related, NOW, TOKEN)["status"]["conditions"][0]
    assert ready["message"].startswith("spec.kernelResources.limits.memory: 1e30 is out of range"), ready
