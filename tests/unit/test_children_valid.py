"""Every child the hooks render is a valid Kubernetes object, and every pod passes `restricted`.

Objects are checked against the API server's OpenAPI schemas of Kubernetes 1.34 to 1.36
(kubernetes-validate); pods against the restricted Pod Security Standard by the API
server's own admission library (tests/psa, built from k8s.io/pod-security-admission).
"""

import json
import subprocess

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.gateway import sync_gateway
from hooks.notebook import sync_notebook
from hooks.podsecurity import annotation_violations, harden, violations
from tests.builders import NOW, TOKEN, gateway, kernel_role, notebook, related_gateway, user_secret

K8S_VERSIONS = ["1.34.0", "1.35.0", "1.36.0"]
TEMPLATE = {
    "metadata": {"labels": {"team": "ml"}},
    "spec": {
        "initContainers": [
            {"name": "fetch", "image": "busybox", "command": ["true"], "resources": {"requests": {"cpu": "100m"}}}
        ],
        "containers": [
            {
                "name": "notebook",
                "image": "my/lab:1",
                "command": ["jupyter", "lab"],
                "resources": {"limits": {"nvidia.com/gpu": 1}},
            }
        ],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}],
    },
}
RENDERED = {
    "gateway-defaults": sync_gateway(gateway(), {}, kernel_role(), NOW, TOKEN)["children"],
    "gateway-full": sync_gateway(
        gateway(
            kernels=["a"],
            defaultKernel="a",
            kernelProfiles=[{"name": "a", "nodeSelector": {"gpu": "yes"}, "priorityClassName": "low"}],
            resources={"limits": {"cpu": 1}},
            clusterRole="k",
        ),
        {},
        kernel_role("k"),
        NOW,
        TOKEN,
    )["children"],
    "notebook-defaults": sync_notebook(notebook(gateway={"name": "gw"}), {}, related_gateway(gateway()), NOW, TOKEN)[
        "children"
    ],
    "notebook-template": sync_notebook(
        notebook(template=TEMPLATE, auth={"passwordSecretRef": {"name": "pw"}}),
        {},
        user_secret("pw", {"password": "pw"}),
        NOW,
        TOKEN,
    )["children"],
    "notebook-secret-ref": sync_notebook(notebook(auth={"secretRef": {"name": "s"}}), {}, {}, NOW, TOKEN)["children"],
    # kernels in the notebook's namespace: workspace claim, the gateway's RoleBinding there
    "notebook-kernels": sync_notebook(
        notebook(namespace="team-a", gateway={"name": "gw", "namespace": "infra"}, workspace={"size": "5Gi"}),
        {},
        related_gateway(gateway(namespace="infra", allowedNamespaces=["team-a"])),
        NOW,
        TOKEN,
    )["children"],
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("case", sorted(RENDERED))
def test_children_are_valid_kubernetes_objects(case, version):
    assert RENDERED[case]
    for child in RENDERED[case]:
        kubernetes_validate.validate(child, version, strict=True)


def pod_templates() -> dict[str, dict]:
    return {
        f"{case}/{child['metadata']['name']}": child["spec"]["template"]
        for case, children in RENDERED.items()
        for child in children
        if child["kind"] == "Deployment"
    }


def test_every_rendered_pod_passes_restricted(psacheck):
    pods = pod_templates()
    assert len(pods) == 6
    assert psacheck(pods) == {name: "" for name in pods}
    for pod in pods.values():
        assert violations(pod["spec"]) == []
        assert annotation_violations(pod["metadata"].get("annotations") or {}) == []


# Security settings a user's template may ask for; the hook must refuse exactly those
# that the admission library refuses.
_container_sc = st.fixed_dictionaries(
    {},
    optional={
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "runAsUser": st.sampled_from([0, 1000]),
        "runAsNonRoot": st.booleans(),
        "capabilities": st.fixed_dictionaries(
            {},
            optional={
                "add": st.sampled_from([["NET_BIND_SERVICE"], ["SYS_ADMIN"], []]),
                "drop": st.sampled_from([["ALL"], ["NET_RAW"]]),
            },
        ),
        "seccompProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
        "procMount": st.sampled_from(["Default", "Unmasked"]),
    },
)
_templates = st.fixed_dictionaries(
    {
        "containers": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["notebook", "side"]), "image": st.just("x")},
                optional={"securityContext": _container_sc, "ports": st.just([{"containerPort": 80, "hostPort": 80}])},
            ),
            min_size=1,
            max_size=2,
            unique_by=lambda c: c["name"],
        )
    },
    optional={
        "hostNetwork": st.booleans(),
        "hostPID": st.booleans(),
        "securityContext": st.fixed_dictionaries(
            {},
            optional={
                "runAsUser": st.sampled_from([0, 1000]),
                "runAsNonRoot": st.booleans(),
                "seccompProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
                "sysctls": st.sampled_from(
                    [[{"name": "kernel.shm_rmid_forced", "value": "0"}], [{"name": "kernel.msgmax", "value": "1"}]]
                ),
            },
        ),
        "volumes": st.sampled_from([[{"name": "h", "hostPath": {"path": "/"}}], [{"name": "e", "emptyDir": {}}]]),
    },
)


_metadata = st.fixed_dictionaries(
    {},
    optional={
        "annotations": st.dictionaries(
            st.sampled_from(
                [f"container.apparmor.security.beta.kubernetes.io/{c}" for c in ("notebook", "side")] + ["note"]
            ),
            st.sampled_from(["unconfined", "runtime/default", "localhost/mine", "x"]),
            max_size=2,
        )
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_templates, _metadata)
def test_the_hook_refuses_exactly_the_templates_the_admission_library_refuses(psacheck, pod_spec, metadata):
    """Pods are checked with their metadata: AppArmor annotations count (issue 9, item 6)."""
    result = sync_notebook(notebook(template={"metadata": metadata, "spec": pod_spec}), {}, {}, NOW, TOKEN)
    ready = result["status"]["conditions"][0]
    if ready["reason"] == "InvalidSpec":
        # Refused: the admission library refuses the pod too, hardened as the hook hardens it.
        assert psacheck({"p": {"metadata": metadata, "spec": harden(pod_spec)}})["p"] != "", (
            ready["message"],
            pod_spec,
        )
    else:
        pod = next(c for c in result["children"] if c["kind"] == "Deployment")["spec"]["template"]
        assert psacheck({"p": pod}) == {"p": ""}, (metadata, pod_spec)


def test_an_unconfined_apparmor_annotation_is_refused_by_both(psacheck):
    """Issue 9, item 6: the annotation passed the hook but not the admission library."""
    metadata = {"annotations": {"container.apparmor.security.beta.kubernetes.io/notebook": "unconfined"}}
    spec = {"containers": [{"name": "notebook", "image": "x"}]}
    result = sync_notebook(notebook(template={"metadata": metadata, "spec": spec}), {}, {}, NOW, TOKEN)
    ready = result["status"]["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert (
        "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/notebook]"
        in (ready["message"])
    )
    assert "AppArmor" in psacheck({"p": {"metadata": metadata, "spec": harden(spec)}})["p"]


def test_psacheck_refuses_what_it_must(psacheck):
    """The checker itself can fail: a privileged pod is refused."""
    bad = {"containers": [{"name": "x", "image": "y", "securityContext": {"privileged": True}}]}
    assert "privileged" in psacheck({"bad": {"spec": bad}})["bad"]


def test_psacheck_reports_bad_input(psacheck_binary):
    out = subprocess.run([psacheck_binary], input="not json", capture_output=True, text=True)
    assert out.returncode == 2 and "bad input" in out.stderr
    assert json.loads(subprocess.run([psacheck_binary], input="{}", capture_output=True, text=True).stdout) == {}
