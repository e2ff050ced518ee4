"""Enterprise Gateway 3.3.0's own kernel launcher code, from its source distribution on PyPI.

The wheel has no launchers; the sdist ships etc/kernel-launchers/kubernetes/scripts/
launch_kubernetes.py. ``sdist()`` downloads it once into .cache/eg-sdist (pip, from the
package index). ``render_pod`` runs the launcher's real ``yaml_safe_str`` and
``generate_kernel_pod_yaml`` (taken from its source with ``ast``, without the module's
kubernetes client imports) on a template placed next to a copy of it, exactly as
launch_kubernetes.py renders kernel-pod.yaml.j2 from its own directory. ``launch_pod`` runs
the whole launcher (its ``launch_kubernetes_kernel``) in its ``--pod-template`` mode, which
writes the pod instead of creating it: the keywords it takes from its environment, the
template, and the environment it copies into the pod are all its own code.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parent.parent
VERSION = "3.3.0"
CACHE = ROOT / ".cache" / "eg-sdist"
LAUNCHER = "etc/kernel-launchers/kubernetes/scripts/launch_kubernetes.py"
# The sdist's hash on PyPI; tests/integration/provision.sh pins the same one.
SHA256 = "58d61fef0f30d8010553bf3755c7d205c072383849c416916b37d3ef940725b7"


def sdist() -> Path:
    """The unpacked jupyter_enterprise_gateway 3.3.0 source distribution."""
    unpacked = CACHE / f"jupyter_enterprise_gateway-{VERSION}"
    if (unpacked / LAUNCHER).is_file():
        return unpacked
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"jupyter_enterprise_gateway-{VERSION}.tar.gz"
    if not archive.is_file():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps"]
        pinned = CACHE / "requirement.txt"
        pinned.write_text(f"jupyter_enterprise_gateway=={VERSION} --hash=sha256:{SHA256}\n")
        result = subprocess.run(
            [*command, "--require-hashes", "-r", str(pinned), "-d", str(CACHE)], capture_output=True, text=True
        )
        if result.returncode != 0 or not archive.is_file():
            raise RuntimeError(
                f"could not download the jupyter_enterprise_gateway {VERSION} sdist from the package index "
                f"into {CACHE} (needed to test the kernel pod template): {result.stderr.strip()}"
            )
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return unpacked


def launcher_source() -> str:
    return (sdist() / LAUNCHER).read_text()


def _launcher_functions() -> dict:
    """yaml_safe_str and generate_kernel_pod_yaml of the real launcher, with its constants."""
    tree = ast.parse(launcher_source())
    wanted = {"yaml_safe_str", "generate_kernel_pod_yaml"}
    body = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in wanted)
        or (
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", "") == "KERNEL_POD_TEMPLATE_PATH" for t in node.targets)
        )
    ]
    assert {n.name for n in body if isinstance(n, ast.FunctionDef)} == wanted, "launcher functions moved"
    return body


def keywords(env: dict) -> dict:
    """launch_kubernetes_kernel's template keywords: every KERNEL_* variable, lower-cased
    (KERNEL_VOLUMES and KERNEL_VOLUME_MOUNTS parsed as YAML), as its lines 159-172 do."""
    out = {}
    for name, value in env.items():
        if name.startswith("KERNEL_"):
            out[name.lower()] = yaml.safe_load(value) if name in ("KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS") else value
    return out


def render_pod(template: str, env: dict) -> list[dict]:
    """The objects launch_kubernetes.py would create for ``env``, from ``template``."""
    with tempfile.TemporaryDirectory() as scripts:
        launcher = os.path.join(scripts, "launch_kubernetes.py")
        shutil.copy(sdist() / LAUNCHER, launcher)
        Path(scripts, "kernel-pod.yaml.j2").write_text(template)
        module = ast.Module(body=_launcher_functions(), type_ignores=[])
        namespace = {
            "__file__": launcher,
            "os": os,
            "yaml": yaml,
            "Environment": jinja2.Environment,
            "FileSystemLoader": jinja2.FileSystemLoader,
            "select_autoescape": jinja2.select_autoescape,
        }
        exec(compile(module, launcher, "exec"), namespace)
        text = namespace["generate_kernel_pod_yaml"](keywords(env))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _kubernetes_stubs() -> dict:
    """The modules launch_kubernetes.py imports but does not call in --pod-template mode
    (beyond loading a configuration, a no-op here): the kubernetes client and urllib3."""
    config = types.ModuleType("kubernetes.config")
    config.load_incluster_config = config.load_kube_config = lambda *args, **kwargs: None
    client = types.ModuleType("kubernetes.client")
    rest = types.ModuleType("kubernetes.client.rest")
    rest.ApiException = type("ApiException", (Exception,), {})
    client.rest = rest
    kubernetes = types.ModuleType("kubernetes")
    kubernetes.client, kubernetes.config = client, config
    urllib3 = types.ModuleType("urllib3")
    urllib3.disable_warnings = lambda *args, **kwargs: None
    return {
        "kubernetes": kubernetes,
        "kubernetes.client": client,
        "kubernetes.client.rest": rest,
        "kubernetes.config": config,
        "urllib3": urllib3,
    }


def launch_pod(template: str, env: dict, kernel_id: str) -> dict:
    """The pod launch_kubernetes.py (all of it, from the sdist) writes when started with
    ``env`` as its environment and ``kernel_id`` in its argv, as EG's kernel.json starts it:
    every KERNEL_* name lower-cased into a template keyword (the last one wins), the template
    rendered from the launcher's own directory, then its environment added to the container."""
    stubs = _kubernetes_stubs()
    saved = {name: sys.modules.get(name) for name in stubs}
    with tempfile.TemporaryDirectory() as scripts:
        launcher = os.path.join(scripts, "launch_kubernetes.py")
        shutil.copy(sdist() / LAUNCHER, launcher)
        Path(scripts, "kernel-pod.yaml.j2").write_text(template)
        namespace = {"__file__": launcher, "__name__": "launch_kubernetes"}
        sys.modules.update(stubs)
        try:
            exec(compile(launcher_source(), launcher, "exec"), namespace)
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
        # Its os.environ is the environment it was started with (a copy: it writes to it).
        environ = dict(env)
        namespace["os"] = types.SimpleNamespace(environ=environ, getenv=environ.get, path=os.path)
        out, spark_opts = os.path.join(scripts, "pod.yaml"), os.path.join(scripts, "spark-opts")
        argv = (kernel_id, "0..0", "10.0.0.1:8877", "PUBLICKEY", "none", out, spark_opts, None)
        namespace["launch_kubernetes_kernel"](*argv)
        return yaml.safe_load(Path(out).read_text())
