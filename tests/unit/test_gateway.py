"""The JupyterGateway sync hook, as a pure function."""

import base64
import json

import pytest

from hooks.gateway import CONFIG_FILE, customize_gateway, render_config, sync_gateway
from hooks.models import JupyterGatewaySpec
from tests.builders import (
    AVAILABLE,
    LATER,
    NOW,
    ROOT,
    TOKEN,
    by_kind,
    child_types,
    env_of,
    gateway,
    kernel_role,
    load,
    observe,
)

TYPES = child_types("jupytergateway.yaml")


def sync(parent, children=None, related=None, now=NOW):
    related = (
        kernel_role((parent["spec"] or {}).get("clusterRole", "jupyter-gateway-kernels"))
        if related is None
        else related
    )
    return sync_gateway(parent, children or {t: {} for t in TYPES}, related, now, TOKEN)


def ordered(children: list[dict]) -> list[dict]:
    return sorted(children, key=lambda c: (c["kind"], c["metadata"]["name"]))


def config_text(result) -> str:
    """Enterprise Gateway's configuration file (the gateway has several ConfigMaps)."""
    return next(c["data"][CONFIG_FILE] for c in result["children"] if CONFIG_FILE in c.get("data", {}))


def config_of(result) -> dict:
    return json.loads(config_text(result))


def test_the_seed_sample_renders_every_child():
    sample = load("manifests/samples/jupytergateway-sample.yaml") | {
        "metadata": {"name": "jupytergateway-sample", "namespace": "default"}
    }
    result = sync(sample)
    kinds = {(c["kind"], c["metadata"]["name"]) for c in result["children"]}
    assert kinds == {
        ("ServiceAccount", "jupytergateway-sample-gateway"),
        ("RoleBinding", "jupytergateway-sample-gateway"),
        ("ConfigMap", "jupytergateway-sample-gateway"),
        ("ConfigMap", "jupytergateway-sample-gateway-kernelspecs"),
        ("ConfigMap", "jupytergateway-sample-gateway-front-door"),
        ("ConfigMap", "jupytergateway-sample-gateway-access"),
        ("Deployment", "jupytergateway-sample-gateway"),
        ("Service", "jupytergateway-sample"),  # notebooks reach http://<gateway>.<ns>.svc:8888
        ("Secret", "jupytergateway-sample-gateway-auth"),
        ("NetworkPolicy", "jupytergateway-sample-gateway"),
    }
    assert config_of(result)["RemoteMappingKernelManager"]["cull_idle_timeout"] == 3600
    assert result["status"]["url"] == "http://jupytergateway-sample.default.svc:8888"


def test_defaults_apply_without_the_schema():
    """A parent may reach the hook without the CRD's defaults (an older CRD, a hand-made request)."""
    config = config_of(sync(gateway(spec=None) | {"spec": {}}))
    assert config["RemoteMappingKernelManager"] == {
        "cull_idle_timeout": 3600,
        "cull_interval": 60,
        "cull_connected": False,
        "cull_busy": False,
    }
    assert config["EnterpriseGatewayApp"]["default_kernel_name"] == "python_kubernetes"
    assert config["EnterpriseGatewayApp"]["log_level"] == "INFO"
    assert config["KernelSpecManager"] == {"whitelist": ["python_kubernetes"], "ensure_native_kernel": False}


def test_every_spec_field_reaches_its_child_field():
    spec = {
        "kernels": ["python_kubernetes", "r_kubernetes"],
        "defaultKernel": "r_kubernetes",
        "kernelProfiles": [{"name": "python_kubernetes"}, {"name": "r_kubernetes"}, {"name": "unserved"}],
        "cullIdleTimeout": 600,
        "cullInterval": 30,
        "cullConnected": True,
        "cullBusy": True,
        "kernelLaunchTimeout": 300,
        "logLevel": "DEBUG",
        "image": "registry.example/eg:3.3.0-custom",
        "resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}, "limits": {"cpu": 2, "memory": "2048Mi"}},
        "clusterRole": "my-kernels",
        "auth": {"mode": "token", "secretRef": {"name": "eg-token", "key": "tok"}},
        "allowedNamespaces": ["team-a"],
    }
    assert set(spec) == {f.alias for f in JupyterGatewaySpec.model_fields.values()}, "a field is untested"
    related = kernel_role("my-kernels") | user_secret("eg-token", "tok", "users-token")
    result = sync(gateway(**spec), related=related)
    children = by_kind(result["children"])
    config = config_of(result)
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert config["KernelSpecManager"]["whitelist"] == ["python_kubernetes", "r_kubernetes"]
    specs = next(c for c in result["children"] if c["metadata"]["name"] == "gw-gateway-kernelspecs")
    assert {k.split(".")[0] for k in specs["data"] if k.endswith(".kernel.json")} == {
        "python_kubernetes",
        "r_kubernetes",
    }
    assert config["EnterpriseGatewayApp"]["default_kernel_name"] == "r_kubernetes"
    assert config["RemoteMappingKernelManager"] == {
        "cull_idle_timeout": 600,
        "cull_interval": 30,
        "cull_connected": True,
        "cull_busy": True,
    }
    assert env_of(container)["EG_KERNEL_LAUNCH_TIMEOUT"] == "300"
    assert config["EnterpriseGatewayApp"]["log_level"] == "DEBUG"
    assert container["image"] == "registry.example/eg:3.3.0-custom"
    assert container["resources"] == {
        "limits": {"cpu": "2", "memory": "2Gi"},
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }
    assert children["RoleBinding"]["roleRef"]["name"] == "my-kernels"
    assert base64.b64decode(children["Secret"]["data"]["token"]).decode() == "users-token"
    namespaces = children["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert namespaces["matchExpressions"][0]["values"] == ["default", "team-a"]


def test_each_culling_knob_appears_exactly_once_and_nowhere_in_the_environment():
    """Bugs #1 (EG_CULL_IDLE_TIMEOUT twice) and #20 (cull_connected not exposed)."""
    result = sync(gateway(cullIdleTimeout=120, cullConnected=True))
    text = config_text(result)
    for knob in ("cull_idle_timeout", "cull_interval", "cull_connected", "cull_busy"):
        assert text.count(f'"{knob}"') == 1
    container = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))
    assert not [n for n in names if n.startswith(("EG_CULL", "EG_LOG", "EG_ALLOWED", "EG_KERNEL_WHITELIST"))]


def test_the_gateway_runs_exactly_the_rendered_configuration():
    """EG ignores EG_CULL_* itself: the command must name the configuration file."""
    deployment = by_kind(sync(gateway())["children"])["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["jupyter", "enterprisegateway", f"--config=/etc/jupyter-gateway/{CONFIG_FILE}"]
    assert "args" not in container
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/jupyter-gateway"] == "config" and mounts["/etc/jupyter-gateway/auth"] == "auth"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"] == {"name": "config", "configMap": {"name": "gw-gateway"}}
    assert volumes["auth"] == {"name": "auth", "secret": {"secretName": "gw-gateway-auth", "defaultMode": 0o440}}
    assert volumes["kernelspecs-source"] == {
        "name": "kernelspecs-source",
        "configMap": {"name": "gw-gateway-kernelspecs"},
    }
    assert pod["serviceAccountName"] == "gw-gateway"


def test_kernel_listing_is_on():
    """Without list_kernels the notebook UI gets 403s."""
    assert config_of(sync(gateway()))["EnterpriseGatewayApp"]["list_kernels"] is True


def test_warning_log_level_of_the_original_maps_to_what_eg_accepts():
    assert config_of(sync(gateway(logLevel="WARNING")))["EnterpriseGatewayApp"]["log_level"] == "WARN"


def test_a_configuration_change_rolls_the_deployment():
    def hash_of(result):
        return by_kind(result["children"])["Deployment"]["spec"]["template"]["metadata"]["annotations"]

    assert hash_of(sync(gateway(cullIdleTimeout=10))) != hash_of(sync(gateway(cullIdleTimeout=20)))
    assert hash_of(sync(gateway(cullIdleTimeout=10))) == hash_of(sync(gateway(cullIdleTimeout=10)))


def test_cluster_role_is_bound_in_the_gateways_namespace_only():
    """Bug #5: spec.clusterRole was a no-op and the RoleBinding hard-coded."""
    result = sync(gateway(namespace="team-a", clusterRole="custom-kernels"))
    binding = by_kind(result["children"])["RoleBinding"]
    assert binding["metadata"]["namespace"] == "team-a"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "custom-kernels",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gw-gateway", "namespace": "team-a"}]
    env = env_of(by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][0])
    assert env["EG_NAMESPACE"] == "team-a" and env["EG_SHARED_NAMESPACE"] == "True"


def test_customize_asks_for_the_cluster_role():
    approved = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "resource": "clusterroles",
        "labelSelector": {"matchLabels": {"kubeflow.tkestack.io/gateway-kernel-role": "true"}},
    }
    assert customize_gateway(gateway(clusterRole="x-kernels")) == {
        "relatedResources": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "resource": "clusterroles", "names": ["x-kernels"]},
            approved,
        ]
    }
    assert customize_gateway(gateway())["relatedResources"][0]["names"] == ["jupyter-gateway-kernels"]
    assert customize_gateway(gateway(clusterRole=7)) == {"relatedResources": [approved]}


@pytest.mark.parametrize(
    ("related", "reason"),
    [({}, "ClusterRoleNotFound"), (kernel_role("cluster-admin", allowed=False), "ClusterRoleNotAllowed")],
)
def test_an_unlabelled_or_missing_cluster_role_is_never_bound(related, reason):
    parent = gateway(clusterRole="cluster-admin")
    first = sync(parent, related=related)
    assert first["children"] == []
    ready = first["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert "spec.clusterRole" in ready["message"]
    # A gateway that already runs keeps its children while its role is refused, but not the
    # RoleBinding: a role that lost its approval (or is gone) is unbound.
    running = observe(sync(gateway())["children"], TYPES)
    unbound = [c for c in sync(gateway())["children"] if c["kind"] != "RoleBinding"]
    assert sync(parent, running, related)["children"] == ordered(unbound)


def test_invalid_spec_keeps_every_child_and_names_the_field():
    desired = sync(gateway())["children"]
    observed = observe(desired, TYPES, AVAILABLE)
    result = sync(gateway(cullIdleTimeout=-5), observed)
    assert result["children"] == ordered(desired)
    ready = result["status"]["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("spec.cullIdleTimeout:")
    assert result["status"]["readyReplicas"] == 1


def test_status_follows_the_deployment_and_keeps_its_transition_time():
    parent = gateway()
    desired = sync(parent)["children"]
    pending = sync(parent, observe(desired, TYPES))["status"]
    assert pending["conditions"][0] | {"message": ""} == {
        "type": "Ready",
        "status": "False",
        "reason": "DeploymentNotAvailable",
        "message": "",
        "lastTransitionTime": NOW,
    }
    parent["status"] = pending
    ready = sync(parent, observe(desired, TYPES, AVAILABLE), now=LATER)["status"]
    assert ready["conditions"][0]["status"] == "True" and ready["conditions"][0]["lastTransitionTime"] == LATER
    parent["status"] = ready
    again = sync(parent, observe(desired, TYPES, AVAILABLE), now="2026-12-01T00:00:00Z")["status"]
    assert again == ready, "a resync must not move timestamps (Metacontroller would loop)"
    assert ready["observedGeneration"] == 1 and ready["replicas"] == 1


def test_an_unchanged_parent_yields_byte_identical_responses():
    parent = gateway(kernels=["b", "a"], defaultKernel="a", kernelProfiles=[{"name": "a"}, {"name": "b"}])
    first = sync(parent)
    observed = observe(first["children"], TYPES, AVAILABLE)
    parent["status"] = sync(parent, observed)["status"]
    one = json.dumps(sync(parent, observed))
    two = json.dumps(sync(parent, observed, now=LATER))
    assert one == two


def test_labels_are_prefixed_and_selectors_never_use_bare_keys():
    """Bug #18 (un-prefixed label keys)."""
    for child in sync(gateway())["children"]:
        keys = set(child["metadata"]["labels"])
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
            "kubeflow.tkestack.io/jupytergateway",
        } <= keys
        assert all("/" in key for key in keys)
    deployment = by_kind(sync(gateway())["children"])["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert all("/" in key for key in selector)
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_probes_and_ports():
    """Bug #12 (no probes) and the kernels' response port on the Service."""
    children = by_kind(sync(gateway())["children"])
    eg, front_door = children["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"startupProbe", "livenessProbe"} <= set(eg)  # on its loopback: exec probes
    assert all("exec" in eg[p] for p in ("startupProbe", "livenessProbe"))
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(front_door)
    assert front_door["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8888}
    assert [p["containerPort"] for p in front_door["ports"]] == [8888]
    assert [p["port"] for p in children["Service"]["spec"]["ports"]] == [8888, 8877]
    assert children["Service"]["spec"]["selector"] == children["Deployment"]["spec"]["selector"]["matchLabels"]


def test_gateway_and_notebook_of_one_name_do_not_collide():
    """Bug #16: a notebook and a gateway named alike both owned Deployment <name>."""
    from hooks.notebook import sync_notebook
    from tests.builders import notebook

    gw_names = {(c["kind"], c["metadata"]["name"]) for c in sync(gateway(name="same"))["children"]}
    nb = sync_notebook(notebook(name="same"), {}, {}, NOW, "t" * 48)
    nb_names = {(c["kind"], c["metadata"]["name"]) for c in nb["children"]}
    assert gw_names.isdisjoint(nb_names)


def test_render_config_is_deterministic_json():
    spec = JupyterGatewaySpec(kernels=["z", "a"], defaultKernel="a", kernelProfiles=[{"name": "z"}, {"name": "a"}])
    assert render_config(spec) == render_config(spec)
    assert json.loads(render_config(spec))["KernelSpecManager"]["whitelist"] == ["a", "z"]


def user_secret(name: str, key: str, token: str, namespace: str = "default") -> dict:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(token.encode()).decode()},
    }
    return {"Secret.v1": {f"{namespace}/{name}": secret}}


def secret_data(result) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in by_kind(result["children"])["Secret"]["data"].items()}


def test_a_token_is_required_by_default_and_generated_once():
    first = sync(gateway())
    data = secret_data(first)
    assert data["token"] == TOKEN
    assert json.loads(data["jupyter_config.json"]) == {"EnterpriseGatewayApp": {"auth_token": TOKEN}}
    assert first["status"]["tokenSecret"] == "gw-gateway-auth"
    container = by_kind(first["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["JUPYTER_CONFIG_PATH"] == "/etc/jupyter-gateway/auth"
    assert TOKEN not in json.dumps(by_kind(first["children"])["Deployment"]), "only the Secret holds it"
    assert TOKEN not in json.dumps(first["status"])
    observed = observe(first["children"], TYPES)
    again = sync_gateway(gateway(), observed, kernel_role(), NOW, "another-random-token")
    assert secret_data(again) == data


def test_auth_none_renders_no_secret_and_no_mount():
    result = sync(gateway(auth={"mode": "none"}))
    assert "Secret" not in by_kind(result["children"])
    container = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "JUPYTER_CONFIG_PATH" not in env_of(container)
    assert not [m for m in container["volumeMounts"] if m["name"] == "auth"]
    assert "tokenSecret" not in result["status"]


def test_a_missing_user_secret_keeps_the_children():
    running = observe(sync(gateway())["children"], TYPES)
    result = sync(gateway(auth={"secretRef": {"name": "nope"}}), running)
    ready = result["status"]["conditions"][0]
    assert ready["reason"] == "AuthSecretNotFound" and ready["message"].startswith("spec.auth.secretRef")
    assert len(result["children"]) == 10


def test_customize_asks_for_the_users_token_secret():
    rules = customize_gateway(gateway(namespace="ml", auth={"secretRef": {"name": "eg-token"}}))["relatedResources"]
    assert rules[1] == {"apiVersion": "v1", "resource": "secrets", "namespace": "ml", "names": ["eg-token"]}


def test_the_network_policy_admits_only_notebooks_of_allowed_namespaces_and_kernels():
    policy = by_kind(sync(gateway(namespace="ml"))["children"])["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "kubeflow.tkestack.io/jupytergateway": "gw",
        "app.kubernetes.io/component": "gateway",
    }
    assert policy["policyTypes"] == ["Ingress"]
    notebooks, kernels = policy["ingress"]
    assert notebooks["ports"] == [{"protocol": "TCP", "port": 8888}]
    assert notebooks["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["ml"]
    assert notebooks["from"][0]["podSelector"]["matchLabels"] == {
        "kubeflow.tkestack.io/gateway-name": "gw",
        "kubeflow.tkestack.io/gateway-namespace": "ml",
    }
    assert kernels == {
        "from": [
            {
                "namespaceSelector": notebooks["from"][0]["namespaceSelector"],
                "podSelector": {
                    "matchLabels": {
                        "app": "enterprise-gateway",
                        "component": "kernel",
                        "kubeflow.tkestack.io/gateway-name": "gw",
                        "kubeflow.tkestack.io/gateway-namespace": "ml",
                    }
                },
            }
        ],
        "ports": [{"protocol": "TCP", "port": 8877}],
    }
    everyone = by_kind(sync(gateway(allowedNamespaces=["*"]))["children"])["NetworkPolicy"]["spec"]
    assert everyone["ingress"][0]["from"][0]["namespaceSelector"] == {}


# --- the front door (hooks/front_door.py) ---------------------------------------------------


def _named(result, kind: str, name: str) -> dict:
    return next(c for c in result["children"] if (c["kind"], c["metadata"]["name"]) == (kind, name))


def test_enterprise_gateway_listens_on_the_pods_loopback_behind_the_front_door():
    result = sync(gateway("gw", "infra", allowedNamespaces=["team-a"]))
    app = config_of(result)["EnterpriseGatewayApp"]
    assert (app["ip"], app["port"]) == ("127.0.0.1", 8889)
    pod = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]
    eg, door = pod["containers"]
    assert door["name"] == "front-door" and door["image"] == eg["image"]
    assert door["command"] == [
        "python",
        "/etc/jupyter-gateway/front-door/front_door.py",
        "/etc/jupyter-gateway/front-door/front_door.json",
    ]
    assert {m["mountPath"] for m in door["volumeMounts"]} == {
        "/etc/jupyter-gateway/front-door",
        "/etc/jupyter-gateway/access",
        "/etc/jupyter-gateway/auth",
        "/var/lib/jupyter-gateway/kernel-ends",
    }
    assert all(m["readOnly"] for m in door["volumeMounts"])
    assert 8888 not in [p["containerPort"] for p in eg["ports"]]
    code = _named(result, "ConfigMap", "gw-gateway-front-door")["data"]
    assert code["front_door.py"] == (ROOT / "hooks" / "front_door.py").read_text(), "shipped verbatim"
    assert code["kernel_notices.py"] == (ROOT / "hooks" / "kernel_notices.py").read_text(), "beside it"
    assert code["kernel_ends.py"] == (ROOT / "hooks" / "kernel_ends.py").read_text(), "beside it"
    assert json.loads(code["front_door.json"]) == {
        "port": 8888,
        "upstream_port": 8889,
        "audience": "kubeflow.tkestack.io/gateway/infra/gw",
        "allowed_namespaces_file": "/etc/jupyter-gateway/access/allowed-namespaces.json",
        "upstream_token_file": "/etc/jupyter-gateway/auth/token",
        "gateway_labels": {
            "kubeflow.tkestack.io/gateway-name": "gw",
            "kubeflow.tkestack.io/gateway-namespace": "infra",
        },
        "review_cache_seconds": 30,
        "request_timeout": 90,
        "kernel_ends_file": "/var/lib/jupyter-gateway/kernel-ends/culled.jsonl",
    }
    access = _named(result, "ConfigMap", "gw-gateway-access")["data"]
    assert json.loads(access["allowed-namespaces.json"]) == ["infra", "team-a"]
    every = sync(gateway("gw", "infra", allowedNamespaces=["*"]))
    assert json.loads(_named(every, "ConfigMap", "gw-gateway-access")["data"]["allowed-namespaces.json"]) == ["*"]


def test_the_kernels_eg_culls_are_journaled_where_only_the_front_door_reads_them():
    """kernel_ends: EG writes the journal into an emptyDir of its own pod, the front door reads it."""
    result = sync(gateway("gw", "infra"))
    pod = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]
    eg, door = pod["containers"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kernel-ends")
    assert volume == {"name": "kernel-ends", "emptyDir": {"sizeLimit": "1Mi"}}
    mounts = {c["name"]: m for c in (eg, door) for m in c["volumeMounts"] if m["name"] == "kernel-ends"}
    assert mounts["gateway"] == {"name": "kernel-ends", "mountPath": "/var/lib/jupyter-gateway/kernel-ends"}
    assert mounts["front-door"]["readOnly"] is True
    assert {"name": "EG_KERNEL_ENDS_FILE", "value": "/var/lib/jupyter-gateway/kernel-ends/culled.jsonl"} in eg["env"]
    assert not [c for c in pod.get("initContainers", []) for m in c["volumeMounts"] if m["name"] == "kernel-ends"]
    specs = _named(result, "ConfigMap", "gw-gateway-kernelspecs")["data"]
    assert specs["kernel_ends.py"] == (ROOT / "hooks" / "kernel_ends.py").read_text(), "beside kernel_metrics.py"


def test_the_token_secret_is_internal_and_labelled_for_no_namespace():
    secret = by_kind(sync(gateway("gw", "infra", allowedNamespaces=["*", "team-a"]))["children"])["Secret"]
    assert not [k for k in secret["metadata"]["labels"] if k.startswith("ns.") or "all-namespaces" in k]


def test_without_a_token_the_front_door_sends_none():
    result = sync(gateway("gw", auth={"mode": "none"}))
    config = json.loads(_named(result, "ConfigMap", "gw-gateway-front-door")["data"]["front_door.json"])
    assert "upstream_token_file" not in config
    door = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][1]
    assert "/etc/jupyter-gateway/auth" not in {m["mountPath"] for m in door["volumeMounts"]}


def test_the_front_door_code_rolls_the_gateway_the_allowed_namespaces_file_alone_would_not():
    template = by_kind(sync(gateway("gw"))["children"])["Deployment"]["spec"]["template"]
    assert "kubeflow.tkestack.io/front-door-hash" in template["metadata"]["annotations"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["access"] == {"name": "access", "configMap": {"name": "gw-gateway-access"}}
    assert not [a for a in template["metadata"]["annotations"] if "access" in a]


def test_the_gateway_runs_our_kernel_manager_and_serves_kernel_metrics_on_its_metrics_port():
    """Kernel starts, refusals and ends by reason (hooks/kernel_metrics.py, on EG's PYTHONPATH)."""
    result = sync(gateway())
    assert config_of(result)["EnterpriseGatewayApp"]["kernel_manager_class"] == "kernel_metrics.MeteredKernelManager"
    container = by_kind(result["children"])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["EG_METRICS_PORT"] == str(ports["metrics"]) == "9102"
    assert env["PYTHONPATH"] == "/etc/jupyter-gateway/python"
