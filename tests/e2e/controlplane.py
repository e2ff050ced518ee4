"""A real, local Kubernetes control plane for end-to-end tests.

etcd + kube-apiserver + kube-controller-manager built from pinned Go modules by
tests/e2e/build.sh (+ optionally Metacontroller, out of cluster, from the upstream release
binary named by $METACONTROLLER_BIN), all listening on
127.0.0.1 on free ports. There is no kubelet and no scheduler: Pods are API objects
that stay Pending.

    with ControlPlane(Path("/tmp/cp")) as cp:
        cp.kubectl("get", "ns")
        mc = cp.start_metacontroller()

Every component logs to <workdir>/<name>.log; the logs are kept after teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BUILD_SCRIPT = HERE / "build.sh"
DEFAULT_BIN_DIR = Path(os.environ.get("E2E_BIN_DIR", REPO_ROOT / ".cache" / "e2e" / "bin"))
CORE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_CONTROLLERS = (
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "validatingadmissionpolicy-status-controller",  # type-checks ValidatingAdmissionPolicies
    "clusterrole-aggregation-controller",  # fills admin, edit and view, as in any cluster
)

# Upstream's manifests/production: the ServiceAccount Metacontroller runs as (namespace, name),
# and our files that give it its rights (manifests/metacontroller-install).
METACONTROLLER_SERVICE_ACCOUNT = ("metacontroller", "metacontroller")
METACONTROLLER_INSTALL = REPO_ROOT / "manifests" / "metacontroller-install"
METACONTROLLER_RBAC_FILES = ("rbac.yaml", "kernel-roles.yaml")

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(probe: Callable[[], T], timeout: float = 60.0, interval: float = 0.25, what: str = "condition") -> T:
    """Poll ``probe`` until it returns a truthy value (returned) or ``timeout`` seconds pass.

    Exceptions raised by ``probe`` count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f": {last!r}" if last else ""))
        time.sleep(interval)


@dataclass
class Process:
    """A component started by the harness. Its output goes to ``log``."""

    name: str
    popen: subprocess.Popen
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise ControlPlaneError(
                f"{self.name} (pid {self.pid}) exited with {self.popen.returncode}; log {self.log}:\n{self.log_tail()}"
            )

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Idempotent."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
            except ProcessLookupError:
                pass
        self.popen.wait()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, with an admin kubeconfig."""

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path = DEFAULT_BIN_DIR,
        extra_controllers: Sequence[str] = (),
        apiserver_args: Sequence[str] = (),
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        address: str = "127.0.0.1",
    ) -> None:
        """extra_controllers: more kube-controller-manager controllers (e.g. resourcequota-controller);
        controllers: the base set (the scale benchmark drops the deployment and replicaset ones);
        address: where kube-apiserver listens and what it advertises (a real node's pods need an
        address they can reach, tests/e2e/node.py)."""
        self.workdir = Path(workdir).resolve()
        self.address = address
        self.apiserver_args = list(apiserver_args)
        self.controllers = list(controllers)
        self.bin_dir = Path(bin_dir)
        self.extra_controllers = tuple(extra_controllers)
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.apiserver_port = 0
        self.server = ""
        self.processes: list[Process] = []  # in start order; stopped in reverse
        self.metacontroller: Process | None = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(
                f"e2e binary {path} is missing: run `bash {BUILD_SCRIPT.relative_to(REPO_ROOT)}` first"
            )
        return path

    def start(self) -> None:
        for name in CORE_BINARIES:
            self.binary(name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfig()
        self._start_controller_manager()

    def stop(self) -> None:
        """Stop every component, newest first. Logs stay in the workdir."""
        errors = []
        for proc in reversed(self.processes):
            try:
                proc.stop()
            except Exception as exc:
                errors.append(f"{proc.name}: {exc!r}")
        self.processes.clear()
        self.metacontroller = None
        if errors:
            raise ControlPlaneError("teardown problems: " + "; ".join(errors))

    def _spawn(self, name: str, argv: Sequence[str | Path], env: dict[str, str] | None = None) -> Process:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # a ^C to pytest does not hit the components first
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def _wait_ready(self, proc: Process, probe: Callable[[], bool], timeout: float = 90.0) -> None:
        def check() -> bool:
            proc.check_alive()
            return probe()

        try:
            wait_for(check, timeout=timeout, what=f"{proc.name} to become ready")
        except TimeoutError as exc:
            raise ControlPlaneError(f"{exc}; log {proc.log}:\n{proc.log_tail()}") from None

    # ---------------------------------------------------------------- PKI
    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.pki)

    def _make_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        if (self.pki / "admin.crt").exists():
            return
        o = self._openssl
        o(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=e2e-ca",
        )
        o("genrsa", "-out", "sa.key", "2048")
        o("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        sans = ",".join(
            [
                "IP:127.0.0.1",
                f"IP:{self.address}",
                "IP:10.96.0.1",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        )
        certs = {  # name: (subject, extensions)
            "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
            "admin": ("/O=system:masters/CN=e2e-admin", "extendedKeyUsage=clientAuth"),
        }
        for name, (subj, ext) in certs.items():
            self.issue_cert(name, subj, ext)

    def issue_cert(self, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        """A key and a certificate signed by the cluster CA: pki/<name>.crt and pki/<name>.key."""
        o = self._openssl
        (self.pki / f"{name}.ext").write_text(extensions + "\n")
        o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        o(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "30",
            "-extfile",
            f"{name}.ext",
        )
        return self.pki / f"{name}.crt", self.pki / f"{name}.key"

    def ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the cluster CA and presenting the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def api_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path`` from kube-apiserver as admin; returns (status, body)."""
        try:
            with urllib.request.urlopen(self.server + path, context=self.ssl_context(), timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    # ---------------------------------------------------------------- components
    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                self.binary("etcd"),
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throwaway data; much faster on slow disks
            ],
        )
        proc.ports = {"client": client, "peer": peer}

        def healthy() -> bool:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait_ready(proc, healthy)

    def _start_apiserver(self) -> None:
        self.apiserver_port = free_port()
        self.server = f"https://{self.address}:{self.apiserver_port}"
        pki = self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                self.binary("kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                # PodSecurity is on by default; listed so the intent is explicit.
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity",
                "--allow-privileged=true",  # so privileged pods are refused by PodSecurity, not by validation
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                # 127.0.0.1 may not be published as the `kubernetes` Service endpoint.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self.apiserver_args,
            ],
        )
        proc.ports = {"secure": self.apiserver_port}
        self._wait_ready(proc, lambda: self.api_get("/readyz")[0] == 200)

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {"server": self.server, "certificate-authority": str(pki / "ca.crt")},
                        }
                    ],
                    "users": [
                        {
                            "name": "e2e-admin",
                            "user": {
                                "client-certificate": str(pki / "admin.crt"),
                                "client-key": str(pki / "admin.key"),
                            },
                        }
                    ],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
                    "current-context": "e2e",
                },
                indent=2,
            )
        )

    def _start_controller_manager(self) -> None:
        port = free_port()
        kc = str(self.kubeconfig)
        proc = self._spawn(
            "kube-controller-manager",
            [
                self.binary("kube-controller-manager"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--leader-elect=false",
                "--controllers=" + ",".join([*self.controllers, *self.extra_controllers]),
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        proc.ports = {"secure": port}
        # Ready once it has done real work: the serviceaccount controller made `default/default`.
        self._wait_ready(proc, lambda: self.api_get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200)

    # ---------------------------------------------------------------- kubectl
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster. Raises ControlPlaneError if ``check`` and rc != 0."""
        argv = [str(self.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr.strip()}\n{res.stdout.strip()}"
            )
        return res

    def kubectl_json(self, *args: str) -> Any:
        """``kubectl <args> -o json`` parsed."""
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, manifest: str | dict | list) -> str:
        """``kubectl apply -f -`` of YAML text or of an object / list of objects."""
        if not isinstance(manifest, str):
            items = manifest if isinstance(manifest, list) else [manifest]
            manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self.kubectl("apply", "-f", "-", input=manifest).stdout

    def apply_server_side(self, objects: list[dict]) -> str:
        """Server-side apply (field manager ``e2e``) of objects as one List; kubectl's output and warnings."""
        items = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        res = self.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=items)
        return res.stdout + res.stderr

    def allowed(
        self, user: str, verb: str, group: str, resource: str, namespace: str = "", subresource: str = ""
    ) -> bool:
        """The authorizer's answer for ``user`` (a ServiceAccount's username gets its groups), by a
        SubjectAccessReview: unlike `kubectl auth can-i`, it needs no discovery of the resource."""
        groups = ["system:authenticated"]
        if user.startswith("system:serviceaccount:"):
            groups += ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
        attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": {**attributes, "subresource": subresource}},
        }
        out = self.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout
        return bool(json.loads(out)["status"].get("allowed"))

    def exists(self, *args: str) -> bool:
        """True if ``kubectl get <args>`` finds the object."""
        res = self.kubectl("get", *args, "--ignore-not-found", "-o", "name", check=False)
        if res.returncode != 0:
            return False
        return bool(res.stdout.strip())

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace and wait until its `default` ServiceAccount exists (pods need it)."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
        wait_for(
            lambda: self.exists("serviceaccount", "default", "-n", name),
            timeout=30,
            what=f"serviceaccount default in namespace {name}",
        )

    def wait_for_resource(self, resource: str, timeout: float = 60.0) -> None:
        """Wait until the API serves ``resource`` (e.g. "widgets.example.com") - e.g. after a CRD apply."""
        wait_for(
            lambda: self.kubectl("get", resource, "-A", check=False).returncode == 0,
            timeout=timeout,
            what=f"resource {resource} to be served",
        )

    # ---------------------------------------------------------------- metacontroller
    def apply_metacontroller_crds(self) -> Path:
        """Install Metacontroller's CRDs ($METACONTROLLER_CRDS); returns the binary to run."""
        binary, crds = metacontroller_release()
        self.kubectl("apply", "--server-side", "-f", str(crds))
        for crd in ("compositecontrollers", "decoratorcontrollers", "controllerrevisions"):
            self.kubectl("wait", "--for=condition=Established", f"crd/{crd}.metacontroller.k8s.io", "--timeout=60s")
        return binary

    def metacontroller_identity(self) -> Path:
        """A kubeconfig for Metacontroller's ServiceAccount, bound to the install's ClusterRoles only.

        As the install does (manifests/metacontroller-install): upstream's ServiceAccount
        metacontroller/metacontroller and its ClusterRoleBinding to the ClusterRole `metacontroller`,
        whose rules are ours (rbac.yaml), plus `bind` on the approved kernel roles (kernel-roles.yaml).
        The token comes from the TokenRequest API, as a pod's would.
        """
        namespace, name = METACONTROLLER_SERVICE_ACCOUNT
        self.apply(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "metacontroller"},
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "metacontroller",
                    },
                },
            ]
        )
        self.kubectl("apply", *[f"-f={METACONTROLLER_INSTALL / f}" for f in METACONTROLLER_RBAC_FILES])
        user = f"system:serviceaccount:{namespace}:{name}"
        group = "kubeflow.tkestack.io"
        wait_for(lambda: self.allowed(user, "watch", group, "jupytergateways"), timeout=30, what=f"RBAC for {user}")
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=48h").stdout.strip()
        return self.token_kubeconfig(user, token, self.workdir / "metacontroller.kubeconfig")

    def token_kubeconfig(self, user: str, token: str, path: Path) -> Path:
        """A kubeconfig for this cluster that authenticates with ``token`` (a file, mode 0600: a
        token never goes on a command line)."""
        config = json.loads(self.kubeconfig.read_text())
        config["users"] = [{"name": user, "user": {"token": token}}]
        config["contexts"] = [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}]
        path.touch(mode=0o600)
        path.write_text(json.dumps(config, indent=2))
        return path

    def start_metacontroller(self, extra_args: Sequence[str] = (), log_level: int = 4) -> Process:
        """Apply Metacontroller's CRDs, then run $METACONTROLLER_BIN out of cluster as its
        ServiceAccount with the install's narrowed RBAC (``metacontroller_identity``).

        Returns the Process (``.pid``, ``.log``, ``.ports``) once /readyz answers 200.
        """
        if self.metacontroller and self.metacontroller.alive():
            raise ControlPlaneError("metacontroller already running; call stop_metacontroller() first")
        binary = self.apply_metacontroller_crds()
        kubeconfig = self.metacontroller_identity()
        metrics, health = free_port(), free_port()
        proc = self._spawn(
            "metacontroller",
            [
                binary,
                f"--zap-log-level={log_level}",
                f"--metrics-address=127.0.0.1:{metrics}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                *extra_args,
            ],
            env={"KUBECONFIG": str(kubeconfig)},
        )
        proc.ports = {"metrics": metrics, "health": health}
        self.metacontroller = proc

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2) as r:
                return r.status == 200

        self._wait_ready(proc, ready)
        return proc

    def stop_metacontroller(self) -> None:
        if self.metacontroller:
            self.metacontroller.stop()
            self.processes.remove(self.metacontroller)
            self.metacontroller = None


SHIPPED_FLAGS_FILE = METACONTROLLER_INSTALL / "flags.yaml"


def shipped_metacontroller_flags() -> list[str]:
    """The args the install (manifests/metacontroller-install) gives Metacontroller: one place for both."""
    import yaml

    patch = yaml.safe_load(SHIPPED_FLAGS_FILE.read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    return [str(arg) for arg in container["args"]]


METACONTROLLER_HOWTO = (
    "Metacontroller v4.17.2 is not part of this repository. Give its release binary and CRD manifest:\n"
    "  METACONTROLLER_BIN=/path/to/metacontroller METACONTROLLER_CRDS=/path/to/metacontroller-crds-v1.yaml\n"
    "The binary is /usr/bin/metacontroller in the image ghcr.io/metacontroller/metacontroller:v4.17.2 (or build\n"
    "it from the upstream tag v4.17.2); the CRDs are manifests/production/metacontroller-crds-v1.yaml at that tag:\n"
    "  https://raw.githubusercontent.com/metacontroller/metacontroller/v4.17.2/manifests/production/"
    "metacontroller-crds-v1.yaml"
)


def metacontroller_given() -> bool:
    """True when both METACONTROLLER_BIN and METACONTROLLER_CRDS are set."""
    return bool(os.environ.get("METACONTROLLER_BIN") and os.environ.get("METACONTROLLER_CRDS"))


def metacontroller_release() -> tuple[Path, Path]:
    """(binary, CRD manifest) from $METACONTROLLER_BIN and $METACONTROLLER_CRDS, checked to exist."""
    binary = Path(os.environ.get("METACONTROLLER_BIN", ""))
    crds = Path(os.environ.get("METACONTROLLER_CRDS", ""))
    if not metacontroller_given():
        raise ControlPlaneError("METACONTROLLER_BIN and METACONTROLLER_CRDS are not set.\n" + METACONTROLLER_HOWTO)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ControlPlaneError(f"METACONTROLLER_BIN={binary} is not an executable file.\n" + METACONTROLLER_HOWTO)
    if not crds.is_file():
        raise ControlPlaneError(f"METACONTROLLER_CRDS={crds} is not a file.\n" + METACONTROLLER_HOWTO)
    return binary, crds
