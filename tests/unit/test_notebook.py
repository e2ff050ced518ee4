"""The JupyterNotebook customize and sync hooks, as pure functions."""

import base64
import hashlib
import json

import pytest

from hooks.models import DEFAULT_NOTEBOOK_IMAGE, JupyterNotebookSpec
from hooks.notebook import customize_notebook, sync_notebook
from tests.builders import (
    AVAILABLE,
    GATEWAY_TOKEN,
    LATER,
    NOW,
    ROOT,
    TOKEN,
    by_kind,
    child_types,
    env_of,
    gateway,
    load,
    merged,
    notebook,
    observe,
    related_gateway,
    user_secret,
)

TYPES = child_types("jupyternotebook.yaml")
GW = gateway("gw", "default", kernelLaunchTimeout=120)


def sync(parent, children=None, related=None, now=NOW, token=TOKEN):
    related = related_gateway(GW) if related is None else related
    return sync_notebook(parent, children or {t: {} for t in TYPES}, related, now, token)


def pod_of(result) -> dict:
    return by_kind(result["children"])["Deployment"]["spec"]["template"]


def container_of(result, name="notebook") -> dict:
    return next(c for c in pod_of(result)["spec"]["containers"] if c["name"] == name)


def conditions(result) -> dict:
    return {c["type"]: c for c in result["status"]["conditions"]}


def all_text(result) -> str:
    """Everything a user, `ps` or a log could see: the pod template, env, args and status."""
    return json.dumps([pod_of(result), result["status"]])


def test_the_seed_sample_points_at_its_gateway():
    sample = load("manifests/samples/jupyternotebook-sample.yaml")
    sample["metadata"]["namespace"] = "default"
    gw = load("manifests/samples/jupytergateway-sample.yaml")
    gw["metadata"]["namespace"] = "default"
    result = sync(sample, related=related_gateway(gw))
    assert {c["kind"] for c in result["children"]} == {"Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount"}
    env = env_of(container_of(result))
    assert env["JUPYTER_GATEWAY_URL"] == "http://jupytergateway-sample.default.svc:8888"
    assert env["KERNEL_USERNAME"] == "jupyternotebook-sample"
    assert result["status"]["gatewayUrl"] == "http://jupytergateway-sample.default.svc:8888"
    assert conditions(result)["GatewayReady"]["status"] == "True"
    assert container_of(result)["image"] == DEFAULT_NOTEBOOK_IMAGE


def test_customize_reads_the_gateway_in_its_namespace_or_the_notebooks():
    rule = customize_notebook(notebook(namespace="team-a", gateway={"name": "gw", "namespace": "default"}))
    assert rule == {
        "relatedResources": [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "resource": "clusterroles",
                "labelSelector": {"matchLabels": {"kubeflow.tkestack.io/gateway-kernel-role": "true"}},
            },
            {
                "apiVersion": "kubeflow.tkestack.io/v1alpha1",
                "resource": "jupytergateways",
                "namespace": "default",
                "names": ["gw"],
            },
            {  # its kernel pods, in its own namespace only (status.kernels)
                "apiVersion": "v1",
                "resource": "pods",
                "namespace": "team-a",
                "labelSelector": {
                    "matchLabels": {
                        "component": "kernel",
                        "kubeflow.tkestack.io/notebook": "nb",
                        "kubeflow.tkestack.io/gateway-name": "gw",
                        "kubeflow.tkestack.io/gateway-namespace": "default",
                    }
                },
            },
        ]
    }
    local = customize_notebook(notebook(namespace="team-a", gateway={"name": "gw"}))
    assert local["relatedResources"][1]["namespace"] == "team-a"
    assert customize_notebook(notebook()) == {"relatedResources": []}
    assert customize_notebook(notebook(gateway="gw")) == {"relatedResources": []}


def test_a_gateway_in_another_namespace_uses_a_fully_qualified_url():
    """Bug #11: an empty namespace gave http://<name>.:8888."""
    gw = gateway("shared", "infra", allowedNamespaces=["team-a"])
    result = sync(
        notebook(namespace="team-a", gateway={"name": "shared", "namespace": "infra"}), related=related_gateway(gw)
    )
    assert env_of(container_of(result))["JUPYTER_GATEWAY_URL"] == "http://shared.infra.svc:8888"
    same_ns = sync(notebook(gateway={"name": "gw"}))
    assert env_of(container_of(same_ns))["JUPYTER_GATEWAY_URL"] == "http://gw.default.svc:8888"


def test_launch_timeouts_follow_the_gateway():
    """Bug #19: the client's 40 s default silently overrode the gateway's 60 s."""
    env = env_of(container_of(sync(notebook(gateway={"name": "gw"}))))
    assert env["KERNEL_LAUNCH_TIMEOUT"] == "120"
    assert env["JUPYTER_GATEWAY_REQUEST_TIMEOUT"] == "122"


def test_without_a_gateway_kernels_run_locally():
    result = sync(notebook(), related={})
    env = env_of(container_of(result))
    assert not [name for name in env if name.startswith(("JUPYTER_GATEWAY", "KERNEL_"))]
    assert "GatewayReady" not in conditions(result)
    assert "gatewayUrl" not in result["status"]


def test_a_missing_gateway_keeps_the_children_and_says_so():
    parent = notebook(gateway={"name": "gone"})
    assert sync(parent, related=related_gateway(None))["children"] == []
    running = observe(sync(notebook(gateway={"name": "gw"}))["children"], TYPES)
    result = sync(parent, running, related=related_gateway(None))
    assert len(result["children"]) == 5
    names = {c["metadata"]["name"] for c in result["children"]}
    assert names == {"nb-notebook", "nb-notebook-auth", "nb-notebook-config"}
    assert conditions(result)["GatewayReady"]["reason"] == "GatewayNotFound"
    assert conditions(result)["Ready"]["reason"] == "GatewayNotFound"


def test_a_gateway_that_is_not_ready_makes_the_notebook_not_ready():
    result = sync(notebook(gateway={"name": "gw"}), related=related_gateway(GW, ready=False))
    assert conditions(result)["GatewayReady"]["reason"] == "GatewayNotReady"
    observed = observe(result["children"], TYPES, AVAILABLE)
    result = sync(notebook(gateway={"name": "gw"}), observed, related=related_gateway(GW, ready=False))
    assert conditions(result)["Ready"] | {"lastTransitionTime": ""} == conditions(result)["GatewayReady"] | {
        "type": "Ready",
        "lastTransitionTime": "",
    }
    ready = sync(notebook(gateway={"name": "gw"}), observed)
    assert conditions(ready)["Ready"]["status"] == "True"


def test_the_generated_token_is_kept_once_it_exists():
    first = sync(notebook(), token="first-random-token")
    secret = by_kind(first["children"])["Secret"]
    assert base64.b64decode(secret["data"]["token"]).decode() == "first-random-token"
    observed = observe(first["children"], TYPES)
    for token in ("second", "third"):
        again = sync(notebook(), observed, token=token)
        assert by_kind(again["children"])["Secret"] == secret
    assert first["status"]["tokenSecret"] == "nb-notebook-auth"


def test_no_secret_in_argv_environment_or_status():
    """Bug #9: the token was a command-line argument."""
    spec = {"auth": {"secretRef": {"name": "tok"}, "passwordSecretRef": {"name": "pw"}}}
    related = merged(user_secret("tok", {"token": "user-token-123"}), user_secret("pw", {"password": "hunter2-pass"}))
    for result in (sync(notebook(**spec), related=related), sync(notebook())):
        text = all_text(result)
        for secret in ("user-token-123", "hunter2-pass", TOKEN):
            assert secret not in text
        container = container_of(result)
        assert "args" not in container and "command" not in container
        env = env_of(container)
        assert env["JUPYTER_TOKEN_FILE"] in ("/etc/jupyter-notebook/auth/token", "/etc/jupyter-notebook/token/token")
        assert not {"JUPYTER_TOKEN", "JUPYTER_GATEWAY_AUTH_TOKEN"} & set(env)
        for var in container["env"]:
            assert "valueFrom" not in var, "not even a secretKeyRef: Jupyter Server logs its environment"


def test_a_password_from_a_secret_reaches_the_config_file_as_a_hash():
    spec = {"auth": {"passwordSecretRef": {"name": "pw", "key": "pass"}}}
    result = sync(notebook(**spec), related=user_secret("pw", {"pass": "hunter2-pass"}))
    data = by_kind(result["children"])["Secret"]["data"]
    assert base64.b64decode(data["token"]).decode() == TOKEN
    assert customize_notebook(notebook(**spec))["relatedResources"] == [
        {"apiVersion": "v1", "resource": "secrets", "namespace": "default", "names": ["pw"]}
    ]
    config = json.loads(base64.b64decode(data["jupyter_server_config.json"]))
    algorithm, salt, digest = config["PasswordIdentityProvider"]["hashed_password"].split(":")
    assert algorithm == "sha256" and hashlib.sha256(("hunter2-pass" + salt).encode()).hexdigest() == digest
    assert env_of(container_of(result))["JUPYTER_CONFIG_PATH"] == "/etc/jupyter-notebook/auth"
    volume = pod_of(result)["spec"]["volumes"][-1]
    assert volume == {
        "name": "jupyter-notebook-auth",
        "secret": {"secretName": "nb-notebook-auth", "defaultMode": 0o440},
    }


def test_a_password_hash_is_used_as_given():
    hashed = "argon2:$argon2id$v=19$m=10240,t=10,p=8$abc$def"
    result = sync(notebook(auth={"passwordSecretRef": {"name": "pw"}}), related=user_secret("pw", {"password": hashed}))
    config = json.loads(base64.b64decode(by_kind(result["children"])["Secret"]["data"]["jupyter_server_config.json"]))
    assert config["PasswordIdentityProvider"]["hashed_password"] == hashed


def test_a_secret_ref_is_mounted_and_no_secret_is_generated():
    result = sync(notebook(auth={"secretRef": {"name": "my-token", "key": "tok"}}))
    assert "Secret" not in by_kind(result["children"])
    volume = pod_of(result)["spec"]["volumes"][-1]
    assert volume["secret"] == {
        "secretName": "my-token",
        "defaultMode": 0o440,
        "items": [{"key": "tok", "path": "token"}],
    }
    assert result["status"]["tokenSecret"] == "my-token"


def test_auth_disabled_writes_an_empty_token():
    result = sync(notebook(auth={"mode": "disable"}))
    assert by_kind(result["children"])["Secret"]["data"] == {"token": ""}


def test_new_secret_content_restarts_the_server_and_no_hash_of_it_is_published():
    spec = {"auth": {"passwordSecretRef": {"name": "pw"}}}

    def synced(password, children=None):
        return sync(notebook(**spec), children, related=user_secret("pw", {"password": password}))

    first = synced("aaaaaaaa")
    generation = pod_of(first)["metadata"]["annotations"]["kubeflow.tkestack.io/auth-generation"]
    assert generation == "1"
    running = observe(first["children"], TYPES)
    assert synced("aaaaaaaa", running)["children"] == first["children"], "unchanged content: identical"
    changed = synced("bbbbbbbb", running)
    assert pod_of(changed)["metadata"]["annotations"]["kubeflow.tkestack.io/auth-generation"] == "2"
    assert "kubeflow.tkestack.io/auth-hash" not in all_text(changed)


USER_TEMPLATE = {
    "metadata": {
        "labels": {"team": "ml", "kubeflow.tkestack.io/jupyternotebook": "hijack"},
        "annotations": {"note": "x"},
    },
    "spec": {
        "containers": [
            {"name": "sidecar", "image": "busybox", "command": ["sleep", "inf"]},
            {
                "name": "notebook",
                "image": "my/lab:1",
                "command": ["jupyter", "lab"],
                "args": ["--ServerApp.base_url=/", "--no-browser"],
                "env": [{"name": "KERNEL_USERNAME", "value": "alice"}, {"name": "EMPTY", "value": ""}],
                "resources": {"limits": {"cpu": 2, "memory": "4096Mi"}},
            },
        ],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}],
    },
}


def test_a_users_template_is_kept_and_only_augmented():
    """Bugs #13 (template labels broke the selector) and #15 (args appended to containers[0])."""
    result = sync(notebook(gateway={"name": "gw"}, template=USER_TEMPLATE))
    pod = pod_of(result)
    container = container_of(result)
    assert container["command"] == ["jupyter", "lab"]
    assert container["args"] == ["--ServerApp.base_url=/", "--no-browser"]
    env = env_of(container)
    assert env["KERNEL_USERNAME"] == "alice", "a user's own value wins"
    assert env["JUPYTER_GATEWAY_URL"] == "http://gw.default.svc:8888"
    assert {"name": "EMPTY"} in container["env"], "an empty value is dropped as the API server does"
    assert container["resources"] == {"limits": {"cpu": "2", "memory": "4Gi"}}
    sidecar = container_of(result, "sidecar")
    assert sidecar["command"] == ["sleep", "inf"] and "env" not in sidecar
    assert pod["metadata"]["labels"]["team"] == "ml"
    selector = by_kind(result["children"])["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["annotations"]["note"] == "x"
    assert pod["spec"]["volumes"][0]["name"] == "home"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"securityContext": {"runAsUser": 0}}, "spec.template.spec.securityContext.runAsUser"),
        ({"hostNetwork": True}, "spec.template.spec.hostNetwork"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "spec.template.spec.volumes[0].hostPath"),
        (
            {"containers": [{"name": "notebook", "image": "x", "securityContext": {"privileged": True}}]},
            "spec.template.spec.containers[0].securityContext.privileged",
        ),
        (
            {"containers": [{"name": "notebook", "image": "x", "env": [{"name": "JUPYTER_TOKEN", "value": "t"}]}]},
            "spec.template.spec.containers[0].env[0]",
        ),
        (
            {"containers": [{"name": "notebook", "image": "x", "resources": {"requests": {"cpu": "lots"}}}]},
            "spec.template.spec.containers[0].resources",
        ),
    ],
)
def test_a_template_breaking_the_rules_is_refused_and_the_children_kept(patch, field):
    template = {"spec": {"containers": [{"name": "notebook", "image": "x"}], **patch}}
    running = observe(sync(notebook())["children"], TYPES)
    result = sync(notebook(template=template), running)
    ready = conditions(result)["Ready"]
    assert ready["reason"] == "InvalidSpec"
    assert field in ready["message"]
    assert len(result["children"]) == 3


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"gateway": {"name": "Bad_Name"}}, "spec.gateway.name"),
        ({"auth": {"mode": "maybe"}}, "spec.auth.mode"),
        ({"auth": {"mode": "disable", "token": "abcdefgh"}}, "spec.auth"),
        ({"auth": {"token": "abcdefgh", "secretRef": {"name": "s"}}}, "spec.auth"),
        ({"template": {"spec": {"containers": []}}}, "spec.template.spec.containers"),
        ({"unknown": 1}, "spec.unknown"),
    ],
)
def test_an_invalid_spec_names_the_field(spec, field):
    result = sync(notebook(**spec))
    ready = conditions(result)["Ready"]
    assert (ready["reason"], ready["status"]) == ("InvalidSpec", "False")
    assert ready["message"].startswith(field)
    assert result["children"] == []


def test_the_default_pod_passes_restricted_and_reaches_no_kubernetes_api():
    pod = pod_of(sync(notebook(gateway={"name": "gw"})))["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_the_notebook_gets_a_service_and_a_readiness_probe():
    """Bug #12: no Service and no probes."""
    children = by_kind(sync(notebook())["children"])
    assert children["Service"]["metadata"]["name"] == "nb-notebook"
    assert children["Service"]["spec"]["ports"][0]["port"] == 8888
    assert children["Deployment"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"] == {
        "path": "/api",
        "port": 8888,
    }


def test_status_holds_no_changing_timestamp():
    parent = notebook(gateway={"name": "gw"})
    result = sync(parent)
    observed = observe(result["children"], TYPES, AVAILABLE)
    parent["status"] = sync(parent, observed)["status"]
    assert json.dumps(sync(parent, observed)) == json.dumps(sync(parent, observed, now=LATER))


def test_every_spec_field_is_covered():
    assert {f.alias for f in JupyterNotebookSpec.model_fields.values()} == {
        "gateway",
        "auth",
        "template",
        "kernelResources",
        "suspend",
        "workspace",
    }


def test_kernel_resources_reach_the_gateway_as_kernel_variables_not_the_notebook_pod():
    spec = {
        "gateway": {"name": "gw"},
        "kernelResources": {
            "requests": {"cpu": "0.5", "memory": "4096Mi", "nvidia.com/gpu": 1},
            "limits": {"cpu": 2, "memory": "8Gi", "nvidia.com/gpu": "1"},
        },
    }
    result = sync(notebook(**spec))
    env = env_of(container_of(result))
    assert {k: v for k, v in env.items() if k.startswith(("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS"))} == {
        "KERNEL_CPUS": "500m",
        "KERNEL_MEMORY": "4Gi",
        "KERNEL_GPUS": "1",
        "KERNEL_CPUS_LIMIT": "2",
        "KERNEL_MEMORY_LIMIT": "8Gi",
        "KERNEL_GPUS_LIMIT": "1",
    }
    assert env["KERNEL_USERNAME"] == "nb"
    assert "nvidia.com/gpu" not in json.dumps(pod_of(result)["spec"]), "the notebook pod holds no GPU"


def test_only_the_given_kernel_resources_are_set():
    env = env_of(container_of(sync(notebook(gateway={"name": "gw"}, kernelResources={"limits": {"memory": "1Gi"}}))))
    assert [k for k in env if k.startswith(("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS"))] == ["KERNEL_MEMORY_LIMIT"]


def test_kernel_resources_without_a_gateway_are_refused():
    result = sync(notebook(kernelResources={"requests": {"cpu": 1}}), related={})
    assert conditions(result)["Ready"]["reason"] == "InvalidSpec"
    assert "kernelResources need a gateway" in conditions(result)["Ready"]["message"]


def test_suspend_scales_to_zero_and_keeps_the_service_and_secret():
    running = sync(notebook(gateway={"name": "gw"}))
    observed = observe(running["children"], TYPES, AVAILABLE)
    suspended = sync(notebook(gateway={"name": "gw"}, suspend=True), observed)
    children = by_kind(suspended["children"])
    assert children["Deployment"]["spec"]["replicas"] == 0
    assert children["Service"] == by_kind(running["children"])["Service"]
    assert children["Secret"] == by_kind(running["children"])["Secret"]
    assert conditions(suspended)["Suspended"]["status"] == "True"
    assert (conditions(suspended)["Ready"]["status"], conditions(suspended)["Ready"]["reason"]) == (
        "False",
        "Suspended",
    )
    resumed = sync(notebook(gateway={"name": "gw"}, suspend=False), observed)
    assert by_kind(resumed["children"])["Deployment"]["spec"]["replicas"] == 1
    assert conditions(resumed)["Suspended"]["status"] == "False"


def test_no_gateway_secret_reaches_the_notebook_it_presents_its_own_service_account_token():
    result = sync(notebook(gateway={"name": "gw"}))
    children = by_kind(result["children"])
    assert "jupyter_server_config.json" not in children["Secret"]["data"]
    assert GATEWAY_TOKEN not in all_text(result)
    assert children["ServiceAccount"] == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "nb-notebook", "namespace": "default", "labels": children["Secret"]["metadata"]["labels"]},
        "automountServiceAccountToken": False,
    }
    pod = pod_of(result)["spec"]
    assert pod["serviceAccountName"] == "nb-notebook"
    assert pod["automountServiceAccountToken"] is False
    volume = next(v for v in pod["volumes"] if v["name"] == "jupyter-gateway-token")
    assert volume["projected"]["sources"] == [
        {
            "serviceAccountToken": {
                "audience": "kubeflow.tkestack.io/gateway/default/gw",
                "expirationSeconds": 3600,
                "path": "token",
            }
        }
    ]
    mount = next(m for m in container_of(result)["volumeMounts"] if m["name"] == "jupyter-gateway-token")
    assert mount == {
        "name": "jupyter-gateway-token",
        "mountPath": "/var/run/secrets/kubeflow.tkestack.io/gateway",
        "readOnly": True,
    }
    env = env_of(container_of(result))
    assert env["JUPYTER_GATEWAY_TOKEN_FILE"] == "/var/run/secrets/kubeflow.tkestack.io/gateway/token"
    assert env["JUPYTER_CONFIG_PATH"] == "/etc/jupyter-notebook/server"  # no secret config file any more
    labels = pod_of(result)["metadata"]["labels"]
    assert labels["kubeflow.tkestack.io/gateway-name"] == "gw"
    assert labels["kubeflow.tkestack.io/gateway-namespace"] == "default"


def test_a_notebook_without_a_gateway_has_no_service_account_or_token_volume():
    result = sync(notebook())
    assert "ServiceAccount" not in by_kind(result["children"])
    assert "serviceAccountName" not in pod_of(result)["spec"]
    assert "JUPYTER_GATEWAY_TOKEN_FILE" not in env_of(container_of(result))


@pytest.mark.parametrize("field", ["serviceAccountName", "serviceAccount"])
def test_a_template_naming_another_service_account_is_refused_with_a_gateway(field):
    template = {"spec": {field: "builder", "containers": [{"name": "notebook", "image": "img"}]}}
    result = sync(notebook(gateway={"name": "gw"}, template=template))
    ready = conditions(result)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert f"spec.template.spec.{field}" in ready["message"] and "nb-notebook" in ready["message"]
    own = {"spec": {field: "nb-notebook", "containers": [{"name": "notebook", "image": "img"}]}}
    assert conditions(sync(notebook(gateway={"name": "gw"}, template=own)))["Ready"]["reason"] != "InvalidSpec"
    assert conditions(sync(notebook(template=template)))["Ready"]["reason"] != "InvalidSpec"


def test_a_gateway_without_auth_is_used_the_same_way():
    open_gateway = gateway("gw", auth={"mode": "none"})
    result = sync(notebook(gateway={"name": "gw"}), related=related_gateway(open_gateway, token=None))
    assert "jupyter_server_config.json" not in by_kind(result["children"])["Secret"]["data"]
    assert env_of(container_of(result))["JUPYTER_GATEWAY_TOKEN_FILE"]
    assert pod_of(result)["spec"]["serviceAccountName"] == "nb-notebook"


def test_a_namespace_the_gateway_does_not_allow_gets_no_children_and_says_so():
    gw = gateway("shared", "infra", allowedNamespaces=["team-b"])
    parent = notebook(namespace="team-a", gateway={"name": "shared", "namespace": "infra"})
    result = sync(parent, related=related_gateway(gw))
    assert result["children"] == []
    assert conditions(result)["GatewayReady"]["reason"] == "NamespaceNotAllowed"
    assert "team-a" in conditions(result)["GatewayReady"]["message"]
    everyone = sync(parent, related=related_gateway(gateway("shared", "infra", allowedNamespaces=["*"])))
    kinds = {c["kind"] for c in everyone["children"]}
    assert kinds == {"Deployment", "Service", "Secret", "ConfigMap", "RoleBinding", "ServiceAccount"}


def test_the_gateways_token_secret_is_not_needed():
    result = sync(notebook(gateway={"name": "gw"}), related=related_gateway(GW, token=None))
    assert conditions(result)["GatewayReady"]["reason"] == "GatewayReady"
    assert {c["kind"] for c in result["children"]} >= {"Deployment", "ServiceAccount"}


def test_the_gateways_token_changing_does_not_restart_the_notebook():
    first = sync(notebook(gateway={"name": "gw"}), related=related_gateway(GW, token="one-token-aaaa"))
    running = observe(first["children"], TYPES)
    new = sync(notebook(gateway={"name": "gw"}), running, related=related_gateway(GW, token="two-token-bbbb"))
    assert pod_of(new) == pod_of(first)


# --- JupyterLab's kernel websocket through a gateway (hooks/notebook_config.py) ----------------


def test_a_notebook_on_a_gateway_gets_the_server_config_that_speaks_lab_kernel_protocol():
    from hooks import notebook_config

    result = sync(notebook(gateway={"name": "gw"}))
    config_map = by_kind(result["children"])["ConfigMap"]
    labels = by_kind(result["children"])["Secret"]["metadata"]["labels"]
    assert config_map["metadata"] == {"name": "nb-notebook-config", "namespace": "default", "labels": labels}
    source = (ROOT / "hooks" / "jupyter_server_config.py").read_text()
    assert config_map["data"] == {"jupyter_server_config.py": source}, "the file is shipped verbatim"
    compile(source, "jupyter_server_config.py", "exec")
    assert "c.ServerApp.kernel_websocket_connection_class = V1GatewayWebSocketConnection" in source
    volume = next(v for v in pod_of(result)["spec"]["volumes"] if v["name"] == "jupyter-notebook-config")
    assert volume == {
        "name": "jupyter-notebook-config",
        "configMap": {"name": "nb-notebook-config", "defaultMode": 0o444},
    }
    mounts = container_of(result)["volumeMounts"]
    assert {"name": "jupyter-notebook-config", "mountPath": notebook_config.CONFIG_DIR, "readOnly": True} in mounts
    assert env_of(container_of(result))["JUPYTER_CONFIG_PATH"].split(":")[0] == notebook_config.CONFIG_DIR


def test_without_a_gateway_the_server_keeps_its_own_kernel_connection():
    result = sync(notebook(), related={})
    assert "ConfigMap" not in by_kind(result["children"])
    assert "jupyter-notebook-config" not in {v["name"] for v in pod_of(result)["spec"]["volumes"]}
    assert env_of(container_of(result)).get("JUPYTER_CONFIG_PATH") in (None, "/etc/jupyter-notebook/auth")


def test_the_server_config_volume_name_is_reserved():
    template = {"spec": {"containers": [{"name": "notebook", "image": "img"}],
                         "volumes": [{"name": "jupyter-notebook-config", "emptyDir": {}}]}}  # fmt: skip
    result = sync(notebook(gateway={"name": "gw"}, template=template))
    assert conditions(result)["Ready"]["reason"] == "InvalidSpec"
    assert "jupyter-notebook-config is reserved" in conditions(result)["Ready"]["message"]
    assert result["children"] == []


def test_the_server_config_is_the_same_on_every_sync():
    first = sync(notebook(gateway={"name": "gw"}))
    again = sync(notebook(gateway={"name": "gw"}), observe(first["children"], TYPES), now=LATER)
    assert json.dumps(first["children"], sort_keys=True) == json.dumps(again["children"], sort_keys=True)
