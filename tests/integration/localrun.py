"""Run rendered Kubernetes containers as real local processes (no cluster, no Docker).

A container spec is taken as the plain dict a hook renders (``command``, ``args``,
``env`` with ``value`` entries, ``ports``, ``volumeMounts``), together with the file
contents of its mounts (``{mountPath: {filename: bytes | str}}`` -- the caller decodes
ConfigMap/Secret data).  The container is started as a process listening on 127.0.0.1.

Everything that cannot exist outside a cluster is replaced according to the single
table ``SUBSTITUTIONS`` below; ``apply_*`` functions implement exactly those rows and
nothing else.  Anything the runner cannot translate (``valueFrom``, an unknown
``*.svc`` host, a missing executable) is a ``LocalRunError``, never a silent guess.

Typical use (pytest fixtures do the same)::

    with LocalStack(tmp_path) as stack:
        gw = stack.start_gateway(gw_container, {"/etc/jupyter-gateway": {...}}, token=None)
        nb = stack.start_notebook(nb_container, {"/etc/jupyter-notebook/auth": {...}},
                                  services={"gw.default:8888": gw}, token="t")
        ...                      # leaving the block stops nb, then gw, by PID
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LOCALRUN_CACHE", REPO / ".cache"))
EG_VENV = Path(os.environ.get("EG_VENV", CACHE / "venvs" / "eg"))
FE_VENV = Path(os.environ.get("FE_VENV", CACHE / "venvs" / "fe"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LOOPBACK = "127.0.0.1"


class LocalRunError(RuntimeError):
    """A container could not be translated or did not come up; message says why."""


# ---------------------------------------------------------------------------------------
# SUBSTITUTIONS -- the one place that lists what is replaced, and why.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Substitution:
    name: str
    cluster: str  # what the rendered spec / image says
    local: str  # what the local run uses instead
    why: str


# kernelspec names that only exist in the EG image / as kernel pods -> local ipykernel spec
KERNELSPEC_MAP = {"python_kubernetes": "python3", "python_docker": "python3"}
# hooks/kernelspecs.PROCESS_PROXY: EG's KubernetesProcessProxy with start failures explained
K8S_PROCESS_PROXY = "kernel_proxy.ReasonedKubernetesProcessProxy"
LOCAL_PROCESS_PROXY = "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"
# docker-stacks images: ENTRYPOINT tini -g --, CMD start-notebook.py (-> jupyter $DOCKER_STACKS_JUPYTER_CMD)
DOCKER_STACKS_IMAGE = re.compile(r"^(quay\.io/|docker\.io/)?jupyter/[\w.-]*-notebook(:|@|$)")
DOCKER_STACKS_START = {"start-notebook.py", "start-notebook.sh", "start-singleuser.py", "start.sh"}
NOTEBOOK_DEFAULT_PORT = 8888  # docker-stacks /etc/jupyter/jupyter_server_config.py: c.ServerApp.port

SUBSTITUTIONS: tuple[Substitution, ...] = (
    Substitution(
        "mount",
        "volumeMounts[].mountPath (ConfigMap/Secret volume)",
        "<workdir>/mounts/<volume>/ holding the given files (mode 0600 if readOnly); the "
        "mountPath is rewritten in command, args, env values and mounted text files",
        "no kubelet volumes; paths like /etc/... are not ours to write",
    ),
    Substitution(
        "service-host",
        "<svc>.<ns>.svc[.cluster.local][:<port>] in env values, args, mounted files",
        "127.0.0.1:<local port of the process registered for 'svc.ns:port'>",
        "no cluster DNS / Services",
    ),
    Substitution(
        "container-port",
        "ports[].containerPort N (and the image's implicit port 8888 for a notebook), where "
        "it appears as: env var *PORT = N, arg --*port=N, JSON key 'port'/'*_port' = N",
        "a free 127.0.0.1 port (bound then released just before start)",
        "all containers share one host network namespace",
    ),
    Substitution(
        "pod-ports",
        "a port of another container of the same pod, reached on the pod's loopback (the front "
        "door's upstream_port: Enterprise Gateway's containerPort 8889)",
        "that container's local port, in the same places as row container-port",
        "each container gets its own free ports here; a pod's containers share one network namespace",
    ),
    Substitution(
        "service-account-mount",
        "the kubelet's automatic mount of the pod's ServiceAccount token and the cluster CA at "
        "/var/run/secrets/kubernetes.io/serviceaccount (automountServiceAccountToken), and "
        "KUBERNETES_SERVICE_HOST/PORT, in the gateway pod's front-door container",
        "that mount added to the container, holding a real token of the gateway's ServiceAccount "
        "(TokenRequest API) and the local CA; KUBERNETES_SERVICE_HOST=127.0.0.1 and the API server's port",
        "the kubelet adds the mount at admission; here the local API server is the cluster",
    ),
    Substitution(
        "projected-token",
        "a projected serviceAccountToken volume (the notebook's token for its gateway: audience, "
        "expirationSeconds), written and renewed by the kubelet",
        "a token of the pod's ServiceAccount with that audience and lifetime from the TokenRequest API "
        "(kubectl create token), written once; a test rewrites it to show renewal",
        "no kubelet",
    ),
    Substitution(
        "bind-address",
        "0.0.0.0",
        "127.0.0.1",
        "servers started by tests listen on loopback only",
    ),
    Substitution(
        "eg-response-address",
        "EG response socket (containerPort 8877; EG_RESPONSE_IP unset = pod IP)",
        "EG_RESPONSE_IP=127.0.0.1, EG_RESPONSE_PORT=<free> (only if the spec does not set them)",
        "on a host the 'pod IP' is a real interface; only used by remote process proxies",
    ),
    Substitution(
        "kernelspec-name",
        "kernelspec names " + ", ".join(sorted(KERNELSPEC_MAP)) + " (default_kernel_name, "
        "whitelist/allowed lists, EG_DEFAULT_KERNEL_NAME, EG_ALLOWED_KERNELS)",
        "python3 (ipykernel's spec in the EG venv)",
        "kernel images / pods do not exist",
    ),
    Substitution(
        "process-proxy",
        K8S_PROCESS_PROXY,
        LOCAL_PROCESS_PROXY,
        "kernels run as local children of EG instead of pods",
    ),
    Substitution(
        "image-command",
        "no command on a jupyter docker-stacks image (CMD start-notebook.py; honours "
        "DOCKER_STACKS_JUPYTER_CMD and NOTEBOOK_ARGS)",
        "['jupyter', $DOCKER_STACKS_JUPYTER_CMD or 'lab', *NOTEBOOK_ARGS, *args]",
        "the image is not available",
    ),
    Substitution(
        "executable",
        "command[0] resolved on the image's PATH (e.g. jupyter)",
        "<venv>/bin/<command[0]> (EG venv for the gateway, FE venv for the notebook)",
        "the image is not available",
    ),
    Substitution(
        "notebook-server-args",
        "docker-stacks /etc/jupyter/jupyter_server_config.py (ip 0.0.0.0, port 8888, "
        "open_browser False) and the image's non-root user jovyan, WORKDIR /home/jovyan",
        "appended --ServerApp.ip=127.0.0.1 --ServerApp.port=<free> --ServerApp.port_retries=0 "
        "--ServerApp.open_browser=False --ServerApp.allow_root=True --ServerApp.root_dir=<workdir>/home",
        "tests run as root on a shared host; port 8888 may be taken",
    ),
    Substitution(
        "hermetic-env",
        "the image's environment",
        "only LANG/LC_ALL/LC_CTYPE/TZ/TMPDIR inherited (so no JUPYTER*/EG_*/KG_*/KERNEL_*); HOME, "
        "JUPYTER_CONFIG_DIR, JUPYTER_DATA_DIR, JUPYTER_RUNTIME_DIR under <workdir>; PATH=<venv>/bin:/usr/bin:/bin; "
        "then the container env",
        "no leakage from the developer's shell or ~/.jupyter",
    ),
)

_SVC_RE = re.compile(
    r"(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
    r"\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?(?![\w.-])"
)
_PORT_ARG_RE = re.compile(r"^(--[\w.-]*port)=(\d+)$", re.IGNORECASE)
_STRIP_ENV_PREFIXES = ("JUPYTER", "EG_", "KG_", "KERNEL_")
_KEEP_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


@dataclass
class _Ctx:
    mounts: dict[str, Path]  # mountPath -> local dir
    ports: dict[int, int]  # containerPort -> local port
    services: dict[str, tuple[str, int]]  # "svc.ns:port" -> (host, port)


def _subst_text(s: str, ctx: _Ctx) -> str:
    """Rows mount, service-host, bind-address, process-proxy applied to one string."""
    for mp in sorted(ctx.mounts, key=len, reverse=True):
        s = re.sub(re.escape(mp.rstrip("/")) + r"(?![\w.-])", str(ctx.mounts[mp]), s)

    def svc(m: re.Match) -> str:
        port = int(m.group("port") or 80)
        key = f"{m.group('svc')}.{m.group('ns')}:{port}"
        if key not in ctx.services:
            raise LocalRunError(
                f"service address {m.group(0)!r} has no local target; pass services={{{key!r}: <process>}}"
            )
        host, lport = ctx.services[key]
        return f"{host}:{lport}"

    s = _SVC_RE.sub(svc, s)
    return s.replace("0.0.0.0", LOOPBACK).replace(K8S_PROCESS_PROXY, LOCAL_PROCESS_PROXY)


def _map_kernel_name(v: Any) -> Any:
    return KERNELSPEC_MAP.get(v, v) if isinstance(v, str) else v


def _subst_json(obj: Any, ctx: _Ctx, key: str | None = None) -> Any:
    """Rows container-port, kernelspec-name + the text rows, applied structurally to JSON."""
    if isinstance(obj, dict):
        return {k: _subst_json(v, ctx, k) for k, v in obj.items()}
    if isinstance(obj, list):
        if key in ("whitelist", "allowed_kernelspecs", "allowed_kernels"):
            return [_map_kernel_name(x) for x in obj]
        return [_subst_json(x, ctx) for x in obj]
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int) and key and (key == "port" or key.endswith("_port")) and obj in ctx.ports:
        return ctx.ports[obj]
    if isinstance(obj, str):
        if key == "default_kernel_name":
            return _map_kernel_name(obj)
        return _subst_text(obj, ctx)
    return obj


def _subst_file(name: str, data: bytes, ctx: _Ctx) -> bytes:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return data  # binary: untouched
    if name.endswith(".json"):
        try:
            return json.dumps(_subst_json(json.loads(text), ctx), indent=1).encode()
        except json.JSONDecodeError:
            pass
    return _subst_text(text, ctx).encode()


def _subst_args(args: list[str], ctx: _Ctx) -> list[str]:
    out: list[str] = []
    for i, a in enumerate(args):
        m = _PORT_ARG_RE.match(a)
        if m and int(m.group(2)) in ctx.ports:
            a = f"{m.group(1)}={ctx.ports[int(m.group(2))]}"
        elif a.isdigit() and i and args[i - 1].lower().endswith("port") and int(a) in ctx.ports:
            a = str(ctx.ports[int(a)])
        out.append(_subst_text(a, ctx))
    return out


def _subst_env(name: str, value: str, ctx: _Ctx) -> str:
    if name.upper().endswith("PORT") and value.isdigit() and int(value) in ctx.ports:
        return str(ctx.ports[int(value)])
    if name in ("EG_DEFAULT_KERNEL_NAME",):
        return _map_kernel_name(value)
    if name in ("EG_ALLOWED_KERNELS", "EG_KERNEL_WHITELIST"):
        for k, v in KERNELSPEC_MAP.items():
            value = value.replace(k, v)
    return _subst_text(value, ctx)


# ---------------------------------------------------------------------------------------
# process handling
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _ppid_map() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                out[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(pid: int) -> list[int]:
    """All live descendant PIDs of pid (EG's kernels run in their own sessions)."""
    ppids = _ppid_map()
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in ppids.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
        return st.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def http(
    method: str, url: str, *, headers: Mapping[str, str] | None = None, body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    """Tiny JSON HTTP helper: returns (status, parsed JSON or text); never raises on HTTP errors."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


@dataclass
class LocalProcess:
    """A started container. ``ports`` maps containerPort -> local port."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen
    log_path: Path
    workdir: Path
    mounts: dict[str, Path]
    ports: dict[int, int]
    main_port: int
    token: str | None = None
    host: str = LOOPBACK
    stop_info: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.main_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def api(self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 30):
        return http(method, self.url + path, headers=self.headers if auth else None, body=body, timeout=timeout)

    def wait_for_log(self, pattern: str, timeout: float = 10) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m:
                return m
            if time.monotonic() > deadline:
                raise LocalRunError(f"{self.name}: no log line /{pattern}/ in {timeout}s\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_ready(self, path: str, timeout: float = 60) -> float:
        """Poll GET path until 200; fail (and stop the process) if it exits or times out."""
        t0 = time.monotonic()
        last: Any = None
        while time.monotonic() - t0 < timeout:
            rc = self.proc.poll()
            if rc is not None:
                self.stop()
                raise LocalRunError(f"{self.name} exited rc={rc} before ready\n--- log tail ---\n{self.log_tail()}")
            try:
                status, _ = http("GET", self.url + path, headers=self.headers, timeout=2)
                if status == 200:
                    return time.monotonic() - t0
                last = status
            except (OSError, urllib.error.URLError) as e:
                last = e
            time.sleep(0.1)
        self.stop()
        raise LocalRunError(f"{self.name} not ready at {path} in {timeout}s (last: {last})\n{self.log_tail()}")

    def stop(self, timeout: float = 15) -> dict:
        """SIGTERM by PID, wait, SIGKILL; then kill recorded descendants (kernels) still alive."""
        if self.stop_info:
            return self.stop_info
        t0 = time.monotonic()
        kids = descendants(self.pid) if self.proc.poll() is None else []
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                killed = True
        leftovers = [k for k in kids if _alive(k)]
        for k in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # anything else left in its own session/group
        self.stop_info = {
            "rc": self.proc.returncode,
            "sigkill": killed,
            "children": kids,
            "children_killed": leftovers,
            "seconds": round(time.monotonic() - t0, 2),
        }
        return self.stop_info


def map_path(value: str, paths: Mapping[str, str | Path]) -> str:
    """value with its leading path (one of ``paths``, longest first) replaced by the local one."""
    for prefix in sorted(paths, key=len, reverse=True):
        base = prefix.rstrip("/")
        if value == prefix or value.startswith(base + "/"):
            return str(paths[prefix]) + value[len(base) :]
    return value


def hermetic_env(workdir: Path, venv: Path) -> dict[str, str]:
    # allowlist, not denylist: the test machine's env (tool tokens etc.) must not reach the
    # servers -- jupyter_server logs its whole env on every session start (gateway mode).
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV and not k.startswith(_STRIP_ENV_PREFIXES)}
    dirs = {
        "HOME": "home",
        "JUPYTER_CONFIG_DIR": "jupyter/config",
        "JUPYTER_DATA_DIR": "jupyter/data",
        "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
        "IPYTHONDIR": "home/.ipython",
    }
    for k, sub in dirs.items():
        (workdir / sub).mkdir(parents=True, exist_ok=True)
        env[k] = str(workdir / sub)
    env.update(
        PATH=f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        PYTHONUNBUFFERED="1",
        JUPYTER_PLATFORM_DIRS="1",
        LANG=env.get("LANG", "C.UTF-8"),
    )
    return env


def start_container(
    container: Mapping[str, Any],
    files: Mapping[str, Mapping[str, bytes | str]] | None,
    *,
    venv: Path,
    workdir: Path,
    role: str = "generic",
    services: Mapping[str, Any] | None = None,
    token: str | None = None,
    ready_path: str | None = None,
    ready_timeout: float = 60,
    extra_env: Mapping[str, str] | None = None,
    pod_ports: Mapping[int, int] | None = None,
) -> LocalProcess:
    """Start one rendered container as a local process (see SUBSTITUTIONS).

    role: "gateway" (EG response-address row), "notebook" (image-command and
    notebook-server-args rows) or "generic".  services: {"svc.ns:port": LocalProcess |
    (LocalProcess, containerPort) | "host:port"} for the service-host row.  token: used
    only for the readiness probe / handle headers.  ready_path: GET until 200.
    extra_env: set after the container env (a test's PYTHONPATH, say).  pod_ports: the local ports of the other
    containers of the same pod (row pod-ports), which this one reaches on its loopback.
    """
    name = container.get("name") or "container"
    workdir = Path(workdir).resolve() / name
    workdir.mkdir(parents=True, exist_ok=True)
    files = files or {}

    # --- ports
    cports = [int(p["containerPort"]) for p in container.get("ports") or []]
    if role == "notebook" and NOTEBOOK_DEFAULT_PORT not in cports:
        cports.insert(0, NOTEBOOK_DEFAULT_PORT)
    ports = {p: free_port() for p in cports}

    # --- services
    svc: dict[str, tuple[str, int]] = {}
    for key, target in (services or {}).items():
        sname, _, sport = key.partition(":")
        sport_i = int(sport or 80)
        if isinstance(target, tuple):
            target, cport = target
        else:
            cport = sport_i
        if isinstance(target, LocalProcess):
            if cport not in target.ports:
                raise LocalRunError(f"service {key}: process {target.name} has no containerPort {cport}")
            svc[f"{sname}:{sport_i}"] = (target.host, target.ports[cport])
        else:
            h, _, p = str(target).rpartition(":")
            svc[f"{sname}:{sport_i}"] = (h, int(p))

    # --- mounts
    mounts: dict[str, Path] = {}
    mount_ro: dict[str, bool] = {}
    for vm in container.get("volumeMounts") or []:
        mp = vm["mountPath"]
        if vm.get("subPath"):
            raise LocalRunError(f"{name}: subPath mounts are not supported ({mp})")
        d = workdir / "mounts" / vm.get("name", uuid.uuid4().hex[:6])
        d.mkdir(parents=True, exist_ok=True)
        mounts[mp] = d
        mount_ro[mp] = bool(vm.get("readOnly"))
    unknown = set(files) - set(mounts)
    if unknown:
        raise LocalRunError(f"{name}: files given for paths that are not volumeMounts: {sorted(unknown)}")
    siblings = {p: local for p, local in (pod_ports or {}).items() if p not in ports}
    ctx = _Ctx(mounts=mounts, ports={**siblings, **ports}, services=svc)
    for mp, content in files.items():
        for fname, data in content.items():
            raw = data.encode() if isinstance(data, str) else bytes(data)
            p = mounts[mp] / fname
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_subst_file(fname, raw, ctx))
            if mount_ro[mp]:
                p.chmod(0o400)

    # --- env
    env = hermetic_env(workdir, Path(venv))
    cenv: dict[str, str] = {}
    for e in container.get("env") or []:
        if "valueFrom" in e:
            raise LocalRunError(
                f"{name}: env {e.get('name')} uses valueFrom, which the local runner cannot "
                "resolve; render a value or mount the file"
            )
        cenv[e["name"]] = _subst_env(e["name"], str(e.get("value", "")), ctx)
    if container.get("envFrom"):
        raise LocalRunError(f"{name}: envFrom is not supported by the local runner")
    if role == "gateway":
        if 8877 in ports:
            cenv.setdefault("EG_RESPONSE_PORT", str(ports[8877]))
        cenv.setdefault("EG_RESPONSE_IP", LOOPBACK)
    env.update(cenv)
    for key, value in (extra_env or {}).items():
        # a test's PYTHONPATH goes before the container's own, which it must not replace
        env[key] = f"{value}{os.pathsep}{env[key]}" if key == "PYTHONPATH" and env.get(key) else value

    # --- argv
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command:
        image = container.get("image", "")
        if role == "notebook" or DOCKER_STACKS_IMAGE.search(image):
            cmd = args or ["start-notebook.py"]
            if os.path.basename(cmd[0]) in DOCKER_STACKS_START:
                sub = cenv.get("DOCKER_STACKS_JUPYTER_CMD", "lab")
                cmd = ["jupyter", sub, *shlex.split(cenv.get("NOTEBOOK_ARGS", "")), *cmd[1:]]
            command, args = cmd, []
        else:
            raise LocalRunError(f"{name}: no command and image {image!r} has no known default command")
    argv = _subst_args(command + args, ctx)
    exe = Path(venv) / "bin" / argv[0]
    if "/" in argv[0] or not exe.exists():
        raise LocalRunError(f"{name}: executable {argv[0]!r} not found as {exe}")
    argv[0] = str(exe)
    main_port = ports[cports[0]] if cports else 0
    if role == "notebook":
        (workdir / "home").mkdir(exist_ok=True)
        root_dir = workdir / "home"
        working_dir = container.get("workingDir")
        if working_dir and map_path(working_dir, mounts) != working_dir:
            root_dir = Path(map_path(working_dir, mounts))  # the server's root is its working directory
        argv += [
            f"--ServerApp.ip={LOOPBACK}",
            f"--ServerApp.port={main_port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={root_dir}",
        ]

    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir / "home",
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lp = LocalProcess(
        name=name,
        role=role,
        argv=argv,
        env=env,
        proc=proc,
        log_path=log_path,
        workdir=workdir,
        mounts=mounts,
        ports=ports,
        main_port=main_port,
        token=token,
    )
    if ready_path:
        lp.wait_ready(ready_path, ready_timeout)
    return lp


class LocalStack:
    """Starts containers and stops them in reverse order (notebook before gateway), always."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir).resolve()
        self.procs: list[LocalProcess] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def stop_all(self) -> list[dict]:
        out = []
        while self.procs:
            p = self.procs.pop()
            out.append({p.name: p.stop()})
        return out

    def start(self, container, files=None, **kw) -> LocalProcess:
        p = start_container(container, files, workdir=self.workdir, **kw)
        self.procs.append(p)
        return p

    def start_gateway(
        self, container, files=None, *, token: str | None = None, venv: Path = EG_VENV, ready_timeout: float = 60, **kw
    ) -> LocalProcess:
        """EG: ready when GET /api/kernelspecs (with token) is 200."""
        return self.start(
            container,
            files,
            venv=venv,
            role="gateway",
            token=token,
            ready_path="/api/kernelspecs",
            ready_timeout=ready_timeout,
            **kw,
        )

    def start_notebook(
        self,
        container,
        files=None,
        *,
        token: str | None = None,
        venv: Path = FE_VENV,
        services: Mapping[str, Any] | None = None,
        ready_timeout: float = 60,
        **kw,
    ) -> LocalProcess:
        """jupyter server: ready when GET /api is 200 (no gateway round trip)."""
        return self.start(
            container,
            files,
            venv=venv,
            role="notebook",
            token=token,
            services=services,
            ready_path="/api",
            ready_timeout=ready_timeout,
            **kw,
        )


# ---------------------------------------------------------------------------------------
# kernel websocket client
# ---------------------------------------------------------------------------------------


class KernelWS:
    """Minimal Jupyter kernel websocket client (v1 JSON protocol, no subprotocol).

    A thread reads the socket all the time, as a browser tab does: it answers the server's pings at
    once and queues the messages for ``next_message``. Jupyter Server closes a websocket whose pongs
    stop for 90 s (Enterprise Gateway for 30 s at its shortest ping interval); a client that answered
    pings only while a test read it lost the notebook's kernel when the tests between its uses took
    longer than that (CI, stop 20)."""

    def __init__(
        self, base_url: str, kernel_id: str, token: str | None = None, timeout: float = 30, scheme: str = "token"
    ):
        import websocket  # websocket-client

        ws_url = base_url.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"
        self.session = uuid.uuid4().hex
        ws_url += f"?session_id={self.session}"
        hdr = [f"Authorization: {scheme} {token}"] if token else []
        self.ws = websocket.create_connection(ws_url, header=hdr, timeout=timeout)
        self.pings_answered = 0
        self._inbox: queue.Queue[dict | Exception] = queue.Queue()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"kernel-ws-{kernel_id[:8]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Read until the connection ends; the end (an exception) is the last thing queued."""
        import websocket

        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)  # answers a ping before it returns
            except websocket.WebSocketTimeoutException:
                if self._closing.is_set():
                    self._inbox.put(websocket.WebSocketConnectionClosedException("closed by the client"))
                    return
                continue
            except Exception as e:  # reset, broken pipe, closed socket: the caller sees it
                self._inbox.put(e)
                return
            if opcode == websocket.ABNF.OPCODE_PING:
                self.pings_answered += 1
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                who = "client" if self._closing.is_set() else "server"
                self._inbox.put(websocket.WebSocketConnectionClosedException(f"closed by the {who}"))
                return
            elif opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                self._inbox.put(json.loads(data))

    def close(self) -> None:
        """Close as a browser does (a close frame, the server's reply), then drop the socket."""
        if self._closing.is_set():
            return
        self._closing.set()
        with contextlib.suppress(Exception):
            self.ws.send_close()
        self._reader.join(timeout=5)
        self.ws.shutdown()
        self._reader.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, code: str, timeout: float = 30) -> dict:
        """Run code; return {'stdout','stderr','result','status','error','states'}."""
        return self.wait(self.start(code), timeout)

    def start(self, code: str) -> str:
        """Send an execute_request without waiting for it; returns its msg_id."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        return msg_id

    def next_message(self, deadline: float) -> dict | None:
        """The next message, or None if none came by ``deadline``. Raises what ended the connection."""
        try:
            item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            self._inbox.put(item)  # every later read raises it too
            raise item
        return item

    def wait_for_state(self, msg_id: str, state: str, timeout: float = 30) -> None:
        """Wait for the kernel's status message ``state`` caused by request ``msg_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.next_message(deadline)
            if msg is None:
                continue
            mine = (msg.get("parent_header") or {}).get("msg_id") == msg_id
            if mine and msg.get("msg_type") == "status" and msg["content"]["execution_state"] == state:
                return
        raise LocalRunError(f"no {state} status for {msg_id} within {timeout}s")

    def wait(self, msg_id: str, timeout: float = 30) -> dict:
        out = {"stdout": "", "stderr": "", "result": None, "status": None, "error": None, "states": []}
        got_reply = got_idle = False
        deadline = time.monotonic() + timeout
        while not (got_reply and got_idle):
            if time.monotonic() > deadline:
                raise LocalRunError(f"execute timed out after {timeout}s: {out}")
            msg = self.next_message(deadline)
            if msg is None or (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            t, c = msg.get("msg_type") or msg["header"]["msg_type"], msg.get("content", {})
            if t == "stream":
                out[c.get("name", "stdout")] = out.get(c.get("name", "stdout"), "") + c.get("text", "")
            elif t == "execute_result":
                out["result"] = c["data"].get("text/plain")
            elif t == "error":
                out["error"] = f"{c.get('ename')}: {c.get('evalue')}"
            elif t == "status":
                out["states"].append(c["execution_state"])
                got_idle = got_idle or c["execution_state"] == "idle"
            elif t == "execute_reply":
                out["status"] = c.get("status")
                got_reply = True
        return out


# ---------------------------------------------------------------------------------------
# browser (Playwright driver from its wheel + Debian chromium; no browser download; see jupyterlab.py)
# ---------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
