"""The JupyterNotebook hooks: customize (which gateway to watch) and sync, both pure.

Children, all in the notebook's namespace:
  Deployment <name>-notebook        a Jupyter server pointed at the gateway through its
                                    environment, so a user's own command is left alone
  Service    <name>-notebook        port 8888
  Secret     <name>-notebook-auth   the access token and password hash, mounted as files (see
                                    notebook_auth)
  ServiceAccount <name>-notebook    the identity the notebook shows its gateway, as a projected
                                    token (see notebook_identity); only with spec.gateway
  ConfigMap  <name>-notebook-config a jupyter_server_config.py that lets JupyterLab's kernel
                                    websocket through the gateway (see notebook_config); only
                                    with spec.gateway
  PersistentVolumeClaim, RoleBinding  the workspace and the gateway's right to run this
                                    notebook's kernels here (see notebook_kernels)

No gateway secret reaches a notebook: the gateway's front door identifies it by its
ServiceAccount token and lets in only the namespaces the gateway lists in
spec.allowedNamespaces (and its own); notebooks of others get NamespaceNotAllowed here. What
a gateway grants (the gateway-client pod labels its NetworkPolicy admits, the kernel
RoleBinding) is decided once, first, from the raw spec (_gateway_access), and every path that
keeps the observed children takes back what is no longer granted (_revoked), including a
gateway token a Secret written before the front door still holds. A notebook with auth.mode
disable is granted nothing: anyone on the pod network could use it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import ValidationError

from . import children as ch
from . import notebook_auth as auth
from . import notebook_config as server_config
from . import notebook_identity as identity
from . import notebook_kernel_status as kernel_status
from . import notebook_kernels as kernels
from .gateway import gateway_url
from .models import (
    API_VERSION,
    AUTH_DISABLED_WITH_GATEWAY,
    DEFAULT_NOTEBOOK_IMAGE,
    DNS_LABEL,
    NAMESPACE,
    JupyterNotebookSpec,
)
from .podsecurity import annotation_violations, harden, violations
from .quantity import canonical_quantity, canonical_resources
from .structural import without_nulls

GATEWAYS = f"JupyterGateway.{API_VERSION}"
PORT = 8888
# Jupyter Server's gateway client pads the kernel launch timeout by this much.
LAUNCH_TIMEOUT_PAD = 2
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}}
# Environment variables that would carry a secret (refused) or that the hook sets from the spec.
SECRET_ENV = {"JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JUPYTER_GATEWAY_AUTH_TOKEN"}
MANAGED_ENV = {"JUPYTER_TOKEN_FILE", "JUPYTER_CONFIG_PATH", "JUPYTER_GATEWAY_URL", identity.TOKEN_ENV}
# Jupyter Server forwards every KERNEL_* variable of its environment with each kernel start;
# Enterprise Gateway's kernel pod template turns these into the kernel pod's resources.
# The child types of the CompositeController (metacontroller/jupyternotebook.yaml).
CHILD_TYPES = frozenset(
    {
        ch.DEPLOYMENTS,
        "Service.v1",
        ch.SECRETS,
        "ConfigMap.v1",
        "PersistentVolumeClaim.v1",
        "RoleBinding.rbac.authorization.k8s.io/v1",
        "ServiceAccount.v1",
    }
)
_KERNEL_RESOURCE_ENV = {"cpu": "KERNEL_CPUS", "memory": "KERNEL_MEMORY", "gpu": "KERNEL_GPUS"}


def child_name(name: str) -> str:
    return f"{name}-notebook"


def notebook_url(name: str, namespace: str) -> str:
    return f"http://{child_name(name)}.{namespace}.svc:{PORT}"


def customize_notebook(parent: dict) -> dict:
    """Related resources: the JupyterGateway the notebook points at (hook v2: in any namespace),
    the ClusterRoles approved for gateways, the Secret spec.auth.passwordSecretRef names and
    the notebook's kernel pods (status.kernels). No Secret of the gateway: the notebook
    authenticates with its own ServiceAccount."""
    spec = parent.get("spec")
    own = parent["metadata"].get("namespace") or "default"
    rules = auth.password_secret_rule(parent)
    ref = gateway_ref(spec, own)
    if ref is None:
        return {"relatedResources": rules}
    name, namespace = ref
    gateways = {"apiVersion": API_VERSION, "resource": "jupytergateways", "namespace": namespace}
    rules += [kernels.approved_roles_rule(), {**gateways, "names": [name]}]
    rules.append(kernel_status.related_rule(parent["metadata"]["name"], own, ref))
    return {"relatedResources": rules}


def gateway_ref(spec, namespace: str) -> tuple[str, str] | None:
    """(name, namespace) of the gateway spec.gateway names, read from the raw spec (any JSON),
    so that a spec the model refuses still says which gateway's grants the notebook holds."""
    gateway = ch.as_dict(spec).get("gateway")
    if not isinstance(gateway, dict) or not _is(DNS_LABEL, gateway.get("name")):
        return None
    gw_namespace = gateway.get("namespace") or namespace
    return (gateway["name"], gw_namespace) if _is(NAMESPACE, gw_namespace) else None


def _auth_disabled(spec) -> bool:
    return ch.as_dict(ch.as_dict(spec).get("auth")).get("mode") == "disable"


def _is(pattern: str, value) -> bool:
    return isinstance(value, str) and len(value) <= 63 and re.match(pattern, value) is not None


def sync_notebook(parent: dict, children: dict, related: dict, now: str, new_token: str) -> dict:
    """Desired children and status of one JupyterNotebook (Metacontroller sync, hook v2).

    ``new_token`` is fresh randomness from the caller, used only the first time, when
    no auth Secret exists yet; afterwards the observed Secret is returned unchanged.

    What the gateway grants is worked out first, from the raw spec, so that every keep path
    (an invalid spec included) returns the observed children minus what it no longer grants.
    """
    meta = parent["metadata"]
    name, namespace, uid = meta["name"], meta.get("namespace") or "default", meta.get("uid", "")
    previous = ch.previous_conditions(parent)
    deployment = ch.observed(children, ch.DEPLOYMENTS, namespace, child_name(name))
    status = {"url": notebook_url(name, namespace), **ch.replica_counts(deployment)}
    access = _gateway_access(parent.get("spec"), namespace, related, previous, now)
    gateway_conds = [access.condition] if access.condition else []
    if access.ref:
        status["gatewayUrl"] = gateway_url(*access.ref)
        before = ch.as_dict(parent.get("status")).get("kernels")
        status["kernels"] = kernel_status.kernels(name, namespace, access.ref, related, before, now)

    def keep(reason: str, message: str) -> dict:
        ready = ch.condition("Ready", False, reason, message, previous, now)
        kept = _revoked(ch.kept(children, namespace, CHILD_TYPES), access, name, namespace, children, related)
        return ch.response(meta, {**status, "conditions": [ready, *gateway_conds]}, kept)

    try:
        spec = JupyterNotebookSpec.model_validate(without_nulls({} if parent.get("spec") is None else parent["spec"]))
    except ValidationError as exc:
        return keep("InvalidSpec", ch.spec_error(exc))
    if access.ref and access.gateway is None:
        return keep(access.condition["reason"], access.condition["message"])
    gateway, gateway_cond = access.gateway, access.condition

    observed_secret = ch.observed(children, ch.SECRETS, namespace, auth.secret_name(name))
    password, password_problem = auth.password(spec, namespace, related)
    if password_problem:
        return keep("PasswordSecretNotFound", password_problem)

    secret = auth.auth_secret(name, namespace, spec, observed_secret, new_token, uid, password)
    generation = None
    if secret is not None:
        secret, generation = ch.with_auth_generation(secret, observed_secret, deployment)
    pod, problems = _pod_template(name, spec, gateway, secret, generation, namespace)
    if problems:
        return keep("InvalidSpec", "; ".join(problems))

    labels = ch.labels("notebook", name)
    kernel_children, problem = kernels.children(name, namespace, labels, spec, gateway, related)
    if problem:
        return keep("KernelRoleNotAllowed", problem)
    replicas = 0 if spec.suspend else 1
    port, base_url, _ = server_address(pod["spec"]["containers"][_notebook_index(pod["spec"]["containers"])])
    status["url"] += base_url.rstrip("/")
    desired = [_deployment(name, namespace, labels, pod, replicas), _service(name, namespace, labels, port)]
    desired += kernel_children
    if secret is not None:
        desired.append(secret)
    if gateway is not None:
        desired += [server_config.config_map(name, namespace), identity.service_account(name, namespace)]
    if spec.auth and spec.auth.secret_ref:
        status["tokenSecret"] = spec.auth.secret_ref.name
    elif secret is not None:
        status["tokenSecret"] = secret["metadata"]["name"]

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
    if gateway is not None:
        # The gateway refuses such a kernel with a generic error: say why here.
        fits, why = kernels.resources_fit(spec, gateway)
        conditions.append(
            ch.condition("KernelResourcesFit", fits, "Fits" if fits else "ExceedsProfile", why, previous, now)
        )
    status["conditions"] = conditions + gateway_conds
    return ch.response(meta, status, desired)


class GatewayAccess(NamedTuple):
    """What the notebook may hold of the gateway spec.gateway names."""

    ref: tuple[str, str] | None  # (name, namespace) of that gateway; None without a readable spec.gateway
    gateway: dict | None  # the gateway (its spec read defensively), when the notebook may use it
    runs_kernels: bool  # the gateway may run kernels in the notebook's namespace
    condition: dict | None  # GatewayReady, saying why not; None without spec.gateway


def _gateway_access(spec, namespace: str, related: dict, previous, now: str) -> GatewayAccess:
    """The one place that decides what the notebook may hold of its gateway, from the raw spec
    (any JSON: this runs before the model validates it)."""
    ref = gateway_ref(spec, namespace)
    if ref is None:
        return GatewayAccess(None, None, False, None)
    name, gw_namespace = ref
    where = f"JupyterGateway {gw_namespace}/{name}"

    def cond(ok: bool, reason: str, message: str) -> dict:
        return ch.condition("GatewayReady", ok, reason, message, previous, now)

    def denied(reason: str, message: str, runs_kernels: bool = False) -> GatewayAccess:
        return GatewayAccess(ref, None, runs_kernels, cond(False, reason, message))

    if _auth_disabled(spec):
        return denied("NotebookAuthDisabled", f"spec.auth.mode: {AUTH_DISABLED_WITH_GATEWAY}")
    gateway = (related.get(GATEWAYS) or {}).get(f"{gw_namespace}/{name}")
    if not isinstance(gateway, dict):
        return denied("GatewayNotFound", f"{where} not found")
    gw_spec = ch.as_dict(gateway.get("spec"))
    allowed = gw_spec.get("allowedNamespaces") if isinstance(gw_spec.get("allowedNamespaces"), list) else []
    if namespace != gw_namespace and namespace not in allowed and "*" not in allowed:
        message = f"{where} does not list namespace {namespace} in its spec.allowedNamespaces"
        return denied("NamespaceNotAllowed", message)
    # Read defensively from here on: the gateway's spec as an object, its identity as looked up.
    used = {**gateway, "metadata": {"name": name, "namespace": gw_namespace}, "spec": gw_spec}
    conditions = ch.as_dict(gateway.get("status")).get("conditions")
    conditions = conditions if isinstance(conditions, list) else []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True":
        return GatewayAccess(ref, used, True, cond(True, "GatewayReady", f"{where} is ready"))
    detail = ready.get("message") if ready and isinstance(ready.get("message"), str) else "it reports no status yet"
    return GatewayAccess(ref, used, True, cond(False, "GatewayNotReady", f"{where} is not ready: {detail}"))


def _revoked(kept: list[dict], access: GatewayAccess, name: str, namespace: str, children: dict, related: dict):
    """The one place that applies ``access`` to kept children: the Secret loses any gateway token
    (one written before the front door identified notebooks), the pods lose gateway-client labels that do not
    name the gateway it may use, and a RoleBinding stays only as kernels.kept_role_binding allows.
    New Secret content rolls the pods, so no server keeps a token it read at start."""
    secret_name = auth.secret_name(name)
    secret = next((c for c in kept if c["kind"] == "Secret" and c["metadata"]["name"] == secret_name), None)
    revoked_secret, generation = secret, None
    if secret is not None:
        revoked_secret = auth.kept_secret(secret, None)
        if revoked_secret != secret:
            observed_secret = ch.observed(children, ch.SECRETS, namespace, secret_name)
            deployment = ch.observed(children, ch.DEPLOYMENTS, namespace, child_name(name))
            revoked_secret, generation = ch.with_auth_generation(revoked_secret, observed_secret, deployment)
    client_labels = ch.gateway_client_labels(*access.ref) if access.gateway is not None else {}
    kernels_from, labels = access.ref if access.runs_kernels else None, ch.labels("notebook", name)
    out = []
    for child in kept:
        if child is secret:
            child = revoked_secret
        elif child["kind"] == "Deployment":
            child = _with_client_labels(child, client_labels, generation)
        elif child["kind"] == "RoleBinding":
            child = kernels.kept_role_binding(name, namespace, labels, child, kernels_from, related)
        if child is not None:
            out.append(child)
    return out


def _with_client_labels(deployment: dict, allowed: dict, generation: str | None) -> dict:
    """The Deployment with only the gateway-client pod labels in ``allowed``, and ``generation``."""
    spec = deployment.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    meta = template.get("metadata") if isinstance(template, dict) else None
    if not isinstance(meta, dict):
        return deployment
    client = ch.gateway_client_labels("", "")
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    kept = {k: v for k, v in labels.items() if k not in client or allowed.get(k) == v}
    if kept == labels and generation is None:
        return deployment
    meta = {**meta, "labels": kept}
    if generation is not None:
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        meta["annotations"] = {**annotations, ch.AUTH_GENERATION: generation}
    return {**deployment, "spec": {**spec, "template": {**template, "metadata": meta}}}


def _pod_template(
    name: str,
    spec: JupyterNotebookSpec,
    gateway: dict | None,
    secret: dict | None,
    generation: str | None,
    namespace: str = "default",
) -> tuple[dict, list[str]]:
    """The notebook pod: the user's template (or the default one) plus what the hook manages."""
    if spec.template:
        pod_spec, user_meta = spec.template["spec"], spec.template.get("metadata") or {}
    else:
        default = {"name": "notebook", "image": DEFAULT_NOTEBOOK_IMAGE, "resources": DEFAULT_RESOURCES}
        pod_spec, user_meta = {"containers": [default]}, {}
    containers = pod_spec["containers"]
    index = _notebook_index(containers)
    problems = _reserved_env(pod_spec, index)
    auth_volumes, auth_mounts, auth_env = auth.volumes_mounts_env(spec, secret)
    if gateway is not None:
        # the kernel websocket fix for JupyterLab through a gateway, and the notebook's identity
        config_volume, config_mount = server_config.volume_and_mount(name)
        token_volume, token_mount, token_env = identity.pod_parts(name, gateway)
        auth_volumes = [*auth_volumes, config_volume, token_volume]
        auth_mounts = [*auth_mounts, config_mount, token_mount]
        auth_env = [*server_config.with_config_dir(auth_env), token_env]
        problem = identity.service_account_problem(name, pod_spec)
        if problem:
            problems.append(problem)

    notebook = dict(containers[index])
    port, base_url, problem = server_address(notebook, f"spec.template.spec.containers[{index}]")
    if problem:
        problems.append(problem)
    notebook["env"] = [_canonical_env(e) for e in notebook.get("env") or []]
    taken = {e.get("name") for e in notebook["env"]}
    notebook["env"] += [e for e in auth_env + _gateway_env(name, namespace, spec, gateway) if e["name"] not in taken]
    workspace_volumes, workspace_mounts = kernels.workspace_parts(name, spec)
    notebook["volumeMounts"] = [*(notebook.get("volumeMounts") or []), *auth_mounts, *workspace_mounts]
    if workspace_mounts:
        # Jupyter Server's root directory is its working directory: the workspace.
        notebook.setdefault("workingDir", workspace_mounts[0]["mountPath"])
    if not any(p.get("containerPort") == port for p in notebook.get("ports") or []):
        notebook["ports"] = [
            *(notebook.get("ports") or []),
            {"name": "notebook", "containerPort": port, "protocol": "TCP"},
        ]
    notebook.setdefault("readinessProbe", {"httpGet": {"path": f"{base_url}api", "port": port}, "periodSeconds": 10})

    volumes = list(pod_spec.get("volumes") or [])
    reserved_volumes = (auth.AUTH_VOLUME, auth.TOKEN_VOLUME, server_config.VOLUME, identity.TOKEN_VOLUME)
    for reserved in (*reserved_volumes, kernels.WORKSPACE_VOLUME):
        if any(v.get("name") == reserved for v in volumes):
            problems.append(f"spec.template.spec.volumes: the name {reserved} is reserved")
    pod_spec = {
        **pod_spec,
        "containers": [*containers[:index], notebook, *containers[index + 1 :]],
        "volumes": volumes + auth_volumes + workspace_volumes,
    }
    for list_name in ("initContainers", "containers"):
        if pod_spec.get(list_name):
            pod_spec[list_name] = [
                _canonical_resources(c, f"spec.template.spec.{list_name}[{i}]", problems)
                for i, c in enumerate(pod_spec[list_name])
            ]
    pod_spec.setdefault("automountServiceAccountToken", False)
    if gateway is not None:
        pod_spec["serviceAccountName"] = identity.service_account_name(name)
        pod_spec.pop("serviceAccount", None)
    pod_spec = harden(pod_spec)
    problems += violations(pod_spec, "spec.template.spec")
    problems += annotation_violations(user_meta.get("annotations") or {}, "spec.template.metadata.annotations")

    labels = {**(user_meta.get("labels") or {}), **ch.labels("notebook", name), **ch.selector("notebook", name)}
    if gateway is not None:
        labels.update(ch.gateway_client_labels(gateway["metadata"]["name"], gateway["metadata"]["namespace"]))
    annotations = dict(user_meta.get("annotations") or {})
    if generation is not None:
        # New secret content restarts the server: it reads its secrets only at start.
        annotations[ch.AUTH_GENERATION] = generation
    metadata = {"labels": labels, **({"annotations": annotations} if annotations else {})}
    return {"metadata": metadata, "spec": pod_spec}, problems


def _notebook_index(containers: list[dict]) -> int:
    """The Jupyter server's container: the one named ``notebook``, else the first."""
    return next((i for i, c in enumerate(containers) if c.get("name") == "notebook"), 0)


_PORT_FLAGS = ("--ServerApp.port", "--NotebookApp.port", "--port")
_BASE_URL_FLAGS = ("--ServerApp.base_url", "--NotebookApp.base_url")


def server_address(container: dict, where: str = "") -> tuple[int, str, str | None]:
    """(port, base_url, problem) the Jupyter server in ``container`` listens on.

    Read from its command and args, then docker-stacks' NOTEBOOK_ARGS (appended by its start
    script), the last flag winning as in Jupyter; JUPYTER_PORT (docker-stacks) when no flag
    names a port. The readiness probe and the Service follow them. Values set any other way
    (a config file in the image) are not seen: there the port must stay 8888 and base_url "/".
    """
    env = {e.get("name"): e.get("value") for e in container.get("env") or [] if isinstance(e, dict)}
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    words += str(env.get("NOTEBOOK_ARGS") or "").split()
    values: dict[str, str] = {}
    for i, word in enumerate(words):
        flag, equals, value = str(word).partition("=")
        if flag in _PORT_FLAGS + _BASE_URL_FLAGS:
            value = value if equals else (str(words[i + 1]) if i + 1 < len(words) else "")
            values["port" if flag in _PORT_FLAGS else "base_url"] = value
    port_text = values["port"] if "port" in values else str(env.get("JUPYTER_PORT") or PORT)
    port, problem = PORT, None
    if port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        problem = f"{where}: the Jupyter server's port {port_text!r} is not a port number (1-65535)"
    base_url = "/" + values.get("base_url", "/").strip("/")
    return port, base_url if base_url == "/" else base_url + "/", problem


def _gateway_env(name: str, namespace: str, spec: JupyterNotebookSpec, gateway: dict | None) -> list[dict]:
    if gateway is None:
        return []
    timeout = gateway["spec"].get("kernelLaunchTimeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        timeout = 60
    meta = gateway["metadata"]
    return [
        {"name": "JUPYTER_GATEWAY_URL", "value": gateway_url(meta["name"], meta["namespace"])},
        # Both sides wait as long as the gateway lets a kernel pod start; otherwise
        # the notebook's 40 s default wins (kernel images can take longer to pull).
        {"name": "KERNEL_LAUNCH_TIMEOUT", "value": str(timeout)},
        {"name": "JUPYTER_GATEWAY_REQUEST_TIMEOUT", "value": str(timeout + LAUNCH_TIMEOUT_PAD)},
        # Enterprise Gateway refuses kernels without a user and attributes them by it.
        {"name": "KERNEL_USERNAME", "value": name},
        *kernels.kernel_env(name, namespace, spec),
        *_kernel_resource_env(spec.kernel_resources),
    ]


def _kernel_resource_env(resources) -> list[dict]:
    env = []
    for part, suffix in (("requests", ""), ("limits", "_LIMIT")):
        quantities = getattr(resources, part, None) if resources else None
        for field, variable in _KERNEL_RESOURCE_ENV.items():
            value = getattr(quantities, field, None) if quantities else None
            if value is not None:
                env.append({"name": variable + suffix, "value": canonical_quantity(value)})
    return env


def _reserved_env(pod_spec: dict, notebook_index: int) -> list[str]:
    """Variables that would carry a secret, or that the hook sets itself.

    Jupyter Server logs its whole environment when it starts a kernel through a gateway, so
    the notebook container gets no Secret in its environment at all: no secretKeyRef and no
    envFrom of a Secret (other containers may have them; only reserved names are refused).
    """
    problems = []
    for list_name in ("initContainers", "containers"):
        for i, container in enumerate(pod_spec.get(list_name) or []):
            notebook = list_name == "containers" and i == notebook_index
            for j, var in enumerate(container.get("env") or []):
                where = f"spec.template.spec.{list_name}[{i}].env[{j}]"
                if var.get("name") in SECRET_ENV:
                    problems.append(f"{where}: {var['name']} would put a secret in the environment; use spec.auth")
                elif var.get("name") in MANAGED_ENV:
                    problems.append(f"{where}: {var['name']} is set from spec.gateway and spec.auth")
                elif notebook and "secretKeyRef" in (var.get("valueFrom") or {}):
                    problems.append(f"{where}.valueFrom.secretKeyRef: {_LOGGED}; mount the Secret as a volume")
            for j, source in enumerate(container.get("envFrom") or []):
                if notebook and "secretRef" in source:
                    where = f"spec.template.spec.{list_name}[{i}].envFrom[{j}].secretRef"
                    problems.append(f"{where}: {_LOGGED}; mount the Secret as a volume")
    return problems


_LOGGED = "Jupyter Server logs its environment when it starts a kernel, so no Secret may be in it"


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


def _service(name: str, namespace: str, labels: dict, target_port: int) -> dict:
    """Always port 8888 (the notebook's URL), forwarded to the port the server listens on."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels},
        "spec": {
            "selector": ch.selector("notebook", name),
            "ports": [{"name": "http", "port": PORT, "targetPort": target_port, "protocol": "TCP"}],
        },
    }
