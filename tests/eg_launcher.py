"""Enterprise Gateway 3.3.0's own kernel launcher code, from its source distribution on PyPI.

The wheel has no launchers; the sdist ships etc/kernel-launchers/kubernetes/scripts/
launch_kubernetes.py. ``sdist()`` downloads it once into .cache/eg-sdist (pip, from the
package index). ``render_pod`` runs the launcher's real ``yaml_safe_str`` and
``generate_kernel_pod_yaml`` (taken from its source with ``ast``, without the module's
kubernetes client imports) on a template placed next to a copy of it, exactly as
launch_kubernetes.py renders kernel-pod.yaml.j2 from its own directory.
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
    wanted = {"yaml_safe_str", "generate_kernel_pod_yaml", "extend_pod_env"}
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


def render_pod(template: str, env: dict, extend_env: bool = False) -> list[dict]:
    """The objects launch_kubernetes.py would create for ``env``, from ``template``; with
    ``extend_env``, each Pod also gets the launcher's ``extend_pod_env``: ``env`` (the
    launcher's whole environment) added to its first container's env, as before the create."""
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
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        if extend_env:
            namespace["os"] = types.SimpleNamespace(environ=dict(env), path=os.path)
            docs = [namespace["extend_pod_env"](d) if d.get("kind") == "Pod" else d for d in docs]
    return docs
