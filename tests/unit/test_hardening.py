"""Issue 9: what an adversarial review found, each shown gone (items 1, 3, 4, 5, 6; the AppArmor
half of item 6 is in test_children_valid.py, item 2 in test_no_5xx.py).

Metacontroller creates whatever a sync response holds, with cluster-wide rights: the hooks
must answer only with children of the parent's own identity and namespace, take back what a
revoked gateway gave, and publish no function of a secret where others can read it.
"""

from __future__ import annotations

import base64
import copy
import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks import children as ch
from hooks.children import LAST_APPLIED
from hooks.crd import crds
from hooks.gateway import CHILD_TYPES as GATEWAY_CHILD_TYPES
from hooks.gateway import sync_gateway
from hooks.models import AUTH_DISABLED_WITH_GATEWAY
from hooks.notebook import CHILD_TYPES as NOTEBOOK_CHILD_TYPES
from hooks.notebook import customize_notebook, sync_notebook
from tests.builders import (
    AVAILABLE,
    GATEWAY_TOKEN,
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
from tests.unit.test_no_5xx import KEEP_REASONS, _corrupt_objects, _junk, _observed, corrupted, spec_strategy
from tests.unit.test_schema import api_server_verdict

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
            parent = notebook("nb", "team-a", gateway={"name": "gw"}, suspend="yes")
            result = sync_notebook(parent, children, related_gateway(gateway("gw", "team-a")), NOW, TOKEN)
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


def _secret_text(result):
    return base64.b64decode(
        by_kind(result["children"])["Secret"]["data"].get("jupyter_server_config.json", "")
    ).decode()


def test_a_namespace_dropped_from_allowed_namespaces_loses_the_token_and_the_client_labels():
    for after, reason in (
        (gateway("gw", "infra", allowedNamespaces=["team-c"]), "NamespaceNotAllowed"),
        (None, "GatewayNotFound"),
    ):
        first, revoked = _revocation_case(after)
        assert "gateway-token-0123456789" in _secret_text(first)
        assert "kubeflow.tkestack.io/gateway-name" in _pod_labels(first)
        assert revoked["status"]["conditions"][0]["reason"] == reason
        kept = {c["kind"] for c in revoked["children"]}
        assert kept == {"Deployment", "Service", "Secret", "ConfigMap"}, "server kept"
        assert "gateway-token-0123456789" not in json.dumps(revoked), reason
        labels = _pod_labels(revoked)
        assert (
            "kubeflow.tkestack.io/gateway-name" not in labels and "kubeflow.tkestack.io/gateway-namespace" not in labels
        )
        # The pods restart (the server holds the token it read at start).
        annotations = by_kind(revoked["children"])["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["kubeflow.tkestack.io/auth-generation"] == "2"


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
    invalid = notebook("nb", "team-a", gateway={"name": "gw", "namespace": "infra"}, suspend="x")
    result = sync_notebook(invalid, children, related_gateway(gw), NOW, TOKEN)
    kept = by_kind(result["children"])["RoleBinding"]
    assert kept["roleRef"] == by_kind(desired)["RoleBinding"]["roleRef"]


def _selects(rule: dict, obj: dict) -> bool:
    """Metacontroller's selection of one related rule (namespace + names or labelSelector)."""
    meta = obj["metadata"]
    if rule.get("namespace") and rule["namespace"] != meta["namespace"]:
        return False
    if "names" in rule:
        return meta["name"] in rule["names"]
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in rule["labelSelector"]["matchLabels"].items())


def test_a_notebook_of_a_namespace_the_gateway_does_not_allow_is_not_even_sent_its_token():
    for allowed, reads in (
        (["team-a"], {"team-a": True, "team-b": False, "infra": True}),
        (["*"], {"team-a": True, "team-b": True, "infra": True}),
        (None, {"team-a": False, "team-b": False, "infra": True}),
    ):
        spec = {"allowedNamespaces": allowed} if allowed else {}
        secret = by_kind(sync_gateway(gateway("gw", "infra", **spec), {}, kernel_role(), NOW, TOKEN)["children"])[
            "Secret"
        ]
        other = copy.deepcopy(secret)
        other["metadata"]["labels"]["kubeflow.tkestack.io/jupytergateway"] = "other"
        for namespace, expected in reads.items():
            rules = customize_notebook(notebook("nb", namespace, gateway={"name": "gw", "namespace": "infra"}))
            secret_rules = [r for r in rules["relatedResources"] if r["resource"] == "secrets"]
            assert any(_selects(r, secret) for r in secret_rules) == expected, (allowed, namespace)
            assert not any(_selects(r, other) for r in secret_rules), "only that gateway's Secret"


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


# --- Issue 15: every keep path takes back what the gateway no longer grants ---

_CLIENT_LABELS = ("kubeflow.tkestack.io/gateway-name", "kubeflow.tkestack.io/gateway-namespace")
# Specs the CRD stores but the hook refuses, each after pydantic validation or before it.
_REFUSED_SPECS = {
    "sizeLimit above 2^63-1": {
        "template": {
            "spec": {
                "containers": [{"name": "notebook", "image": "x"}],
                "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1e30"}}],
            }
        }
    },
    "reserved variable": {
        "template": {
            "spec": {
                "containers": [{"name": "notebook", "image": "x", "env": [{"name": "JUPYTER_TOKEN", "value": "x"}]}]
            }
        }
    },
    "password Secret missing": {"auth": {"passwordSecretRef": {"name": "nope"}}},
    "stored before a schema change": {"suspend": "yes"},
}


def _cross_namespace_notebook(spec: dict | None = None, **gateway_spec):
    """A notebook of team-b running on gateway infra/gw (token, client labels, kernel RoleBinding)."""
    gw = gateway("gw", "infra", allowedNamespaces=["team-b"], **gateway_spec)
    ref = {"name": "gw", "namespace": "infra"}
    first = sync_notebook(notebook("nb", "team-b", gateway=ref), {}, related_gateway(gw), NOW, TOKEN)
    assert len(_granted(first)) == (4 if not gateway_spec else 3), "running with every grant"
    return notebook("nb", "team-b", gateway=ref, **(spec or {})), observe(first["children"], NB_TYPES, AVAILABLE)


def _decoded_secrets(result) -> str:
    """Every value of every Secret in the response, decoded from base64 where it decodes."""
    values = [v for c in result["children"] if c["kind"] == "Secret" for v in ch.as_dict(c.get("data")).values()]
    return " ".join(ch.decoded(v) or "" for v in values if isinstance(v, str))


def _holds_token(result) -> bool:
    return GATEWAY_TOKEN in json.dumps(result) or GATEWAY_TOKEN in _decoded_secrets(result)


def _granted(result) -> list[str]:
    """What of the gateway's grants the response still holds."""
    out = ["token"] if _holds_token(result) else []
    out += [c["metadata"]["name"] for c in result["children"] if c["kind"] == "RoleBinding"]
    deployment = by_kind(result["children"]).get("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"] if deployment else {}
    return out + [k for k in _CLIENT_LABELS if k in labels]


@pytest.mark.parametrize("refused", sorted(_REFUSED_SPECS))
@pytest.mark.parametrize("after", ["namespace-not-allowed", "gateway-gone"])
def test_a_refused_spec_does_not_keep_what_a_revoking_gateway_gave(refused, after):
    parent, running = _cross_namespace_notebook(_REFUSED_SPECS[refused])
    gw = gateway("gw", "infra", allowedNamespaces=["team-c"]) if after == "namespace-not-allowed" else None
    result = sync_notebook(parent, running, related_gateway(gw), NOW, TOKEN)
    conditions = {c["type"]: c for c in result["status"]["conditions"]}
    reason = "NamespaceNotAllowed" if gw else "GatewayNotFound"
    assert conditions["GatewayReady"]["reason"] == reason, "said on every path"
    assert _granted(result) == [], (refused, after)
    assert identities(result["children"]) == {i for i in observed_identities(running) if i[0] != "RoleBinding"}


@pytest.mark.parametrize("refused", sorted(_REFUSED_SPECS))
def test_a_refused_spec_keeps_what_a_gateway_still_grants(refused):
    parent, running = _cross_namespace_notebook(_REFUSED_SPECS[refused])
    related = related_gateway(gateway("gw", "infra", allowedNamespaces=["team-b"]))
    result = sync_notebook(parent, running, related, NOW, TOKEN)
    assert _granted(result) == ["token", "nb-gateway-kernels", *_CLIENT_LABELS]
    assert identities(result["children"]) == observed_identities(running)
    assert result["children"] == sorted(
        (json.loads(c["metadata"]["annotations"][LAST_APPLIED]) for g in running.values() for c in g.values()),
        key=lambda c: (c["kind"], c["metadata"]["name"]),
    ), "kept exactly as applied"


@pytest.mark.parametrize("gateway_auth", [{}, {"auth": {"mode": "none"}}], ids=["token-gateway", "open-gateway"])
def test_a_notebook_without_authentication_gets_nothing_of_a_gateway(gateway_auth):
    """auth.mode: disable would hand the gateway's token (or, with an open gateway, its kernels
    as this notebook) to anyone on the pod network: refused at apply, and by the hook."""
    disabled = {"auth": {"mode": "disable"}}
    gw = gateway("gw", "infra", allowedNamespaces=["team-b"], **gateway_auth)
    spec = {"gateway": {"name": "gw", "namespace": "infra"}, **disabled}
    # The CRD's CEL rule (the API server names spec.auth.mode, its fieldPath: tests/e2e).
    verdict = api_server_verdict("jupyternotebooks", {"metadata": {"name": "nb"}, "spec": spec})
    assert verdict == [f"spec: {AUTH_DISABLED_WITH_GATEWAY}"], verdict
    fresh = sync_notebook(notebook("nb", "team-b", **spec), {}, related_gateway(gw), NOW, TOKEN)
    ready, gateway_ready = fresh["status"]["conditions"]
    assert ready["reason"] == "InvalidSpec" and ready["message"].startswith("spec.auth.mode:"), ready
    assert (gateway_ready["reason"], gateway_ready["status"]) == ("NotebookAuthDisabled", "False")
    assert fresh["children"] == [] and GATEWAY_TOKEN not in json.dumps(fresh)
    # A running notebook switched to it: kept, minus every grant.
    parent, running = _cross_namespace_notebook(disabled, **gateway_auth)
    result = sync_notebook(parent, running, related_gateway(gw), NOW, TOKEN)
    assert result["status"]["conditions"][0]["message"].startswith("spec.auth.mode:")
    assert _granted(result) == []
    assert identities(result["children"]) == {i for i in observed_identities(running) if i[0] != "RoleBinding"}
    # Without a gateway, authentication may still be off.
    alone = sync_notebook(notebook("nb", "team-b", **disabled), {}, {}, NOW, TOKEN)
    assert by_kind(alone["children"])["Secret"]["data"] == {"token": ""}


# The running notebooks the property below starts from: the gateway in another namespace or the
# notebook's own, with a workspace claim or a user's token Secret, before anything was revoked.
_BASES = [
    {},
    {"workspace": {"size": "1Gi"}},
    {"auth": {"secretRef": {"name": "mine"}}},
    {"auth": {"passwordSecretRef": {"name": "pw"}}},
]
# The gateway's state now ("allowed" thrice: the cases where something must be kept).
_GRANT_STATES = ["allowed"] * 3 + ["namespace-not-allowed", "gone", "token-missing", "open", "junk-spec"]


def _running(gw_namespace: str, base: dict, role: str) -> dict:
    ref = {"name": "gw", "namespace": gw_namespace}
    gw = gateway("gw", gw_namespace, allowedNamespaces=["team-b"], clusterRole=role)
    related = merged(related_gateway(gw), kernel_role(role), user_secret("pw", {"password": "pw"}, "team-b"))
    result = sync_notebook(notebook("nb", "team-b", gateway=ref, **base), {}, related, NOW, TOKEN)
    assert GATEWAY_TOKEN in _secret_text(result)
    return observe(result["children"], NB_TYPES, AVAILABLE)


@settings(
    max_examples=int(os.environ.get("HOOK_FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_spec_and_no_gateway_state_keeps_a_revoked_grant_or_loses_a_child(data):
    """For any notebook spec (valid, refused, corrupted) and any state of its gateway, the
    response holds the gateway's token, a kernel RoleBinding or the client labels only while the
    gateway grants them, and a keep path loses no other child."""
    gw_namespace = data.draw(st.sampled_from(["infra", "team-b"]))
    role = data.draw(st.sampled_from(["jupyter-gateway-kernels", "kernels-b"]))
    base = data.draw(st.sampled_from(_BASES))
    running = _corrupt_objects(_running(gw_namespace, base, role), data.draw)
    # The spec now: the one it ran with or one generated from the CRD, mostly pointed at the
    # gateway, sometimes without authentication, sometimes corrupted.
    spec = copy.deepcopy(data.draw(st.one_of(st.just(base), spec_strategy("jupyternotebooks"))))
    if data.draw(st.sampled_from([True, True, True, False])):
        spec["gateway"] = {"name": "gw", **({"namespace": gw_namespace} if gw_namespace != "team-b" else {})}
    if data.draw(st.sampled_from([False, False, False, True])):
        spec["auth"] = {**(spec.get("auth") or {}), "mode": "disable"}
    spec = corrupted(spec, data.draw)
    # The gateway now, and the approval of the roles.
    state = data.draw(st.sampled_from(_GRANT_STATES))
    allowed = ["team-c"] if state == "namespace-not-allowed" else ["team-b"]
    gw_spec = {"allowedNamespaces": allowed, "clusterRole": data.draw(st.sampled_from([role, "other"]))}
    if state == "open":
        gw_spec["auth"] = {"mode": "none"}
    if state == "junk-spec":
        gw_spec = data.draw(_junk)
    gw = {**gateway("gw", gw_namespace), "spec": gw_spec}
    related = related_gateway(
        None if state == "gone" else gw, token=None if state == "token-missing" else GATEWAY_TOKEN
    )
    approved = {r for r in (role, "other", "jupyter-gateway-kernels") if data.draw(st.booleans())}
    related["ClusterRole.rbac.authorization.k8s.io/v1"] = {
        r: kernel_role(r)["ClusterRole.rbac.authorization.k8s.io/v1"][r] for r in approved
    }
    related = merged(related, user_secret("pw", {"password": "pw"}, "team-b"))

    result = sync_notebook({**notebook("nb", "team-b"), "spec": spec}, running, related, NOW, TOKEN)

    # What the gateway grants, worked out here from the request alone.
    named = isinstance(spec, dict) and isinstance(spec.get("gateway"), dict)
    named = (
        named and spec["gateway"].get("name") == "gw" and (spec["gateway"].get("namespace") or "team-b") == gw_namespace
    )
    auth = spec.get("auth") if isinstance(spec, dict) else None
    allows = named and state != "gone" and not (isinstance(auth, dict) and auth.get("mode") == "disable")
    allows = allows and (gw_namespace == "team-b" or (state != "namespace-not-allowed" and state != "junk-spec"))
    token_allowed = allows and state not in ("token-missing", "open")
    labels_allowed = allows and state != "token-missing"
    assert token_allowed or not _holds_token(result)
    for child in result["children"]:
        if child["kind"] == "RoleBinding":
            assert allows and child["roleRef"]["name"] in approved, child
            assert child["subjects"] == [{"kind": "ServiceAccount", "name": "gw-gateway", "namespace": gw_namespace}]
        if child["kind"] == "Deployment" and not labels_allowed:
            labels = ch.as_dict(ch.as_dict(ch.as_dict(child.get("spec")).get("template")).get("metadata")).get("labels")
            assert not set(_CLIENT_LABELS) & set(ch.as_dict(labels)), child
    ready = result["status"]["conditions"][0]
    if ready["reason"] in KEEP_REASONS | {"KernelRoleNotAllowed"}:
        revocable = {i for i in _observed(running) if i[0] == "RoleBinding"}
        assert _observed(running) - revocable <= identities(result["children"]), ready
