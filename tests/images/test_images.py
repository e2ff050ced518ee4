"""The local images are what they claim: names, configs, files, and what runs in them.

No node: each archive is read and checked as a runtime would (digests, diff_ids), unpacked,
and its processes run in private namespaces under chroot (tests/images/oci.py). What the hooks
render is run where the images are meant to run it: the gateway pod's init container and
Enterprise Gateway, the notebook's Jupyter server with its mounted token, a kernel that reports
to Enterprise Gateway's own response listener and computes 1+1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from hooks import gateway, kernelspecs
from hooks.notebook import server_address
from tests import eg_launcher
from tests.integration.rendered import (
    gateway_cr,
    notebook_cr,
    render_gateway,
    render_notebook,
    secret_value,
    volume_files,
)

from . import oci
from .conftest import REFS

DEADLINE = 120.0  # seconds for a server in a chroot to answer (a loaded 2-core machine)


def wait_for(what: str, check, deadline: float = DEADLINE, proc: subprocess.Popen | None = None):
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline
    (or as soon as ``proc`` has exited)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode} first")
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {deadline:.0f}s")


def http_get(pid: int, url: str, token: str | None = None) -> tuple[int, str]:
    """(status, body) of a GET from inside the network namespace of ``pid``; (0, error) if none."""
    client = (
        "import sys, urllib.request, urllib.error\n"
        "auth = {'Authorization': 'token ' + sys.argv[2]} if sys.argv[2] else {}\n"
        "req = urllib.request.Request(sys.argv[1], headers=auth)\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=5); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    done = oci.in_net_of(pid, ["python3", "-c", client, url, token or ""])
    if done.returncode != 0:
        return 0, done.stderr
    status, _, body = done.stdout.partition("\n")
    return int(status), body


def answers(pid: int, url: str, token: str | None = None):
    return lambda: (lambda r: r if r[0] else None)(http_get(pid, url, token))


def files_dir(base: Path, name: str, files: dict[str, bytes], owner: tuple[int, int]) -> Path:
    """A host directory holding a volume's files, as the kubelet would (readable by the pod's user)."""
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
        os.chown(path / rel, *owner)
    return path


def pod_volumes(children: dict, pod: dict, base: Path, owner: tuple[int, int]) -> dict[str, Path]:
    """Each volume of the pod as a host directory (ConfigMap and Secret files written, emptyDirs empty)."""
    return {v["name"]: files_dir(base, v["name"], volume_files(children, v), owner) for v in pod["volumes"]}


def container_mounts(container: dict, volumes: dict[str, Path]) -> dict[str, Path]:
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}


def container_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# --- every archive ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFS))
def test_archive_is_named_as_the_cri_looks_it_up(archives, name):
    archive = archives[name]
    assert archive.name == REFS[name]
    descriptor = archive.index["manifests"][0]
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    assert (archive.config["architecture"], archive.config["os"]) == ("amd64", "linux")
    assert archive.layers(), "no layers"


# --- pause ----------------------------------------------------------------------------------


def _handles_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_pause_is_one_static_file_run_as_65535(archives, rootfs):
    config = archives["pause"].config["config"]
    assert config["Entrypoint"] == ["/pause"] and config.get("User") == "65535:65535"
    root = rootfs("pause")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["pause"]
    # Runs where nothing else is: no dynamic loader, no libc in the image.
    done = subprocess.run(["chroot", "--userspec=65535:65535", root, "/pause", "-v"], capture_output=True, text=True)
    assert done.returncode == 0 and "pause" in done.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_0_on_term_and_int(rootfs, sig):
    proc = subprocess.Popen(["chroot", "--userspec=65535:65535", rootfs("pause"), "/pause"], stderr=subprocess.PIPE)
    try:
        wait_for("pause installs its handlers", lambda: _handles_sigterm(proc.pid), 10, proc)
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_pause_reaps_the_orphans_of_its_pid_namespace(rootfs):
    """As PID 1 of a pod's PID namespace, pause adopts orphans and reaps them when they exit."""
    sandbox = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--", "chroot", rootfs("pause"), "/pause"]
    )
    try:
        children = Path(f"/proc/{sandbox.pid}/task/{sandbox.pid}/children")
        pause = int(wait_for("pause started", lambda: children.read_text().split(), 10, sandbox)[0])
        wait_for("pause installs its handlers", lambda: _handles_sigterm(pause), 10, sandbox)
        adopted = Path(f"/proc/{pause}/task/{pause}/children")
        # A shell in the namespace starts a short-lived process and exits: pause inherits it.
        subprocess.run(["nsenter", f"--target={pause}", "--pid", "--", "sh", "-c", "sleep 1 & exit 0"], check=True)
        assert adopted.read_text().split(), "the orphan was not reparented to pause"
        # Once it has exited, pause must have reaped it (a zombie stays listed as its child).
        wait_for("pause reaps the orphan", lambda: not adopted.read_text().split(), 30, sandbox)
    finally:
        oci.stop(sandbox)


# --- hook server ----------------------------------------------------------------------------


def test_hooks_image_runs_the_server_as_10001(archives, rootfs, scratch):
    config = archives["hooks"].config
    c = config["config"]
    assert c["User"] == "10001:10001"
    assert c["Entrypoint"] == ["python", "-m", "hooks"] and c["Cmd"][0] == "serve"
    assert {"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= set(c["Env"])
    server = oci.start(
        rootfs("hooks"), oci.image_command(config), env=oci.image_env(config), user=c["User"], log=scratch / "hooks.log"
    )
    try:
        status, body = wait_for(
            "the hook server answers", answers(server.pid, "http://127.0.0.1:8080/healthz"), proc=server
        )
        assert status == 200, body
    finally:
        oci.stop(server)


# --- Enterprise Gateway ---------------------------------------------------------------------


def test_gateway_image_config_matches_upstream(archives):
    c = archives["enterprise-gateway"].config["config"]
    assert c["User"] == "jovyan" and c["WorkingDir"] == "/usr/local/bin"
    assert c["Entrypoint"] == ["tini", "-g", "--", "start.sh"]
    assert c["Cmd"] == ["/usr/local/bin/start-enterprise-gateway.sh"]
    assert "8888/tcp" in c["ExposedPorts"]


def test_gateway_image_ships_eg_launchers_where_the_hooks_copy_them(rootfs):
    root = rootfs("enterprise-gateway")
    sdist = eg_launcher.sdist() / "etc"
    launcher = root / kernelspecs.STOCK_LAUNCHER.lstrip("/")
    assert launcher.read_bytes() == (sdist / "kernel-launchers/kubernetes/scripts/launch_kubernetes.py").read_bytes()
    assert (launcher.parent / "kernel-pod.yaml.j2").is_file()
    spec = json.loads((launcher.parent.parent / "kernel.json").read_text())
    assert spec["metadata"]["process_proxy"]["config"]["image_name"] == "elyra/kernel-py:3.3.0"
    assert (launcher.parent.parent).stat().st_uid == 1000
    python = root / "usr/local/bin/kernel-launchers/python/scripts/launch_ipykernel.py"
    assert python.read_bytes() == (sdist / "kernel-launchers/python/scripts/launch_ipykernel.py").read_bytes()
    assert not (root / "usr/local/bin/bootstrap-kernel.sh").exists()  # upstream removes it here


def test_gateway_version_runs_as_jovyan(archives, rootfs, scratch):
    config = archives["enterprise-gateway"].config
    root = rootfs("enterprise-gateway")
    proc = oci.start(
        root,
        ["jupyter-enterprisegateway", "--version"],
        env=oci.image_env(config),
        user=oci.resolve_user(root, config["config"]["User"]),
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.decode().strip().splitlines()[-1] == "3.3.0"


def test_gateway_image_runs_the_rendered_gateway_pod(archives, rootfs, scratch):
    """The hooks' gateway pod in this image: its kernelspecs init container lays out our profile
    with the image's stock launcher; Enterprise Gateway starts with the rendered command, env and
    mounts on the pod's loopback port behind the front door, requires the rendered internal token
    and serves exactly that kernelspec. (The front door and the orphan sweep, the gateway container's
    postStart hook, need an API server: tests/kernels runs them.)"""
    children = render_gateway(gateway_cr("gw", "team-a"))
    pod = children["Deployment"]["spec"]["template"]["spec"]
    security = pod["securityContext"]
    owner = (security["runAsUser"], security.get("runAsGroup", security["runAsUser"]))
    user = f"{owner[0]}:{owner[1]}"
    volumes = pod_volumes(children, pod, scratch / "gateway-volumes", owner)
    root = rootfs("enterprise-gateway")
    env = oci.image_env(archives["enterprise-gateway"].config)
    installer = next(c for c in pod["initContainers"] if c["name"] == "kernelspecs")
    init = oci.start(root, installer["command"], env=env, user=user, mounts=container_mounts(installer, volumes))
    out, _ = init.communicate(timeout=120)
    assert init.returncode == 0, out
    profile = kernelspecs.DEFAULT_PROFILE.name
    laid_out = volumes["kernelspecs"] / profile / "scripts" / "launch_kubernetes.py"
    assert laid_out.read_bytes() == (root / kernelspecs.STOCK_LAUNCHER.lstrip("/")).read_bytes()

    container = next(c for c in pod["containers"] if c["name"] == "gateway")
    eg = oci.start(
        root,
        container["command"],
        env={**env, **container_env(container)},
        user=user,
        workdir=archives["enterprise-gateway"].config["config"]["WorkingDir"],
        mounts=container_mounts(container, volumes),
        log=scratch / "gateway.log",
    )
    try:
        url = f"http://127.0.0.1:{gateway.INTERNAL_PORT}/api/kernelspecs"
        status, _ = wait_for("Enterprise Gateway answers", answers(eg.pid, url), proc=eg)
        assert status in (401, 403), "the gateway answered without its token"
        status, body = http_get(eg.pid, url, secret_value(children))
        assert status == 200, body
        specs = json.loads(body)["kernelspecs"]
        assert sorted(specs) == [profile]
        argv = specs[profile]["spec"]["argv"]
        assert any(a.endswith("/scripts/launch_kubernetes.py") for a in argv), argv
    finally:
        oci.stop(eg)


# --- kernel ---------------------------------------------------------------------------------

# In the gateway's image: Enterprise Gateway's own ResponseManager waits for one kernel's
# encrypted connection info; then jupyter_client runs 1+1 on that kernel and shuts it down.
KERNEL_CLIENT = """
import asyncio, json, os, sys
os.environ["EG_RESPONSE_IP"] = "127.0.0.1"
from enterprise_gateway.services.processproxies.processproxy import ResponseManager
from jupyter_client import BlockingKernelClient

async def main(kernel_id):
    manager = ResponseManager.instance()
    manager.register_event(kernel_id)
    print(json.dumps({"address": manager.response_address, "key": manager.public_key}), flush=True)
    while True:  # EG polls the same way: each wait is a fraction of a second
        try:
            info = await manager.get_connection_info(kernel_id)
            break
        except asyncio.TimeoutError:
            pass
    info["ip"] = "127.0.0.1"
    client = BlockingKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    client.wait_for_ready(timeout=60)
    reply = client.execute_interactive("1+1", timeout=60, output_hook=lambda msg: results.append(msg))
    print(json.dumps({"status": reply["content"]["status"], "results": [
        m["content"]["data"]["text/plain"] for m in results if m["msg_type"] == "execute_result"]}), flush=True)
    client.shutdown()

results = []
asyncio.run(main(sys.argv[1]))
"""


def test_kernel_image_config_matches_upstream(archives):
    c = archives["kernel-py"].config["config"]
    assert c["User"] == "jovyan" and c["WorkingDir"] == "/home/jovyan"
    assert c["Cmd"] == ["/bin/sh", "-c", "/usr/local/bin/bootstrap-kernel.sh"]
    assert "KERNEL_LANGUAGE=python" in c["Env"]


def test_kernel_image_reports_to_eg_and_computes(archives, rootfs, scratch):
    """The kernel pod's default command (bootstrap-kernel.sh, launch_ipykernel.py) sends its
    connection info to Enterprise Gateway's response listener, encrypted with its key, and the
    kernel answers 1+1 = 2: the protocol EG's Kubernetes process proxy relies on."""
    gateway_root = rootfs("enterprise-gateway")
    (gateway_root / "tmp/kernel_client.py").write_text(KERNEL_CLIENT)
    kernel_id = str(uuid.uuid4())
    gateway_env = oci.image_env(archives["enterprise-gateway"].config)
    client = oci.start(gateway_root, ["python", "/tmp/kernel_client.py", kernel_id], env=gateway_env, user="1000:100")
    kernel = None
    try:
        hello = json.loads(client.stdout.readline())
        config = archives["kernel-py"].config
        pod_env = {"KERNEL_ID": kernel_id, "RESPONSE_ADDRESS": hello["address"], "PUBLIC_KEY": hello["key"]}
        kernel = oci.start(
            rootfs("kernel-py"),
            oci.image_command(config),
            env=oci.image_env(config, **pod_env, KERNEL_USERNAME="test"),
            user="1000:100",  # the kernel pod template's runAsUser/runAsGroup
            workdir=config["config"]["WorkingDir"],
            join_net_of=client.pid,
            log=scratch / "kernel.log",
        )
        line = client.stdout.readline()
        assert line, f"no answer from the kernel; its log:\n{(scratch / 'kernel.log').read_text()[-3000:]}"
        assert json.loads(line) == {"status": "ok", "results": ["2"]}
        assert client.wait(timeout=60) == 0
    finally:
        oci.stop(client)
        if kernel is not None:
            oci.stop(kernel)


# --- notebook -------------------------------------------------------------------------------


def test_notebook_image_config_matches_docker_stacks(archives, rootfs):
    c = archives["base-notebook"].config["config"]
    assert c["User"] == "1000" and c["WorkingDir"] == "/home/jovyan"
    assert c["Entrypoint"] == ["tini", "-g", "--", "start.sh"] and c["Cmd"] == ["start-notebook.py"]
    env = oci.image_env(archives["base-notebook"].config)
    assert env["HOME"] == "/home/jovyan" and env["JUPYTER_PORT"] == "8888" and env["NB_UID"] == "1000"
    home = rootfs("base-notebook") / "home/jovyan"
    assert (home.stat().st_uid, home.stat().st_gid) == (1000, 100)
    assert ((home / "work").stat().st_uid, (home / "work").stat().st_gid) == (1000, 100)


def test_notebook_image_serves_the_rendered_notebook(archives, rootfs, scratch):
    """The hooks' default notebook container in this image: the image's own command starts Jupyter
    Server with the token file the hook mounts, at the address the hook's probe expects
    (NOTEBOOK_ARGS appended, as docker-stacks' start-notebook.py does)."""
    children = render_notebook(notebook_cr("nb", "team-a"), None, {})
    pod = children["Deployment"]["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "notebook")
    container["env"] = [*container.get("env", []), {"name": "NOTEBOOK_ARGS", "value": "--ServerApp.base_url=/nb/x/"}]
    port, base_url, problem = server_address(container)
    assert (port, base_url, problem) == (8888, "/nb/x/", None)
    volumes = pod_volumes(children, pod, scratch / "notebook-volumes", (1000, 100))
    config = archives["base-notebook"].config
    server = oci.start(
        rootfs("base-notebook"),
        oci.image_command(config),
        env=oci.image_env(config, **container_env(container)),
        user="1000:100",
        workdir=config["config"]["WorkingDir"],
        mounts=container_mounts(container, volumes),
        log=scratch / "notebook.log",
    )
    try:
        probe = f"http://127.0.0.1:{port}{base_url}api"
        status, body = wait_for("the readiness probe's URL answers", answers(server.pid, probe), proc=server)
        assert status == 200 and "version" in json.loads(body), body
        status, _ = http_get(server.pid, urllib.parse.urljoin(probe, "api/status"))
        assert status == 403, "the notebook answered without its token"
        status, body = http_get(server.pid, urllib.parse.urljoin(probe, "api/status"), secret_value(children))
        assert status == 200, body
        status, body = http_get(server.pid, urllib.parse.urljoin(probe, "lab"), secret_value(children))
        assert status == 200 and "JupyterLab" in body
    finally:
        oci.stop(server)
