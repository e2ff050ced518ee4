"""The JupyterNotebook hooks: customize (which gateway to watch) and sync, both pure.

Children, all in the notebook's namespace:
  Deployment <name>-notebook        a Jupyter server pointed at the gateway through its
                                    environment, so a user's own command is left alone
  Service    <name>-notebook        port 8888
  Secret     <name>-notebook-auth   the access token (and password hash), mounted as files;
                                    absent when spec.auth.secretRef names the user's own

No secret ever reaches argv, an environment variable or the status: Jupyter Server logs
its whole environment when it starts a kernel through a gateway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from pydantic import ValidationError

from . import children as ch
from .gateway import gateway_url
from .models import API_VERSION, DEFAULT_NOTEBOOK_IMAGE, JupyterNotebookSpec
from .podsecurity import harden, violations
from .quantity import canonical_quantity, canonical_resources

GATEWAYS = f"JupyterGateway.{API_VERSION}"
PORT = 8888
AUTH_DIR = "/etc/jupyter-notebook/auth"
AUTH_VOLUME = "jupyter-notebook-auth"
TOKEN_FILE = "token"
CONFIG_FILE = "jupyter_server_config.json"
# Jupyter Server's gateway client pads the kernel launch timeout by this much.
LAUNCH_TIMEOUT_PAD = 2
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}}
# Environment variables that would carry a secret (refused) or that the hook sets from the spec.
SECRET_ENV = {"JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JUPYTER_GATEWAY_AUTH_TOKEN"}
MANAGED_ENV = {"JUPYTER_TOKEN_FILE", "JUPYTER_CONFIG_PATH", "JUPYTER_GATEWAY_URL"}
_PASSWORD_HASH = re.compile(r"^(argon2:.+|(md5|sha1|sha224|sha256|sha384|sha512|blake2b|blake2s):[^:]*:[0-9a-f]+)$")


def child_name(name: str) -> str:
    return f"{name}-notebook"


def auth_secret_name(name: str) -> str:
    return f"{name}-notebook-auth"


def notebook_url(name: str, namespace: str) -> str:
    return f"http://{child_name(name)}.{namespace}.svc:{PORT}"


def customize_notebook(parent: dict) -> dict:
    """Related resources: the one JupyterGateway the notebook points at (hook v2: any namespace)."""
    spec = parent.get("spec")
    gateway = spec.get("gateway") if isinstance(spec, dict) else None
    if not isinstance(gateway, dict) or not isinstance(gateway.get("name"), str):
        return {"relatedResources": []}
    namespace = gateway.get("namespace") or parent["metadata"].get("namespace") or "default"
    return {
        "relatedResources": [
            {
                "apiVersion": API_VERSION,
                "resource": "jupytergateways",
                "namespace": namespace,
                "names": [gateway["name"]],
            }
        ]
    }


def sync_notebook(parent: dict, children: dict, related: dict, now: str, new_token: str) -> dict:
    """Desired children and status of one JupyterNotebook (Metacontroller sync, hook v2).

    ``new_token`` is fresh randomness from the caller, used only the first time, when
    no auth Secret exists yet; afterwards the observed Secret is returned unchanged.
    """
    meta = parent["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "default"
    previous = ch.previous_conditions(parent)
    deployment = ch.observed(children, ch.DEPLOYMENTS, namespace, child_name(name))
    status = {"url": notebook_url(name, namespace), **ch.replica_counts(deployment)}

    def keep(reason: str, message: str, gateway_cond: dict | None = None) -> dict:
        ready = ch.condition("Ready", False, reason, message, previous, now)
        conditions = [ready] + ([gateway_cond] if gateway_cond else [])
        return _response(meta, {**status, "conditions": conditions}, ch.kept(children))

    try:
        spec = JupyterNotebookSpec.model_validate(parent.get("spec") or {})
    except ValidationError as exc:
        return keep("InvalidSpec", ch.spec_error(exc))

    gateway, gateway_cond = None, None
    if spec.gateway:
        gw_namespace = spec.gateway.namespace or namespace
        gateway = (related.get(GATEWAYS) or {}).get(f"{gw_namespace}/{spec.gateway.name}")
        gateway_cond = _gateway_condition(spec.gateway.name, gw_namespace, gateway, previous, now)
        status["gatewayUrl"] = gateway_url(spec.gateway.name, gw_namespace)
        if gateway is None:
            return keep("GatewayNotFound", gateway_cond["message"], gateway_cond)

    observed_secret = ch.observed(children, ch.SECRETS, namespace, auth_secret_name(name))
    secret = _auth_secret(name, namespace, spec, observed_secret, new_token, meta.get("uid", ""))
    pod, problems = _pod_template(name, meta.get("uid", ""), spec, gateway, secret)
    if problems:
        return keep("InvalidSpec", "; ".join(problems), gateway_cond)

    labels = ch.labels("notebook", name)
    replicas = 0 if spec.suspend else 1
    desired = [_deployment(name, namespace, labels, pod, replicas), _service(name, namespace, labels)]
    if secret is not None:
        desired.append(secret)
        status["tokenSecret"] = secret["metadata"]["name"]
    elif spec.auth and spec.auth.secret_ref:
        status["tokenSecret"] = spec.auth.secret_ref.name

    ok, reason, message = ch.deployment_ready(deployment)
    if ok and gateway_cond and gateway_cond["status"] != "True":
        ok, reason, message = False, gateway_cond["reason"], gateway_cond["message"]
    if spec.suspend:
        ok, reason, message = False, "Suspended", "spec.suspend is true: the notebook is scaled to zero"
    suspended = ch.condition(
        "Suspended",
        spec.suspend,
        "Suspended" if spec.suspend else "Running",
        "scaled to zero; its Service and Secret are kept" if spec.suspend else "not suspended",
        previous,
        now,
    )
    conditions = [ch.condition("Ready", ok, reason, message, previous, now), suspended]
    status["conditions"] = conditions + ([gateway_cond] if gateway_cond else [])
    return _response(meta, status, desired)


def _response(meta: dict, status: dict, children: list[dict]) -> dict:
    return {"status": {"observedGeneration": meta.get("generation", 0), **status}, "children": children}


def _gateway_condition(name: str, namespace: str, gateway: dict | None, previous, now: str) -> dict:
    if gateway is None:
        return ch.condition(
            "GatewayReady", False, "GatewayNotFound", f"JupyterGateway {namespace}/{name} not found", previous, now
        )
    ready = next((c for c in (gateway.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True":
        return ch.condition(
            "GatewayReady", True, "GatewayReady", f"JupyterGateway {namespace}/{name} is ready", previous, now
        )
    detail = ready.get("message") if ready else "it reports no status yet"
    return ch.condition(
        "GatewayReady",
        False,
        "GatewayNotReady",
        f"JupyterGateway {namespace}/{name} is not ready: {detail}",
        previous,
        now,
    )


def _auth_secret(
    name: str, namespace: str, spec: JupyterNotebookSpec, observed: dict | None, new_token: str, uid: str
) -> dict | None:
    """The Secret holding the token file (and the password configuration), if the hook owns one."""
    auth = spec.auth
    if auth and auth.secret_ref:
        return None
    data: dict[str, str] = {}
    if auth and auth.mode == "disable":
        data[TOKEN_FILE] = ""  # an empty token turns authentication off
    elif auth and auth.token:
        data[TOKEN_FILE] = _b64(auth.token)
    elif observed and (observed.get("data") or {}).get(TOKEN_FILE):
        data[TOKEN_FILE] = observed["data"][TOKEN_FILE]  # generated once, then kept
    else:
        data[TOKEN_FILE] = _b64(new_token)
    if auth and auth.password:
        hashed = _password_hash(auth.password, uid)
        config = {"PasswordIdentityProvider": {"hashed_password": hashed}}
        data[CONFIG_FILE] = _b64(json.dumps(config, sort_keys=True))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": auth_secret_name(name), "namespace": namespace, "labels": ch.labels("notebook", name)},
        "type": "Opaque",
        "data": data,
    }


def _password_hash(password: str, uid: str) -> str:
    """A Jupyter password hash; a salt derived from the parent keeps the hook pure and stable."""
    if _PASSWORD_HASH.match(password):
        return password
    salt = hashlib.sha256(f"salt:{uid}".encode()).hexdigest()[:12]
    return f"sha256:{salt}:{hashlib.sha256((password + salt).encode()).hexdigest()}"


def _pod_template(
    name: str, uid: str, spec: JupyterNotebookSpec, gateway: dict | None, secret: dict | None
) -> tuple[dict, list[str]]:
    """The notebook pod: the user's template (or the default one) plus what the hook manages."""
    if spec.template:
        template = spec.template.model_dump(exclude_none=True)
        pod_spec = template["spec"]
        user_meta = template.get("metadata") or {}
    else:
        pod_spec = {
            "containers": [{"name": "notebook", "image": DEFAULT_NOTEBOOK_IMAGE, "resources": DEFAULT_RESOURCES}]
        }
        user_meta = {}
    problems = _reserved_env(pod_spec)
    containers = pod_spec["containers"]
    index = next((i for i, c in enumerate(containers) if c["name"] == "notebook"), 0)
    notebook = dict(containers[index])

    env = _managed_env(name, spec, gateway, secret)
    notebook["env"] = [_canonical_env(e) for e in notebook.get("env") or []]
    taken = {e.get("name") for e in notebook["env"]}
    notebook["env"] += [e for e in env if e["name"] not in taken]
    notebook["volumeMounts"] = [
        *list(notebook.get("volumeMounts") or []),
        {"name": AUTH_VOLUME, "mountPath": AUTH_DIR, "readOnly": True},
    ]
    if not any(p.get("containerPort") == PORT for p in notebook.get("ports") or []):
        notebook["ports"] = [
            *list(notebook.get("ports") or []),
            {"name": "notebook", "containerPort": PORT, "protocol": "TCP"},
        ]
    notebook.setdefault("readinessProbe", {"httpGet": {"path": "/api", "port": PORT}, "periodSeconds": 10})
    containers = [*containers[:index], notebook, *containers[index + 1 :]]

    volumes = list(pod_spec.get("volumes") or [])
    if any(v.get("name") == AUTH_VOLUME for v in volumes):
        problems.append(f"spec.template.spec.volumes: the name {AUTH_VOLUME} is reserved")
    volumes.append(_auth_volume(spec, secret))
    pod_spec = {**pod_spec, "containers": containers, "volumes": volumes}
    for list_name in ("initContainers", "containers"):
        if pod_spec.get(list_name):
            pod_spec[list_name] = [
                _canonical_resources(c, f"spec.template.spec.{list_name}[{i}]", problems)
                for i, c in enumerate(pod_spec[list_name])
            ]
    pod_spec.setdefault("automountServiceAccountToken", False)
    pod_spec = harden(pod_spec)
    problems += violations(pod_spec, "spec.template.spec")

    selector = ch.selector("notebook", name)
    labels = {**(user_meta.get("labels") or {}), **ch.labels("notebook", name), **selector}
    annotations = dict(user_meta.get("annotations") or {})
    if spec.auth:
        # A new token or password restarts the server: it reads them only at start.
        # (A generated token never changes, so it needs no hash.)
        salted = json.dumps([uid, spec.auth.model_dump()], sort_keys=True)
        annotations["kubeflow.tkestack.io/auth-hash"] = hashlib.sha256(salted.encode()).hexdigest()[:16]
    metadata = {"labels": labels, **({"annotations": annotations} if annotations else {})}
    return {"metadata": metadata, "spec": pod_spec}, problems


def _managed_env(name: str, spec: JupyterNotebookSpec, gateway: dict | None, secret: dict | None) -> list[dict]:
    env = [{"name": "JUPYTER_TOKEN_FILE", "value": f"{AUTH_DIR}/{TOKEN_FILE}"}]
    if secret is not None and CONFIG_FILE in secret["data"]:
        env.append({"name": "JUPYTER_CONFIG_PATH", "value": AUTH_DIR})
    if gateway is not None:
        gw_ns = spec.gateway.namespace or gateway["metadata"].get("namespace")
        timeout = (gateway.get("spec") or {}).get("kernelLaunchTimeout") or 60
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            timeout = 60
        env += [
            {"name": "JUPYTER_GATEWAY_URL", "value": gateway_url(spec.gateway.name, gw_ns)},
            # Both sides wait as long as the gateway lets a kernel pod start; otherwise
            # the notebook's 40 s default wins (kernel images can take longer to pull).
            {"name": "KERNEL_LAUNCH_TIMEOUT", "value": str(timeout)},
            {"name": "JUPYTER_GATEWAY_REQUEST_TIMEOUT", "value": str(timeout + LAUNCH_TIMEOUT_PAD)},
            # Enterprise Gateway refuses kernels without a user and attributes them by it.
            {"name": "KERNEL_USERNAME", "value": name},
            *_kernel_resource_env(spec.kernel_resources),
        ]
    return env


# Jupyter Server forwards every KERNEL_* variable of its environment with each kernel start;
# Enterprise Gateway's kernel pod template turns these into the kernel pod's resources.
_KERNEL_RESOURCE_ENV = {"cpu": "KERNEL_CPUS", "memory": "KERNEL_MEMORY", "gpu": "KERNEL_GPUS"}


def _kernel_resource_env(resources) -> list[dict]:
    env = []
    for part, suffix in (("requests", ""), ("limits", "_LIMIT")):
        quantities = getattr(resources, part, None) if resources else None
        for field, variable in _KERNEL_RESOURCE_ENV.items():
            value = getattr(quantities, field, None) if quantities else None
            if value is not None:
                env.append({"name": variable + suffix, "value": canonical_quantity(value)})
    return env


def _auth_volume(spec: JupyterNotebookSpec, secret: dict | None) -> dict:
    if secret is not None:
        source = {"secretName": secret["metadata"]["name"], "defaultMode": 0o440}
    else:
        ref = spec.auth.secret_ref
        source = {"secretName": ref.name, "defaultMode": 0o440, "items": [{"key": ref.key, "path": TOKEN_FILE}]}
    return {"name": AUTH_VOLUME, "secret": source}


def _reserved_env(pod_spec: dict) -> list[str]:
    problems = []
    for list_name in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(list_name) or []):
            for j, var in enumerate(container.get("env") or []):
                where = f"spec.template.spec.{list_name}[{i}].env[{j}]"
                if var.get("name") in SECRET_ENV:
                    problems.append(f"{where}: {var['name']} would put a secret in the environment; use spec.auth")
                elif var.get("name") in MANAGED_ENV:
                    problems.append(f"{where}: {var['name']} is set from spec.gateway and spec.auth")
    return problems


def _canonical_resources(container: dict, where: str, problems: list[str]) -> dict:
    if not container.get("resources"):
        return container
    try:
        return {**container, "resources": canonical_resources(container["resources"])}
    except (ValueError, AttributeError, TypeError) as exc:
        problems.append(f"{where}.resources: {exc}")
        return container


def _canonical_env(var: dict) -> dict:
    # The API server drops an empty value; sending one would update the Deployment forever.
    return {k: v for k, v in var.items() if not (k == "value" and v == "")}


def _deployment(name: str, namespace: str, labels: dict, pod: dict, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            # One user's server; a second pod would fight over a ReadWriteOnce home volume.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": ch.selector("notebook", name)},
            "template": pod,
        },
    }


def _service(name: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels},
        "spec": {
            "selector": ch.selector("notebook", name),
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
