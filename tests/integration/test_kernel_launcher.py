"""The rendered kernelspec run by Enterprise Gateway's own interpreter and launcher.

Two things the unit tests replay from source are run for real here, in the Enterprise
Gateway 3.3.0 venv (jupyter_client 6.1.12, jupyter_core, the kubernetes client):
- kernel.json's argv as jupyter_client formats it: our guard, then the stock
  launch_kubernetes.py from the sdist (laid out by the gateway's install script), in
  ``--pod-template`` mode, which renders the pod and writes it to a file instead of creating
  it (after adding its environment to the container, as it does for a real launch);
- jupyter_client's kernelspec search path with the gateway container's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import localrun
import yaml

from hooks import kernelspecs
from hooks.gateway import sync_gateway
from tests import eg_launcher
from tests.builders import NOW, TOKEN, gateway, kernel_role

PYTHON = localrun.EG_VENV / "bin" / "python"
KERNEL_ID = "0f0e0d0c-0b0a-4009-8807-060504030201"
PARENT = gateway("gw", "gateways", allowedNamespaces=["team-a"])


def children() -> list[dict]:
    return sync_gateway(PARENT, {}, kernel_role(), NOW, TOKEN)["children"]


def installed_kernelspecs(tmp_path: Path) -> Path:
    data = next(c for c in children() if c["metadata"]["name"] == "gw-gateway-kernelspecs")["data"]
    source, dest = tmp_path / "configmap", tmp_path / "kernels"
    source.mkdir(parents=True)
    for key, value in data.items():
        (source / key).write_text(value)
    launcher = eg_launcher.sdist() / eg_launcher.LAUNCHER
    script = ["/bin/sh", "-c", kernelspecs.INSTALL_SCRIPT, "install", str(source), str(dest), str(launcher)]
    subprocess.run(script, check=True)
    return dest


def formatted_argv(resource_dir: Path, pod_file: Path) -> list[str]:
    """kernel.json's argv after jupyter_client 6.1.12's format_kernel_cmd (python -> its own
    interpreter, {resource_dir}) and EG's substitutions; --pod-template asks the stock
    launcher to write the pod instead of creating it."""
    code = (
        "import json, sys\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "from jupyter_client.manager import KernelManager\n"
        "ksm = KernelSpecManager(kernel_dirs=[sys.argv[1]], ensure_native_kernel=False)\n"
        "km = KernelManager(kernel_spec_manager=ksm, kernel_name='python_kubernetes')\n"
        "km.connection_file = '/dev/null'\n"
        "km._launch_args = {}\n"
        "print(json.dumps(km.format_kernel_cmd()))\n"
    )
    out = subprocess.run(
        [str(PYTHON), "-c", code, str(resource_dir.parent)], capture_output=True, text=True, check=True
    )
    argv = json.loads(out.stdout)
    values = {"{kernel_id}": KERNEL_ID, "{port_range}": "0..0", "{response_address}": "10.0.0.1:8877"}
    argv = [values.get(a, a) for a in argv]
    argv[argv.index("{public_key}")] = "PUBLICKEY"
    return [*argv, "--pod-template", str(pod_file)]


def launch(tmp_path: Path, **client) -> subprocess.CompletedProcess:
    dest = installed_kernelspecs(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {
        # What Enterprise Gateway passes (no PATH: EG_INHERITED_ENVS is empty) ...
        "KERNEL_ID": KERNEL_ID,
        "KERNEL_POD_NAME": f"alice-{KERNEL_ID}",
        "KERNEL_NAMESPACE": "team-a",
        "KERNEL_USERNAME": "alice",
        "KERNEL_IMAGE": "elyra/kernel-py:3.3.0",
        "KERNEL_SERVICE_ACCOUNT_NAME": "default",
        "KERNEL_UID": "1000",
        "KERNEL_GID": "100",
        "KERNEL_LANGUAGE": "python",
        "KERNEL_GATEWAY": "1",
        "JPY_PARENT_PID": str(os.getpid()),  # jupyter_client's launch_kernel adds it
        # ... the kube config the launcher reads outside a cluster, and the client's variables
        "KUBECONFIG": str(kubeconfig),
        **client,
    }
    pod_file = tmp_path / "pod.yaml"
    result = subprocess.run(
        formatted_argv(dest / "python_kubernetes", pod_file), env=env, capture_output=True, text=True, timeout=60
    )
    result.pod = yaml.safe_load(pod_file.read_text()) if pod_file.exists() else None
    return result


def test_the_guard_hands_over_to_the_stock_launcher_which_renders_our_pod(tmp_path):
    result = launch(
        tmp_path,
        KERNEL_NOTEBOOK="alice",
        KERNEL_WORKSPACE_CLAIM="alice-workspace",
        KERNEL_WORKING_DIR="/home/jovyan/work/project",
        KERNEL_SERVICE_ACCOUNT_NAME="gw-gateway",
        KERNEL_IMAGE="evil/miner:1",
        KERNEL_MEMORY="1Gi",
    )
    assert result.returncode == 0, result.stderr
    pod = result.pod
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "team-a"
    assert spec["serviceAccountName"] == "default" and spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    assert container["image"] == "elyra/kernel-py:3.3.0"
    assert container["workingDir"] == "/home/jovyan/work/project"
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "1Gi"}
    assert spec["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": "alice-workspace"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KERNEL_ID"] == KERNEL_ID and env["RESPONSE_ADDRESS"] == "10.0.0.1:8877"
    assert env["KERNEL_NAME"] == "python_kubernetes", "the launcher found itself in our kernelspec"
    for dropped in ("KERNEL_SERVICE_ACCOUNT_NAME", "KERNEL_IMAGE", "KERNEL_UID", "PATH", "JPY_PARENT_PID"):
        assert dropped not in env


def test_a_refused_start_exits_before_the_launcher_with_one_line_naming_the_variable(tmp_path):
    result = launch(tmp_path, KERNEL_NAMESPACE="kube-system")
    assert result.returncode == 1
    assert result.pod is None
    assert result.stderr.strip().splitlines() == [
        "kernel start refused by profile python_kubernetes: KERNEL_NAMESPACE='kube-system': this gateway runs "
        "kernels only in gateways, team-a (its own namespace and spec.allowedNamespaces)"
    ]
    over = launch(tmp_path / "over", KERNEL_CPUS="64")
    assert over.returncode == 1 and "KERNEL_CPUS=64 is more than this kernel profile allows" in over.stderr
    # Another spelling of a keyword: the stock launcher would take it (the last one wins).
    variant = launch(tmp_path / "variant", KERNEL_NAMESPACe="kube-system")
    assert variant.returncode == 1 and variant.pod is None
    assert "'KERNEL_NAMESPACe' is not a kernel variable this gateway takes" in variant.stderr
    timeout = launch(tmp_path / "timeout", KERNEL_LAUNCH_TIMEOUT="nan")
    assert timeout.returncode == 1 and "KERNEL_LAUNCH_TIMEOUT='nan' is not a number of seconds" in timeout.stderr


def test_jupyter_client_searches_exactly_the_directories_the_unit_test_replays(tmp_path):
    from tests.unit.test_kernel_pods import kernel_dirs

    deployment = next(c for c in children() if c["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # The state emptyDir, writable as in the pod (IPython falls back to a temp dir otherwise).
    state = tmp_path / "state"
    state.mkdir()
    env = {e["name"]: e.get("value", "").replace(kernelspecs.STATE_DIR, str(state)) for e in container["env"]}
    code = (
        "import json, sys\n"
        "sys.prefix = '/opt/conda'\n"  # the elyra image's interpreter prefix, before jupyter_core computes paths
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "print(json.dumps(KernelSpecManager().kernel_dirs))\n"
    )
    run_env = {**env, "HOME": "/home/jovyan", "PATH": os.environ["PATH"]}
    out = subprocess.run([str(PYTHON), "-c", code], env=run_env, capture_output=True, text=True, check=True)
    # The order depends on whether jupyter_core prefers the environment over the user (a venv
    # here, conda's base env in the image); every directory must be ours or empty either way.
    assert sorted(json.loads(out.stdout)) == sorted(kernel_dirs(env))


def test_the_gateways_interpreter_has_no_python3_kernel(tmp_path):
    """jupyter_client 6.1.12 resolves the name python3 to ipykernel's own kernelspec whenever
    ipykernel imports, whatever ensure_native_kernel and the whitelist say; the gateway image
    has ipykernel. The gateway's PYTHONPATH holds a package ipykernel that cannot be imported."""
    pod = next(c for c in children() if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    path = next(e["value"] for e in container["env"] if e["name"] == "PYTHONPATH")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == path)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    data = next(c for c in children() if c["metadata"]["name"] == volume["configMap"]["name"])["data"]
    for item in volume["configMap"]["items"]:
        (tmp_path / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / item["path"]).write_text(data[item["key"]])
    code = (
        "from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel\n"
        "try:\n"
        "    KernelSpecManager(kernel_dirs=[], ensure_native_kernel=False).get_kernel_spec('python3')\n"
        "    print('python3')\n"
        "except NoSuchKernel:\n"
        "    print('none')\n"
    )

    def resolved(**env) -> str:
        run_env = {"PATH": os.environ["PATH"], "PYTHONNOUSERSITE": "1", **env}
        return subprocess.run([str(PYTHON), "-c", code], env=run_env, capture_output=True, text=True).stdout.strip()

    assert resolved() == "python3", "the fallback this guards against is gone: revisit NO_IPYKERNEL"
    assert resolved(PYTHONPATH=str(tmp_path)) == "none"
