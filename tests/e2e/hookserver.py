"""The hook server as a local process, and the install overlay that points Metacontroller at it.

Used by the Metacontroller scenarios, `make up` (localcluster.py) and the scale benchmark.
Standard library only, so that `make up` needs nothing but the runtime venv.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

from controlplane import REPO_ROOT, ControlPlane, Process, free_port, wait_for

# The Secret whose token Metacontroller sends as `Authorization: Bearer` (metacontroller/*.yaml),
# and the variable hooks.app reads the token file's path from (hooks.app.TOKEN_FILE_ENV).
AUTH_NAMESPACE, AUTH_SECRET = "elastic-jupyter-system", "elastic-jupyter-hooks-auth"
TOKEN_FILE_ENV = "ELASTIC_JUPYTER_HOOKS_TOKEN_FILE"

HOOK_PATHS = {
    ("jupytergateway-controller", "sync"): "/sync/jupytergateway",
    ("jupytergateway-controller", "customize"): "/customize/jupytergateway",
    ("jupyternotebook-controller", "sync"): "/sync/jupyternotebook",
    ("jupyternotebook-controller", "customize"): "/customize/jupyternotebook",
}


class HookServer:
    """Our hook server under uvicorn on 127.0.0.1 (access log on, so that calls can be counted).

    Started in the constructor; if it does not become healthy it is stopped before the error
    propagates, so a failed start leaks no process.
    """

    def __init__(
        self,
        workdir: Path,
        app: str = "hooks.app:app",
        name: str = "hooks",
        factory: bool = False,
        port: int = 0,
        access_log: bool = True,
        token_file: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.log = Path(workdir) / f"{name}-{self.port}.log"
        argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--app-dir", str(Path(__file__).parent)]
        if factory:
            argv.append("--factory")
        if not access_log:
            argv.append("--no-access-log")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if token_file is not None:
            env[TOKEN_FILE_ENV] = str(token_file)
        with self.log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.process = Process(name, popen, self.log)
        try:
            wait_for(self._healthy, timeout=30, what=f"hook server on {self.port}")
        except BaseException:
            self.process.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def _healthy(self) -> bool:
        self.process.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
            return r.status == 200

    def alive(self) -> bool:
        return self.process.alive()

    def calls(self) -> Counter:
        """Requests served so far, by path (from the access log)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return Counter(line.split('"POST ')[1].split()[0] for line in lines if '"POST ' in line)

    def stop(self) -> None:
        self.process.stop()


def hook_token(cp: ControlPlane, workdir: Path) -> Path:
    """The install's hook token as a file for the hook server: the Secret's, made as the README
    says (256 random bits) if the cluster has none yet. Apply it before the CompositeControllers."""
    cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "namespace.yaml"))
    res = cp.kubectl("-n", AUTH_NAMESPACE, "get", "secret", AUTH_SECRET, "-o", "jsonpath={.data.token}", check=False)
    if res.returncode == 0 and res.stdout.strip():
        token = base64.b64decode(res.stdout.strip()).decode()
    else:
        token = secrets.token_hex(32)
        cp.kubectl(
            "-n",
            AUTH_NAMESPACE,
            "create",
            "secret",
            "generic",
            AUTH_SECRET,
            "--from-file=token=/dev/stdin",
            input=token,
        )
    path = Path(workdir) / "hook-token"
    path.touch(mode=0o600)
    path.write_text(token)
    return path


def overlay(workdir: Path, port: int) -> Path:
    """A kustomization of manifests/ whose only change is the hook URLs (http://127.0.0.1:<port>)."""
    directory = Path(workdir) / f"overlay-{port}"
    directory.mkdir(exist_ok=True)
    patches = []
    for (controller, hook), path in HOOK_PATHS.items():
        patches.append(
            {
                "target": {"group": "metacontroller.k8s.io", "kind": "CompositeController", "name": controller},
                "patch": json.dumps(
                    [
                        {
                            "op": "add",
                            "path": f"/spec/hooks/{hook}/webhook/url",
                            "value": f"http://127.0.0.1:{port}{path}",
                        }
                    ]
                ),
            }
        )
    kustomization = {"resources": [os.path.relpath(REPO_ROOT / "manifests", directory)], "patches": patches}
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization))
    return directory
