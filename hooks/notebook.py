"""The JupyterNotebook hooks: customize (which gateway to watch) and sync, both pure.

Children, all in the notebook's namespace:
  Deployment <name>-notebook        a Jupyter server pointed at the gateway through its
                                    environment, so a user's own command is left alone
  Service    <name>-notebook        port 8888
  Secret     <name>-notebook-auth   the access token, password hash and gateway token, mounted
                                    as files (see notebook_auth)
  PersistentVolumeClaim, RoleBinding  the workspace and the gateway's right to run this
                                    notebook's kernels here (see notebook_kernels)

A gateway's token crosses namespaces only into notebooks of the namespaces the gateway
lists in spec.allowedNamespaces (and its own); others get NamespaceNotAllowed.
"""

from __future__ import annotations

from pydantic import ValidationError

from . import children as ch
from . import notebook_auth as auth
from . import notebook_kernels as kernels
from .gateway import auth_secret_name as gateway_secret_name
from .gateway import gateway_url
from .models import API_VERSION, DEFAULT_NOTEBOOK_IMAGE, JupyterNotebookSpec
from .podsecurity import harden, violations
from .quantity import canonical_quantity, canonical_resources

GATEWAYS = f"JupyterGateway.{API_VERSION}"
PORT = 8888
# Jupyter Server's gateway client pads the kernel launch timeout by this much.
LAUNCH_TIMEOUT_PAD = 2
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}}
# Environment variables that would carry a secret (refused) or that the hook sets from the spec.
SECRET_ENV = {"JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JUPYTER_GATEWAY_AUTH_TOKEN"}
MANAGED_ENV = {"JUPYTER_TOKEN_FILE", "JUPYTER_CONFIG_PATH", "JUPYTER_GATEWAY_URL"}
# Reasons not to touch the notebook's children: its gateway cannot be used.
_GATEWAY_UNUSABLE = {"GatewayNotFound", "NamespaceNotAllowed", "GatewayTokenNotFound"}
_ACCESS_GONE = {"GatewayNotFound", "NamespaceNotAllowed"}
# Jupyter Server forwards every KERNEL_* variable of its environment with each kernel start;
# Enterprise Gateway's kernel pod template turns these into the kernel pod's resources.
_KERNEL_RESOURCE_ENV = {"cpu": "KERNEL_CPUS", "memory": "KERNEL_MEMORY", "gpu": "KERNEL_GPUS"}


def child_name(name: str) -> str:
    return f"{name}-notebook"


def notebook_url(name: str, namespace: str) -> str:
    return f"http://{child_name(name)}.{namespace}.svc:{PORT}"


def customize_notebook(parent: dict) -> dict:
    """Related resources: the JupyterGateway the notebook points at and its token Secret
    (hook v2: in any namespace)."""
    spec = parent.get("spec")
    gateway = spec.get("gateway") if isinstance(spec, dict) else None
    if not isinstance(gateway, dict) or not isinstance(gateway.get("name"), str):
        return {"relatedResources": []}
    namespace = gateway.get("namespace") or parent["metadata"].get("namespace") or "default"
    return {
        "relatedResources": [
            kernels.approved_roles_rule(),
            {
                "apiVersion": API_VERSION,
                "resource": "jupytergateways",
                "namespace": namespace,
                "names": [gateway["name"]],
            },
            {
                "apiVersion": "v1",
                "resource": "secrets",
                "namespace": namespace,
                "names": [gateway_secret_name(gateway["name"])],
            },
        ]
    }


def sync_notebook(parent: dict, children: dict, related: dict, now: str, new_token: str) -> dict:
    """Desired children and status of one JupyterNotebook (Metacontroller sync, hook v2).

    ``new_token`` is fresh randomness from the caller, used only the first time, when
    no auth Secret exists yet; afterwards the observed Secret is returned unchanged.
    """
    meta = parent["metadata"]
    name, namespace, uid = meta["name"], meta.get("namespace") or "default", meta.get("uid", "")
    previous = ch.previous_conditions(parent)
    deployment = ch.observed(children, ch.DEPLOYMENTS, namespace, child_name(name))
    status = {"url": notebook_url(name, namespace), **ch.replica_counts(deployment)}

    def keep(reason: str, message: str, gateway_cond: dict | None = None) -> dict:
        ready = ch.condition("Ready", False, reason, message, previous, now)
        conditions = [ready] + ([gateway_cond] if gateway_cond else [])
        kept = ch.kept(children)
        if reason in _ACCESS_GONE:
            # The gateway may no longer run kernels here: its RoleBinding goes.
            binding = kernels.role_binding_name(name)
            kept = [c for c in kept if not (c["kind"] == "RoleBinding" and c["metadata"]["name"] == binding)]
        return ch.response(meta, {**status, "conditions": conditions}, kept)

    try:
        spec = JupyterNotebookSpec.model_validate(parent.get("spec") or {})
    except ValidationError as exc:
        return keep("InvalidSpec", ch.spec_error(exc))

    gateway, gateway_token, gateway_cond = None, None, None
    if spec.gateway:
        gw_namespace = spec.gateway.namespace or namespace
        status["gatewayUrl"] = gateway_url(spec.gateway.name, gw_namespace)
        gateway, gateway_token, gateway_cond = _gateway_access(
            spec.gateway.name, gw_namespace, namespace, related, previous, now
        )
        if gateway_cond["reason"] in _GATEWAY_UNUSABLE:
            return keep(gateway_cond["reason"], gateway_cond["message"], gateway_cond)

    observed_secret = ch.observed(children, ch.SECRETS, namespace, auth.secret_name(name))
    secret = auth.auth_secret(name, namespace, spec, observed_secret, new_token, uid, gateway_token)
    pod, problems = _pod_template(name, uid, spec, gateway, secret, gateway_token, namespace)
    if problems:
        return keep("InvalidSpec", "; ".join(problems), gateway_cond)

    labels = ch.labels("notebook", name)
    kernel_children, problem = kernels.children(name, namespace, labels, spec, gateway, related)
    if problem:
        return keep("KernelRoleNotAllowed", problem, gateway_cond)
    replicas = 0 if spec.suspend else 1
    desired = [_deployment(name, namespace, labels, pod, replicas), _service(name, namespace, labels)]
    desired += kernel_children
    if secret is not None:
        desired.append(secret)
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
    status["conditions"] = conditions + ([gateway_cond] if gateway_cond else [])
    return ch.response(meta, status, desired)


def _gateway_access(name: str, gw_namespace: str, namespace: str, related: dict, previous, now: str):
    """(gateway, its token, GatewayReady condition): may this notebook use the gateway, and how."""
    where = f"JupyterGateway {gw_namespace}/{name}"

    def cond(ok: bool, reason: str, message: str) -> dict:
        return ch.condition("GatewayReady", ok, reason, message, previous, now)

    gateway = (related.get(GATEWAYS) or {}).get(f"{gw_namespace}/{name}")
    if gateway is None:
        return None, None, cond(False, "GatewayNotFound", f"{where} not found")
    spec = gateway.get("spec") or {}
    allowed = spec.get("allowedNamespaces") or []
    if namespace != gw_namespace and namespace not in allowed and "*" not in allowed:
        message = f"{where} does not list namespace {namespace} in its spec.allowedNamespaces"
        return None, None, cond(False, "NamespaceNotAllowed", message)
    token = None
    if ((spec.get("auth") or {}).get("mode") or "token") == "token":
        secret = (related.get(ch.SECRETS) or {}).get(f"{gw_namespace}/{gateway_secret_name(name)}")
        token = ch.decoded(((secret or {}).get("data") or {}).get("token"))
        if not token:
            message = f"{where} requires a token and its Secret {gateway_secret_name(name)} does not hold one yet"
            return None, None, cond(False, "GatewayTokenNotFound", message)
    ready = next((c for c in (gateway.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True":
        return gateway, token, cond(True, "GatewayReady", f"{where} is ready")
    detail = ready.get("message") if ready else "it reports no status yet"
    return gateway, token, cond(False, "GatewayNotReady", f"{where} is not ready: {detail}")


def _pod_template(
    name: str,
    uid: str,
    spec: JupyterNotebookSpec,
    gateway: dict | None,
    secret: dict | None,
    gateway_token,
    namespace: str = "default",
) -> tuple[dict, list[str]]:
    """The notebook pod: the user's template (or the default one) plus what the hook manages."""
    if spec.template:
        template = spec.template.model_dump(exclude_none=True)
        pod_spec, user_meta = template["spec"], template.get("metadata") or {}
    else:
        default = {"name": "notebook", "image": DEFAULT_NOTEBOOK_IMAGE, "resources": DEFAULT_RESOURCES}
        pod_spec, user_meta = {"containers": [default]}, {}
    problems = _reserved_env(pod_spec)
    auth_volumes, auth_mounts, auth_env = auth.volumes_mounts_env(spec, secret)

    containers = pod_spec["containers"]
    index = next((i for i, c in enumerate(containers) if c["name"] == "notebook"), 0)
    notebook = dict(containers[index])
    notebook["env"] = [_canonical_env(e) for e in notebook.get("env") or []]
    taken = {e.get("name") for e in notebook["env"]}
    notebook["env"] += [e for e in auth_env + _gateway_env(name, namespace, spec, gateway) if e["name"] not in taken]
    workspace_volumes, workspace_mounts = kernels.workspace_parts(name, spec)
    notebook["volumeMounts"] = [*(notebook.get("volumeMounts") or []), *auth_mounts, *workspace_mounts]
    if workspace_mounts:
        # Jupyter Server's root directory is its working directory: the workspace.
        notebook.setdefault("workingDir", workspace_mounts[0]["mountPath"])
    if not any(p.get("containerPort") == PORT for p in notebook.get("ports") or []):
        notebook["ports"] = [
            *(notebook.get("ports") or []),
            {"name": "notebook", "containerPort": PORT, "protocol": "TCP"},
        ]
    notebook.setdefault("readinessProbe", {"httpGet": {"path": "/api", "port": PORT}, "periodSeconds": 10})

    volumes = list(pod_spec.get("volumes") or [])
    for reserved in (auth.AUTH_VOLUME, auth.TOKEN_VOLUME, kernels.WORKSPACE_VOLUME):
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
    pod_spec = harden(pod_spec)
    problems += violations(pod_spec, "spec.template.spec")

    labels = {**(user_meta.get("labels") or {}), **ch.labels("notebook", name), **ch.selector("notebook", name)}
    if gateway is not None:
        labels.update(ch.gateway_client_labels(spec.gateway.name, gateway["metadata"].get("namespace") or ""))
    annotations = dict(user_meta.get("annotations") or {})
    restart = auth.restart_hash(uid, spec, gateway_token)
    if restart:
        # A new token or password restarts the server: it reads them only at start.
        annotations["kubeflow.tkestack.io/auth-hash"] = restart
    metadata = {"labels": labels, **({"annotations": annotations} if annotations else {})}
    return {"metadata": metadata, "spec": pod_spec}, problems


def _gateway_env(name: str, namespace: str, spec: JupyterNotebookSpec, gateway: dict | None) -> list[dict]:
    if gateway is None:
        return []
    timeout = (gateway.get("spec") or {}).get("kernelLaunchTimeout") or 60
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        timeout = 60
    return [
        {"name": "JUPYTER_GATEWAY_URL", "value": gateway_url(spec.gateway.name, gateway["metadata"].get("namespace"))},
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
