"""Kernel pods: the guard, the pod template as Enterprise Gateway's launcher renders it, and
the kernelspecs the gateway serves.

The template is rendered by the real ``yaml_safe_str`` and ``generate_kernel_pod_yaml`` of
launch_kubernetes.py from the jupyter_enterprise_gateway 3.3.0 sdist (tests/eg_launcher.py),
with hostile client values, with and without the guard in front of it; every pod it yields
is checked against the OpenAPI schema and the restricted Pod Security Standard.
"""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks import kernel_guard as guard
from hooks import kernelspecs
from hooks.gateway import sync_gateway
from hooks.kernelspecs import DEFAULT_PROFILE, WORKSPACE_DIR
from hooks.podsecurity import violations
from tests import eg_launcher
from tests.builders import NOW, TOKEN, gateway, kernel_role

KERNEL_ID = "0f0e0d0c-0b0a-4009-8807-060504030201"
GPU_PROFILE = {
    "name": "python_gpu",
    "displayName": "Python with a GPU",
    "image": "elyra/kernel-tf-gpu-py:3.3.0",
    "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
    "maxResources": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 2},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "kernels-preemptible",
}
PARENT = gateway(
    "gw",
    "gateways",
    allowedNamespaces=["team-a"],
    kernelProfiles=[DEFAULT_PROFILE.model_dump(by_alias=True, exclude_none=True), GPU_PROFILE],
)


def kernelspec_data(parent=PARENT) -> dict:
    children = sync_gateway(parent, {}, kernel_role(), NOW, TOKEN)["children"]
    return next(c for c in children if c["metadata"]["name"].endswith("-gateway-kernelspecs"))["data"]


DATA = kernelspec_data()


def policy(profile="python_kubernetes") -> dict:
    return json.loads(DATA[f"{profile}.policy.json"])


def client_env(**extra) -> dict:
    """What Enterprise Gateway hands the kernelspec's argv for a Jupyter Server client."""
    env = {
        "KERNEL_ID": KERNEL_ID,
        "KERNEL_POD_NAME": f"alice-{KERNEL_ID}",
        "KERNEL_NAMESPACE": "team-a",
        "KERNEL_USERNAME": "alice",
        "KERNEL_NOTEBOOK": "alice",
        # set by EG itself (container.py, k8s.py), never used by our template
        "KERNEL_IMAGE": "elyra/kernel-py:3.3.0",
        "KERNEL_EXECUTOR_IMAGE": "elyra/kernel-py:3.3.0",
        "KERNEL_SERVICE_ACCOUNT_NAME": "default",
        "KERNEL_UID": "1000",
        "KERNEL_GID": "100",
    }
    env.update(extra)
    return env


def launch(env: dict, profile="python_kubernetes") -> dict:
    """The pod launch_kubernetes.py would create once the guard let ``env`` through."""
    checked = guard.checked_env(env, policy(profile))
    docs = eg_launcher.render_pod(DATA[f"{profile}.kernel-pod.yaml.j2"], checked)
    assert [d["kind"] for d in docs] == ["Pod"]
    return docs[0]


def test_the_default_pod_is_restricted_unprivileged_and_steered_by_nobody(psacheck):
    pod = launch(client_env())
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "team-a" and pod["metadata"]["name"] == f"alice-{KERNEL_ID}"
    assert pod["metadata"]["labels"]["kernel_id"] == KERNEL_ID
    assert pod["metadata"]["labels"]["component"] == "kernel"
    assert pod["metadata"]["labels"]["kubeflow.tkestack.io/gateway-name"] == "gw"
    assert spec["serviceAccountName"] == "default" and spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]
    container = spec["containers"][0]
    assert container["image"] == "elyra/kernel-py:3.3.0"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
    assert violations(spec) == []
    assert psacheck({"kernel": spec}) == {"kernel": ""}
    kubernetes_validate.validate(pod, "1.36.0", strict=True)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KERNEL_SERVICE_ACCOUNT_NAME", "gw-gateway"),
        ("KERNEL_IMAGE", "evil/miner:latest"),
        ("KERNEL_UID", "0"),
        ("KERNEL_GID", "0"),
        ("KERNEL_EXECUTOR_IMAGE", "evil/miner:latest"),
    ],
)
def test_a_client_cannot_choose_service_account_image_or_user(variable, value):
    """Enterprise Gateway sets these itself, so the guard leaves them out, whoever sent them."""
    pod = launch(client_env(**{variable: value}))
    text = json.dumps(pod)
    assert len(value) < 3 or value not in text
    assert "hostPath" not in text
    assert pod["spec"]["serviceAccountName"] == "default"
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    assert variable not in {e["name"] for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KERNEL_VOLUMES", "[{name: host, hostPath: {path: /}}]"),
        ("KERNEL_VOLUME_MOUNTS", "[{name: host, mountPath: /h}]"),
    ],
)
def test_a_client_asking_for_volumes_is_refused(variable, value):
    with pytest.raises(guard.Refused, match=f"'{variable}' is not a kernel variable this gateway takes"):
        launch(client_env(**{variable: value}))


HOSTILE = "x\n  hostPath:\n    path: /\nspec:\n  hostNetwork: true"


# Every client variable the pod template uses (the guard checks each), and one it does not.
TEMPLATE_VARIABLES = [
    "KERNEL_POD_NAME",
    "KERNEL_NAMESPACE",
    "KERNEL_NOTEBOOK",
    "KERNEL_WORKSPACE_CLAIM",
    "KERNEL_CPUS",
    "KERNEL_MEMORY",
    "KERNEL_GPUS",
    "KERNEL_CPUS_LIMIT",
    "KERNEL_MEMORY_LIMIT",
    "KERNEL_GPUS_LIMIT",
]


@pytest.mark.parametrize("variable", [*TEMPLATE_VARIABLES, "KERNEL_ID"])
def test_hostile_values_are_refused_by_the_guard(variable):
    with pytest.raises(guard.Refused, match=variable):
        guard.checked_env(client_env(**{"KERNEL_WORKSPACE_CLAIM": "alice-workspace", variable: HOSTILE}), policy())


@pytest.mark.parametrize("variable", [*TEMPLATE_VARIABLES, "KERNEL_WORKING_DIR", "KERNEL_USERNAME"])
def test_without_the_guard_the_template_still_adds_no_field(variable):
    """Defence in depth: every client value the template uses is a quoted YAML scalar."""
    env = client_env(KERNEL_WORKSPACE_CLAIM="c", KERNEL_WORKSPACE_ACCESS_MODE="ReadWriteOnce", KERNEL_CPUS="1")
    env[variable] = HOSTILE
    pod = eg_launcher.render_pod(DATA["python_kubernetes.kernel-pod.yaml.j2"], env)[0]
    spec = pod["spec"]
    assert "hostNetwork" not in spec
    assert spec["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": env["KERNEL_WORKSPACE_CLAIM"]}}
    ]
    assert set(spec) == {
        "restartPolicy",
        "serviceAccountName",
        "automountServiceAccountToken",
        "securityContext",
        "affinity",
        "volumes",
        "containers",
    }
    if variable != "KERNEL_USERNAME":  # not used by the template
        assert HOSTILE in strings(pod), "carried as one plain string"


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_namespaces_are_the_gateways_and_the_allowed_ones():
    assert guard.checked_env(client_env(KERNEL_NAMESPACE="gateways"), policy())["KERNEL_NAMESPACE"] == "gateways"
    with pytest.raises(guard.Refused, match="KERNEL_NAMESPACE='kube-system': this gateway runs kernels only in"):
        guard.checked_env(client_env(KERNEL_NAMESPACE="kube-system"), policy())
    everyone = {**policy(), "allowedNamespaces": ["*"]}
    assert guard.checked_env(client_env(KERNEL_NAMESPACE="kube-system"), everyone)["KERNEL_NAMESPACE"] == "kube-system"
    with pytest.raises(guard.Refused, match="KERNEL_NAMESPACE"):
        guard.checked_env({k: v for k, v in client_env().items() if k != "KERNEL_NAMESPACE"}, everyone)


def test_resources_up_to_the_profiles_maximum():
    pod = launch(client_env(KERNEL_CPUS="2", KERNEL_MEMORY="4Gi"))
    # a request above the default limit raises that limit
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    low = launch(client_env(KERNEL_MEMORY_LIMIT="256Mi"))["spec"]["containers"][0]["resources"]
    assert low["requests"]["memory"] == "256Mi" and low["limits"]["memory"] == "256Mi"
    with pytest.raises(guard.Refused, match=r"KERNEL_CPUS=5 is more than this kernel profile allows \(cpu at most 4\)"):
        guard.checked_env(client_env(KERNEL_CPUS="5"), policy())
    with pytest.raises(guard.Refused, match="KERNEL_MEMORY_LIMIT=9Gi is more"):
        guard.checked_env(client_env(KERNEL_MEMORY_LIMIT="9Gi"), policy())
    with pytest.raises(guard.Refused, match="request 2 exceeds its limit 1"):
        guard.checked_env(client_env(KERNEL_CPUS="2", KERNEL_CPUS_LIMIT="1"), policy())
    with pytest.raises(guard.Refused, match="not a Kubernetes quantity"):
        guard.checked_env(client_env(KERNEL_MEMORY="-1Gi"), policy())


def test_no_gpu_unless_the_profile_allows_one():
    with pytest.raises(guard.Refused, match=r"KERNEL_GPUS=1 is more than this kernel profile allows"):
        guard.checked_env(client_env(KERNEL_GPUS="1"), policy())


def test_a_gpu_kernel_requests_its_gpu_on_gpu_nodes(psacheck):
    pod = launch(client_env(KERNEL_GPUS="1"), "python_gpu")
    spec = pod["spec"]
    assert spec["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    assert spec["containers"][0]["image"] == "elyra/kernel-tf-gpu-py:3.3.0"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["priorityClassName"] == "kernels-preemptible"
    assert psacheck({"gpu": spec}) == {"gpu": ""}
    kubernetes_validate.validate(pod, "1.36.0", strict=True)
    with pytest.raises(guard.Refused, match="KERNEL_GPUS=3 is more"):
        guard.checked_env(client_env(KERNEL_GPUS="3"), policy("python_gpu"))
    with pytest.raises(guard.Refused, match="must be equal"):
        guard.checked_env(client_env(KERNEL_GPUS="1", KERNEL_GPUS_LIMIT="2"), policy("python_gpu"))


def test_the_workspace_is_mounted_where_the_notebook_has_it_and_the_kernel_starts_there(psacheck):
    env = client_env(
        KERNEL_WORKSPACE_CLAIM="alice-workspace",
        KERNEL_WORKSPACE_ACCESS_MODE="ReadWriteOnce",
        KERNEL_WORKING_DIR=f"{WORKSPACE_DIR}/project",
    )
    pod = launch(env)
    spec = pod["spec"]
    assert spec["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": "alice-workspace"}}]
    container = spec["containers"][0]
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": WORKSPACE_DIR}]
    assert container["workingDir"] == f"{WORKSPACE_DIR}/project"
    assert spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {
                "matchLabels": {
                    "kubeflow.tkestack.io/jupyternotebook": "alice",
                    "app.kubernetes.io/component": "notebook",
                }
            },
        }
    ]
    assert psacheck({"ws": spec}) == {"ws": ""}
    kubernetes_validate.validate(pod, "1.36.0", strict=True)
    shared = launch({**env, "KERNEL_WORKSPACE_ACCESS_MODE": "ReadWriteMany"})
    assert "affinity" not in shared["spec"]
    for outside in ("/etc", f"{WORKSPACE_DIR}/../..", "relative/dir", f"{WORKSPACE_DIR}x"):
        assert launch({**env, "KERNEL_WORKING_DIR": outside})["spec"]["containers"][0]["workingDir"] == WORKSPACE_DIR
    with pytest.raises(guard.Refused, match="KERNEL_WORKSPACE_ACCESS_MODE"):
        guard.checked_env({**env, "KERNEL_WORKSPACE_ACCESS_MODE": "ReadOnlyMany"}, policy())


def test_the_gateway_containers_environment_stays_out_of_the_kernel_pod():
    """A request without "env" hands the launcher the gateway's whole environment."""
    env = client_env(JUPYTER_DATA_DIR="/var/lib/jupyter-gateway/state/data", JUPYTER_CONFIG_PATH="/etc/x", LANG="C")
    env.update(PATH="/opt/conda/bin", HOME="/home/jovyan", PYTHONPATH="/etc/jupyter-gateway/python", EG_NAMESPACE="gw")
    pod = launch(env)
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert not names & {"JUPYTER_DATA_DIR", "JUPYTER_CONFIG_PATH", "LANG", "PATH", "HOME", "PYTHONPATH", "EG_NAMESPACE"}


def test_without_a_workspace_there_is_no_working_directory():
    pod = launch(client_env(KERNEL_WORKING_DIR="/home/jovyan/work/x"))
    assert "workingDir" not in pod["spec"]["containers"][0]


CLIENT_VARIABLES = [
    *TEMPLATE_VARIABLES,
    "KERNEL_WORKSPACE_ACCESS_MODE",
    "KERNEL_WORKING_DIR",
    "KERNEL_USERNAME",
    "KERNEL_VOLUMES",
    "KERNEL_IMAGE",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(CLIENT_VARIABLES),
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(["1", "500m", "4Gi", "team-a", "gateways", "alice", "ReadWriteMany", WORKSPACE_DIR]),
        ),
        max_size=6,
    ),
    st.sampled_from(["python_kubernetes", "python_gpu"]),
)
def test_whatever_a_client_sends_is_refused_or_yields_a_restricted_pod_of_the_profile(extra, profile):
    env = client_env(KERNEL_WORKSPACE_CLAIM="alice-workspace")
    env.update(extra)
    try:
        checked = guard.checked_env(env, policy(profile))
    except guard.Refused:
        return
    docs = eg_launcher.render_pod(DATA[f"{profile}.kernel-pod.yaml.j2"], checked)
    assert [d["kind"] for d in docs] == ["Pod"]
    spec = docs[0]["spec"]
    assert violations(spec) == []
    assert spec["serviceAccountName"] == "default" and spec["automountServiceAccountToken"] is False
    assert (
        spec["containers"][0]["image"]
        == json.loads(DATA[f"{profile}.kernel.json"])["metadata"]["process_proxy"]["config"]["image_name"]
    )
    assert docs[0]["metadata"]["namespace"] in ("gateways", "team-a")
    assert all(set(v) <= {"name", "persistentVolumeClaim"} for v in spec.get("volumes", []))
    kubernetes_validate.validate(docs[0], "1.36.0", strict=True)


def test_kernel_json_runs_the_guard_then_the_stock_launcher_with_the_kubernetes_process_proxy():
    spec = json.loads(DATA["python_kubernetes.kernel.json"])
    assert spec["argv"][:4] == [
        "python",
        "{resource_dir}/scripts/kernel_guard.py",
        "{resource_dir}/scripts/policy.json",
        "{resource_dir}/scripts/launch_kubernetes.py",
    ]
    assert (
        spec["argv"][4:]
        == json.loads((eg_launcher.sdist() / "etc/kernelspecs/python_kubernetes/kernel.json").read_text())["argv"][2:]
    ), "the launcher gets the stock kernelspec's arguments"
    stock = json.loads((eg_launcher.sdist() / "etc/kernelspecs/python_kubernetes/kernel.json").read_text())
    assert stock["metadata"]["process_proxy"]["class_name"] == kernelspecs.STOCK_PROCESS_PROXY
    assert spec["metadata"]["process_proxy"]["class_name"] == "kernel_proxy.ReasonedKubernetesProcessProxy"
    assert spec["metadata"]["process_proxy"]["config"] == {"image_name": "elyra/kernel-py:3.3.0"}
    assert json.loads(DATA["python_gpu.kernel.json"])["display_name"] == "Python with a GPU"


def test_the_shipped_guard_is_this_module_and_the_install_script_lays_out_every_profile(tmp_path):
    import subprocess
    from pathlib import Path

    assert DATA["kernel_guard.py"] == Path(guard.__file__).read_text()
    source, dest = tmp_path / "cm", tmp_path / "kernels"
    source.mkdir()
    for key, value in DATA.items():
        (source / key).write_text(value)
    launcher = eg_launcher.sdist() / eg_launcher.LAUNCHER
    subprocess.run(
        ["/bin/sh", "-c", kernelspecs.INSTALL_SCRIPT, "install", str(source), str(dest), str(launcher)], check=True
    )
    for profile in ("python_kubernetes", "python_gpu"):
        scripts = dest / profile / "scripts"
        assert json.loads((dest / profile / "kernel.json").read_text()) == json.loads(DATA[f"{profile}.kernel.json"])
        assert sorted(p.name for p in scripts.iterdir()) == [
            "kernel-pod.yaml.j2",
            "kernel_guard.py",
            "launch_kubernetes.py",
            "policy.json",
        ]
        assert (scripts / "launch_kubernetes.py").read_text() == launcher.read_text()
    assert sorted(p.name for p in dest.iterdir()) == ["python_gpu", "python_kubernetes"]


def test_a_profile_whose_defaults_exceed_its_maximum_is_an_invalid_spec():
    bad = {**GPU_PROFILE, "resources": {"requests": {"cpu": "16"}}}
    result = sync_gateway(gateway(kernelProfiles=[bad], defaultKernel="python_gpu"), {}, kernel_role(), NOW, TOKEN)
    ready = result["status"]["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"] == "spec.kernelProfiles[0].resources.requests.cpu: 16 exceeds maxResources 8"


def kernel_dirs(env: dict, home: str = "/home/jovyan", prefix: str = "/opt/conda") -> list[str]:
    """Where jupyter_client 6.1.12 looks for kernelspecs in the gateway container: its
    KernelSpecManager._kernel_dirs_default (kernelspec.py:145-159) = jupyter_core 5's
    jupyter_path("kernels") (paths.py: JUPYTER_PATH, the data dir, the user site's
    share/jupyter unless PYTHONNOUSERSITE, sys.prefix/share/jupyter, /usr/local/share/jupyter,
    /usr/share/jupyter) plus the IPython directory's kernels. sys.prefix is /opt/conda in the
    elyra/enterprise-gateway image (docker-stacks' CONDA_DIR), HOME is jovyan's."""
    paths = [p for p in env.get("JUPYTER_PATH", "").split(":") if p]
    paths.append(env.get("JUPYTER_DATA_DIR") or f"{home}/.local/share/jupyter")
    if not env.get("PYTHONNOUSERSITE"):
        paths.append(f"{home}/.local/share/jupyter")
    paths += [f"{prefix}/share/jupyter", "/usr/local/share/jupyter", "/usr/share/jupyter"]
    return [f"{p}/kernels" for p in paths] + [f"{env.get('IPYTHONDIR') or home + '/.ipython'}/kernels"]


def test_the_gateway_container_finds_no_kernelspec_but_ours():
    deployment = next(
        c for c in sync_gateway(PARENT, {}, kernel_role(), NOW, TOKEN)["children"] if c["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = sorted(container["volumeMounts"], key=lambda m: -len(m["mountPath"]))

    def volume_at(path: str) -> dict | None:
        mount = next((m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")), None)
        return volumes[mount["name"]] if mount else None

    ours = []
    for path in kernel_dirs(env):
        volume = volume_at(path)
        assert volume is not None and "emptyDir" in volume, f"{path} comes from the image"
        if volume["name"] == "kernelspecs":
            ours.append(path)
        else:
            # an empty directory nobody writes kernelspecs to (the state dir holds connection files)
            assert volume["name"] in ("no-kernelspecs", "state"), path
    assert ours == [kernelspecs.KERNELSPEC_DIR]
    installer = next(c for c in pod["initContainers"] if c["name"] == "kernelspecs")
    assert {m["name"] for m in installer["volumeMounts"]} == {"kernelspecs", "kernelspecs-source"}
    assert kernelspecs.STOCK_LAUNCHER.startswith(kernelspecs.KERNELSPEC_DIR + "/"), "copied before it is hidden"
    children = sync_gateway(PARENT, {}, kernel_role(), NOW, TOKEN)["children"]
    config_map = next(c for c in children if c["kind"] == "ConfigMap" and c["metadata"]["name"] == "gw-gateway")
    config = json.loads(config_map["data"]["jupyter_enterprise_gateway_config.json"])
    assert config["KernelSpecManager"] == {
        "whitelist": ["python_gpu", "python_kubernetes"],
        "ensure_native_kernel": False,
    }


def test_the_sweep_looks_for_this_gateways_kernels_where_it_may_have_run_them():
    sweep = json.loads(DATA["sweep.json"])
    assert sweep == {
        "namespaces": ["gateways", "team-a"],
        "selector": "component=kernel,kubeflow.tkestack.io/gateway-name=gw,"
        "kubeflow.tkestack.io/gateway-namespace=gateways",
    }
    pod = launch(client_env())
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in (part.split("=") for part in sweep["selector"].split(",")))
    everyone = kernelspec_data(gateway("gw", "gateways", allowedNamespaces=["*", "team-b"]))
    assert json.loads(everyone["sweep.json"])["namespaces"] == ["gateways", "team-b"]
    deployment = next(
        c for c in sync_gateway(PARENT, {}, kernel_role(), NOW, TOKEN)["children"] if c["kind"] == "Deployment"
    )
    # At every start of the gateway container (a crash restarts it in the same pod, without
    # init containers: the real node showed the pods a killed EG left never culled).
    pod = deployment["spec"]["template"]["spec"]
    gateway_container = next(c for c in pod["containers"] if c["name"] == "gateway")
    command = gateway_container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[0] == "python" and command[1].endswith("/kernel_sweep.py") and command[2].endswith("/sweep.json")
    mounted = {m["name"]: m["mountPath"] for m in gateway_container["volumeMounts"]}
    items = next(v for v in pod["volumes"] if v["name"] == "python-path")["configMap"]["items"]
    assert {f"{mounted['python-path']}/{i['path']}" for i in items} >= set(command[1:])
    assert "sweep-kernels" not in [c["name"] for c in pod["initContainers"]]
    assert DATA["kernel_sweep.py"].startswith('"""Delete the kernel pods a previous gateway left behind')
