"""The JupyterGateway sync hook: a pure function from parent and children to the response.

Children, all in the gateway's namespace:
  ServiceAccount <name>-gateway    the identity Enterprise Gateway launches kernel pods with
  RoleBinding    <name>-gateway    grants spec.clusterRole to it, in this namespace only;
                                   only a ClusterRole labelled KERNEL_ROLE_LABEL=true may be
                                   bound, so whoever may create a gateway cannot bind
                                   cluster-admin (the customize hook reads the ClusterRole)
  ConfigMap      <name>-gateway    Enterprise Gateway's configuration file (culling and all)
  Deployment     <name>-gateway    one Enterprise Gateway, started with exactly that file, on
                                   the pod's loopback, and its front door on port 8888
  Service        <name>            port 8888 (the front door) and 8877 (kernels' response port), so
                                   notebooks reach http://<name>.<namespace>.svc:8888
  Secret         <name>-gateway-auth  Enterprise Gateway's own token (spec.auth.mode token, the
                                   default), which only the front door sends: generated once
                                   and kept, or copied from spec.auth.secretRef; mounted as a
                                   configuration file
  ConfigMap      <name>-gateway-front-door  front_door.py, kernel_notices.py and their
                                   configuration: the container on port 8888 that identifies
                                   every caller and tells users why a kernel died
  ConfigMap      <name>-gateway-access  the namespaces allowed in, read by the front door at
                                   each request: a change applies without a restart
  NetworkPolicy  <name>-gateway    admits only the notebooks of the allowed namespaces (port
                                   8888) and the gateway's kernel pods there (port 8877)
  ConfigMap      <name>-gateway-kernelspecs  the only kernelspecs the gateway serves, one per
                                   kernel profile, with their pod template (see kernelspecs)
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources as package_files

import orjson
from pydantic import ValidationError

from . import children as ch
from . import kernel_ends, kernelspecs
from .models import DEFAULT_KERNEL_CLUSTER_ROLE, JupyterGatewaySpec
from .podsecurity import harden
from .quantity import canonical_resources
from .structural import without_nulls

CONFIG_DIR = "/etc/jupyter-gateway"
CONFIG_FILE = "jupyter_enterprise_gateway_config.json"
PORT = 8888  # the front door, the Service's port
INTERNAL_PORT = 8889  # Enterprise Gateway, on the pod's loopback only
RESPONSE_PORT = 8877
METRICS_PORT = 9102  # kernel starts, refusals and ends (hooks/kernel_metrics.py)
AUTH_DIR = f"{CONFIG_DIR}/auth"
TOKEN_KEY = "token"
# Jupyter applications load jupyter_config.json from every JUPYTER_CONFIG_PATH directory
# besides the --config file: the token reaches EG as a file, never argv or environment.
AUTH_CONFIG = "jupyter_config.json"
FRONT_DOOR_DIR = f"{CONFIG_DIR}/front-door"
FRONT_DOOR_CONFIG = "front_door.json"
ACCESS_DIR = f"{CONFIG_DIR}/access"
ALLOWED_FILE = "allowed-namespaces.json"
# How long a TokenReview's answer is reused: a deleted ServiceAccount or pod still gets in this long.
REVIEW_CACHE_SECONDS = 30
# Shipped verbatim in the front-door ConfigMap: the front door and the modules it imports.
FRONT_DOOR_MODULES = ("front_door.py", "kernel_notices.py", "kernel_ends.py")
_FRONT_DOOR_CODE = {
    name: package_files.files(__package__).joinpath(name).read_text(encoding="utf-8") for name in FRONT_DOOR_MODULES
}
# An emptyDir of the gateway pod: EG journals the kernels it culls there, the front door reads it.
KERNEL_ENDS_DIR = "/var/lib/jupyter-gateway/kernel-ends"
KERNEL_ENDS_FILE = f"{KERNEL_ENDS_DIR}/{kernel_ends.FILE_NAME}"
# The labels of Enterprise Gateway's stock kernel pods (kernel-pod.yaml.j2).
KERNEL_POD_LABELS = {"app": "enterprise-gateway", "component": "kernel"}
CLUSTER_ROLES = "ClusterRole.rbac.authorization.k8s.io/v1"
ROLE_BINDINGS = "RoleBinding.rbac.authorization.k8s.io/v1"
# The child types of the CompositeController (metacontroller/jupytergateway.yaml).
CHILD_TYPES = frozenset(
    {
        "ServiceAccount.v1",
        ROLE_BINDINGS,
        "ConfigMap.v1",
        ch.DEPLOYMENTS,
        "Service.v1",
        ch.SECRETS,
        "NetworkPolicy.networking.k8s.io/v1",
    }
)
KERNEL_ROLE_LABEL = "kubeflow.tkestack.io/gateway-kernel-role"
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
# Enterprise Gateway's image runs as jovyan (uid 1000, gid 100).
RUN_AS_USER, RUN_AS_GROUP = 1000, 100


def gateway_url(name: str, namespace: str) -> str:
    """Where notebooks reach a gateway: its Service is named exactly after it."""
    return f"http://{name}.{namespace}.svc:{PORT}"


def child_name(name: str) -> str:
    return f"{name}-gateway"


def audience(name: str, namespace: str) -> str:
    """The audience of the ServiceAccount tokens notebooks present to this gateway: a token made
    for one gateway is refused by every other (and by the API server)."""
    return f"kubeflow.tkestack.io/gateway/{namespace}/{name}"


def front_door_name(name: str) -> str:
    return f"{name}-gateway-front-door"


def access_name(name: str) -> str:
    return f"{name}-gateway-access"


def auth_secret_name(name: str) -> str:
    return f"{name}-gateway-auth"


def customize_gateway(parent: dict) -> dict:
    """Related resources: the ClusterRole the gateway asks for (to check it may be bound), every
    approved one (a keep path keeps the RoleBinding it has while that role stays approved, even
    when spec.clusterRole now names another) and the user's token Secret, if spec.auth.secretRef
    names one."""
    spec = parent.get("spec") if isinstance(parent.get("spec"), dict) else {}
    rules = []
    role = spec.get("clusterRole", DEFAULT_KERNEL_CLUSTER_ROLE)
    if isinstance(role, str) and role:
        rules.append({"apiVersion": "rbac.authorization.k8s.io/v1", "resource": "clusterroles", "names": [role]})
    auth = spec.get("auth") if isinstance(spec.get("auth"), dict) else {}
    ref = auth.get("secretRef") if isinstance(auth.get("secretRef"), dict) else {}
    if isinstance(ref.get("name"), str) and ref["name"]:
        namespace = parent["metadata"].get("namespace") or "default"
        rules.append({"apiVersion": "v1", "resource": "secrets", "namespace": namespace, "names": [ref["name"]]})
    rules.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "resource": "clusterroles",
            "labelSelector": {"matchLabels": {KERNEL_ROLE_LABEL: "true"}},
        }
    )
    return {"relatedResources": rules}


def sync_gateway(parent: dict, children: dict, related: dict, now: str, new_token: str) -> dict:
    """Desired children and status of one JupyterGateway (Metacontroller sync, hook v2).

    ``new_token`` is fresh randomness from the caller, used only the first time, when no
    token Secret exists yet; afterwards the observed one is kept.
    """
    meta = parent["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "default"
    previous = ch.previous_conditions(parent)
    deployment = ch.observed(children, ch.DEPLOYMENTS, namespace, child_name(name))
    status = {"url": gateway_url(name, namespace), **ch.replica_counts(deployment)}

    def keep(reason: str, message: str) -> dict:
        ready = ch.condition("Ready", False, reason, message, previous, now)
        kept = [c for c in ch.kept(children, namespace, CHILD_TYPES) if c["kind"] != "RoleBinding"]
        binding = _kept_role_binding(name, namespace, children, related)
        return ch.response(meta, {**status, "conditions": [ready]}, sorted_children([*kept, *binding]))

    try:
        spec = JupyterGatewaySpec.model_validate(without_nulls({} if parent.get("spec") is None else parent["spec"]))
    except ValidationError as exc:
        return keep("InvalidSpec", ch.spec_error(exc))
    problems = kernelspecs.profile_problems(spec)
    if problems:
        return keep("InvalidSpec", "; ".join(problems))
    role = (related.get(CLUSTER_ROLES) or {}).get(spec.cluster_role)
    if not isinstance(role, dict):
        return keep("ClusterRoleNotFound", f"spec.clusterRole: ClusterRole {spec.cluster_role} not found")
    if not approved(role):
        return keep(
            "ClusterRoleNotAllowed",
            f"spec.clusterRole: ClusterRole {spec.cluster_role} lacks the label {KERNEL_ROLE_LABEL}=true "
            "that a cluster admin sets on roles gateways may bind",
        )

    token = None
    if spec.auth is None or spec.auth.mode == "token":
        token, problem = _token(spec, name, namespace, children, related, new_token)
        if problem:
            return keep("AuthSecretNotFound", problem)

    labels = ch.labels("gateway", name)
    config = render_config(spec)
    specs = kernelspecs.config_map(name, namespace, labels, spec)
    secret, generation = None, None
    if token is not None:
        observed = ch.observed(children, ch.SECRETS, namespace, auth_secret_name(name))
        secret = _auth_secret(name, namespace, labels, token)
        secret, generation = ch.with_auth_generation(secret, observed, deployment)
        status["tokenSecret"] = auth_secret_name(name)
    front_door = _front_door_config_map(name, namespace, labels, spec, token is not None)
    desired = [
        _service_account(name, namespace, labels),
        _role_binding(name, namespace, labels, spec.cluster_role),
        specs,
        _config_map(name, namespace, labels, config),
        front_door,
        _access_config_map(name, namespace, labels, spec),
        _deployment(name, namespace, labels, spec, config, generation, specs, front_door),
        _service(name, namespace, labels),
        _network_policy(name, namespace, labels, spec),
        *([secret] if secret else []),
    ]
    ok, reason, message = ch.deployment_ready(deployment)
    status["conditions"] = [ch.condition("Ready", ok, reason, message, previous, now)]
    return ch.response(meta, status, desired)


def approved(role) -> bool:
    """Whether a cluster admin marked this ClusterRole as one gateways may bind."""
    meta = role.get("metadata") if isinstance(role, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return isinstance(labels, dict) and labels.get(KERNEL_ROLE_LABEL) == "true"


def _kept_role_binding(name: str, namespace: str, children: dict, related: dict) -> list[dict]:
    """The gateway's RoleBinding on a keep path, rebuilt from its (immutable) roleRef, and only
    while that ClusterRole is still approved: revoking the label or deleting the role unbinds it."""
    observed = ch.observed(children, ROLE_BINDINGS, namespace, child_name(name))
    ref = observed.get("roleRef") if isinstance(observed, dict) else None
    role_name = ref.get("name") if isinstance(ref, dict) and ref.get("kind") == "ClusterRole" else None
    if not isinstance(role_name, str) or not approved((related.get(CLUSTER_ROLES) or {}).get(role_name)):
        return []
    return [_role_binding(name, namespace, ch.labels("gateway", name), role_name)]


def sorted_children(children: list[dict]) -> list[dict]:
    return sorted(children, key=lambda c: (c["kind"], c["metadata"]["name"]))


def _json_text(value) -> str:
    # orjson, not json: json's indenting encoder is Python code whose closures form reference
    # cycles, garbage that piled up to 10 MB between collections under load.
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def render_config(spec: JupyterGatewaySpec) -> str:
    """Enterprise Gateway's configuration file. Each setting appears exactly once.

    EG reads none of EG_CULL_*, EG_ALLOWED_KERNELS or EG_LOG_LEVEL itself (only the
    image's start script maps them, and cull_busy not even there), so the hook writes
    the traits themselves and the Deployment starts EG with this file and nothing else.
    """
    config = {
        "EnterpriseGatewayApp": {
            # Behind the front door: only the containers of its pod reach it.
            "ip": "127.0.0.1",
            "port": INTERNAL_PORT,
            "port_retries": 0,
            # The notebook UI lists kernels; without this every listing is a 403.
            "list_kernels": True,
            "default_kernel_name": spec.default_kernel,
            "log_level": "WARN" if spec.log_level == "WARNING" else spec.log_level,
            # EG's kernel manager, counting kernel starts, failures and ends (on our PYTHONPATH).
            "kernel_manager_class": kernelspecs.KERNEL_MANAGER,
        },
        "RemoteMappingKernelManager": {
            "cull_idle_timeout": spec.cull_idle_timeout,
            "cull_interval": spec.cull_interval,
            "cull_connected": spec.cull_connected,
            "cull_busy": spec.cull_busy,
        },
        # jupyter_client 6 (which EG 3.3 pins) calls the allow-list "whitelist". It only filters
        # the listing: what keeps other kernels out is that no other kernelspec exists in the
        # gateway container (kernelspecs.gateway_pod_parts), and ipykernel, whose own python3
        # jupyter_client would still find, cannot be imported there (kernelspecs.NO_IPYKERNEL).
        "KernelSpecManager": {
            "whitelist": [p.name for p in kernelspecs.profiles(spec)],
            "ensure_native_kernel": False,
        },
    }
    return _json_text(config)


def _token(spec, name, namespace, children, related, new_token) -> tuple[str | None, str | None]:
    """(token, problem): the user's Secret's, else the one generated before, else a new one."""
    ref = spec.auth.secret_ref if spec.auth else None
    if ref:
        secret = (related.get(ch.SECRETS) or {}).get(f"{namespace}/{ref.name}")
        token = ch.secret_value(secret, ref.key)
        if not token:
            return None, f"spec.auth.secretRef: Secret {namespace}/{ref.name} has no key {ref.key} holding a token"
        return token, None
    observed = ch.observed(children, ch.SECRETS, namespace, auth_secret_name(name))
    return ch.secret_value(observed, TOKEN_KEY) or new_token, None


def _auth_secret(name: str, namespace: str, labels: dict, token: str) -> dict:
    config = json.dumps({"EnterpriseGatewayApp": {"auth_token": token}}, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(auth_secret_name(name), namespace, labels),
        "type": "Opaque",
        "data": {TOKEN_KEY: ch.b64(token), AUTH_CONFIG: ch.b64(config)},
    }


def _network_policy(name: str, namespace: str, labels: dict, spec: JupyterGatewaySpec) -> dict:
    allowed = sorted({namespace, *(spec.allowed_namespaces or [])})
    if "*" in allowed:
        namespaces = {}
    else:
        namespaces = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}]}
    notebooks = {
        "namespaceSelector": namespaces,
        "podSelector": {"matchLabels": ch.gateway_client_labels(name, namespace)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(child_name(name), namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": ch.selector("gateway", name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [notebooks], "ports": [{"protocol": "TCP", "port": PORT}]},
                {
                    # Kernel pods run in their notebooks' namespaces and send their connection
                    # details to the gateway's response port.
                    "from": [
                        {
                            "namespaceSelector": namespaces,
                            "podSelector": {
                                "matchLabels": {**KERNEL_POD_LABELS, **ch.gateway_client_labels(name, namespace)}
                            },
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": RESPONSE_PORT}],
                },
            ],
        },
    }


def _metadata(name: str, namespace: str, labels: dict) -> dict:
    return {"name": name, "namespace": namespace, "labels": labels}


def _service_account(name: str, namespace: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(child_name(name), namespace, labels)}


def _role_binding(name: str, namespace: str, labels: dict, cluster_role: str) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(child_name(name), namespace, labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": child_name(name), "namespace": namespace}],
    }


def _config_map(name: str, namespace: str, labels: dict, config: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(child_name(name), namespace, labels),
        "data": {CONFIG_FILE: config},
    }


def allowed_namespaces(namespace: str, spec: JupyterGatewaySpec) -> list[str]:
    """Whose notebooks the front door lets in: the gateway's namespace and spec.allowedNamespaces."""
    allowed = spec.allowed_namespaces or []
    return ["*"] if "*" in allowed else sorted({namespace, *allowed})


def _access_config_map(name: str, namespace: str, labels: dict, spec: JupyterGatewaySpec) -> dict:
    """Not part of the pod's hashes: the kubelet updates the mounted file in place, and the front
    door reads it again at the next request, so revoking a namespace needs no restart."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(access_name(name), namespace, labels),
        "data": {ALLOWED_FILE: json.dumps(allowed_namespaces(namespace, spec)) + "\n"},
    }


def _front_door_config_map(name: str, namespace: str, labels: dict, spec: JupyterGatewaySpec, token: bool) -> dict:
    config = {
        "port": PORT,
        "upstream_port": INTERNAL_PORT,
        "audience": audience(name, namespace),
        "allowed_namespaces_file": f"{ACCESS_DIR}/{ALLOWED_FILE}",
        "gateway_labels": ch.gateway_client_labels(name, namespace),
        "review_cache_seconds": REVIEW_CACHE_SECONDS,
        # A kernel start waits as long as the kernel pod may take to start, and then some.
        "request_timeout": spec.kernel_launch_timeout + 30,
        "kernel_ends_file": KERNEL_ENDS_FILE,
    }
    if token:
        config["upstream_token_file"] = f"{AUTH_DIR}/{TOKEN_KEY}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(front_door_name(name), namespace, labels),
        "data": {
            **_FRONT_DOOR_CODE,
            FRONT_DOOR_CONFIG: _json_text(config),
        },
    }


def _front_door_container(image: str, token: bool) -> dict:
    mounts = [
        {"name": "front-door", "mountPath": FRONT_DOOR_DIR, "readOnly": True},
        {"name": "access", "mountPath": ACCESS_DIR, "readOnly": True},
        {"name": "kernel-ends", "mountPath": KERNEL_ENDS_DIR, "readOnly": True},
    ]
    if token:
        mounts.append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
    probe = {"httpGet": {"path": "/healthz", "port": PORT}}
    return {
        "name": "front-door",
        "image": image,
        # The gateway image's interpreter: standard library and tornado (Enterprise Gateway's).
        "command": ["python", f"{FRONT_DOOR_DIR}/front_door.py", f"{FRONT_DOOR_DIR}/{FRONT_DOOR_CONFIG}"],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": mounts,
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
    }


def _deployment(
    name: str,
    namespace: str,
    labels: dict,
    spec: JupyterGatewaySpec,
    config: str,
    auth_generation: str | None,
    specs: dict,
    front_door: dict,
) -> dict:
    parts = kernelspecs.gateway_pod_parts(name, spec.image)
    container = {
        "name": "gateway",
        "image": spec.image,
        "command": ["jupyter", "enterprisegateway", f"--config={CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [
            # Read by EG's Kubernetes process proxy at import time, so they must be env.
            {"name": "EG_NAMESPACE", "value": namespace},
            {"name": "EG_SHARED_NAMESPACE", "value": "True"},
            {"name": "EG_KERNEL_LAUNCH_TIMEOUT", "value": str(spec.kernel_launch_timeout)},
            {"name": "EG_RESPONSE_PORT", "value": str(RESPONSE_PORT)},
            {"name": "EG_METRICS_PORT", "value": str(METRICS_PORT)},
            {"name": "EG_KERNEL_ENDS_FILE", "value": KERNEL_ENDS_FILE},
            *parts["env"],
        ],
        "ports": [
            {"name": "internal", "containerPort": INTERNAL_PORT, "protocol": "TCP"},
            {"name": "response", "containerPort": RESPONSE_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": canonical_resources(
            spec.resources.model_dump(exclude_none=True) if spec.resources else DEFAULT_RESOURCES
        ),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "kernel-ends", "mountPath": KERNEL_ENDS_DIR},
            *parts["mounts"],
        ],
        "lifecycle": parts["lifecycle"],
        "startupProbe": _loopback_probe(period=2, failures=60),
        "livenessProbe": _loopback_probe(period=20, failures=3),
    }
    volumes = [
        {"name": "config", "configMap": {"name": child_name(name)}},
        {"name": "front-door", "configMap": {"name": front_door_name(name)}},
        {"name": "access", "configMap": {"name": access_name(name)}},
        {"name": "kernel-ends", "emptyDir": {"sizeLimit": "1Mi"}},
        *parts["volumes"],
    ]
    # A new configuration, kernelspec or token restarts EG: it reads them only at start.
    annotations = {
        "kubeflow.tkestack.io/config-hash": _digest(config),
        "kubeflow.tkestack.io/kernelspecs-hash": _digest(json.dumps(specs["data"], sort_keys=True)),
        "kubeflow.tkestack.io/front-door-hash": _digest(json.dumps(front_door["data"], sort_keys=True)),
    }
    if auth_generation is not None:
        container["env"].append({"name": "JUPYTER_CONFIG_PATH", "value": AUTH_DIR})
        container["volumeMounts"].append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
        volumes.append({"name": "auth", "secret": {"secretName": auth_secret_name(name), "defaultMode": 0o440}})
        annotations[ch.AUTH_GENERATION] = auth_generation
    pod_spec = harden(
        {
            "serviceAccountName": child_name(name),
            "initContainers": parts["initContainers"],
            "containers": [container, _front_door_container(spec.image, auth_generation is not None)],
            "volumes": volumes,
        },
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_GROUP,
    )
    selector = ch.selector("gateway", name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(child_name(name), namespace, labels),
        "spec": {
            # One gateway: it keeps its kernels in memory, two would both cull.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector}, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def _loopback_probe(period: int, failures: int) -> dict:
    """Enterprise Gateway listens on the pod's loopback, which a kubelet's TCP probe (to the pod
    IP) cannot reach: the probe connects from inside the container. Readiness is the front
    door's (its /healthz asks Enterprise Gateway)."""
    check = f"import socket; socket.create_connection(('127.0.0.1', {INTERNAL_PORT}), 5).close()"
    return {
        "exec": {"command": ["python", "-c", check]},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _service(name: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "selector": ch.selector("gateway", name),
            "ports": [
                {"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"},
                {"name": "response", "port": RESPONSE_PORT, "targetPort": RESPONSE_PORT, "protocol": "TCP"},
            ],
        },
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
