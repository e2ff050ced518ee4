"""The hook server as a local process, and the install overlay that points Metacontroller at it.

Used by the Metacontroller scenarios, `make up` (localcluster.py) and the scale benchmark.
Standard library only, so that `make up` needs nothing but the runtime venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

from controlplane import REPO_ROOT, Process, free_port, wait_for

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
