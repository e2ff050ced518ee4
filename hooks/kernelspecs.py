"""The kernelspecs a gateway serves: one per kernel profile, and nothing else.

The gateway's child ConfigMap <name>-gateway-kernelspecs holds, per profile ``p``:
  p.kernel.json         argv runs kernel_guard.py, which checks the client's KERNEL_*
                        variables and then execs Enterprise Gateway's own
                        launch_kubernetes.py; process proxy kernel_proxy.py's (EG's
                        KubernetesProcessProxy, failing a start at once with its reason)
  p.kernel-pod.yaml.j2  the pod template launch_kubernetes.py renders (it loads the
                        template from its own directory)
  p.policy.json         what kernel_guard.py allows: namespaces, default and maximum resources,
                        the longest launch timeout
and once: kernel_guard.py, kernel_sweep.py and sweep.json (orphaned kernel pods, see
kernel_sweep.py), kernel_proxy.py, kernel_reasons.py, kernel_metrics.py and kernel_ends.py (on the
gateway's PYTHONPATH).

An init container of the gateway pod (the gateway image) lays them out as kernelspec
directories <p>/kernel.json and <p>/scripts/{kernel_guard.py, policy.json,
kernel-pod.yaml.j2, launch_kubernetes.py}, copying the image's stock launcher next to our
template, in an emptyDir that the gateway container mounts over the image's kernelspecs.

The pod template uses a client's value only where a client may choose (pod name,
namespace, kernel id, resources, workspace claim, working directory, notebook), always
through the launcher's ``yaml_safe`` filter, after kernel_guard.py checked it. Service
account, image, volumes, user and group are constants of the profile.
"""

from __future__ import annotations

import json
from importlib import resources as package_files

import orjson

from . import children as ch
from .kernel_guard import quantity
from .models import DEFAULT_KERNEL_IMAGE, DEFAULT_KERNEL_PROFILE, JupyterGatewaySpec, KernelProfile
from .quantity import canonical_quantity

# Where the gateway container finds kernelspecs: the image's system directory, which our
# emptyDir replaces (see gateway_pod_parts for the other directories jupyter_client searches).
KERNELSPEC_DIR = "/usr/local/share/jupyter/kernels"
# The stock launcher in elyra/enterprise-gateway images: the Makefile of EG 3.3.0 copies
# etc/kernel-launchers/kubernetes/* into every *_kubernetes kernelspec of the image.
STOCK_LAUNCHER = f"{KERNELSPEC_DIR}/python_kubernetes/scripts/launch_kubernetes.py"
SOURCE_DIR = "/etc/jupyter-gateway/kernelspecs"  # the ConfigMap, in the init container
INSTALL_DIR = "/var/lib/jupyter-gateway/kernelspecs"  # the emptyDir, in the init container
# On the gateway's PYTHONPATH: a package "ipykernel" that cannot be imported. jupyter_client
# 6.1.12 resolves the name python3 to ipykernel's own kernelspec whenever ipykernel imports
# (KernelSpecManager._find_spec_directory, whatever ensure_native_kernel and the whitelist say),
# and the elyra/enterprise-gateway image installs ipykernel: any token holder could run a
# kernel inside the gateway container, with its ServiceAccount's token.
PYTHON_PATH_DIR = "/etc/jupyter-gateway/python"
NO_IPYKERNEL = (
    "# Hides the gateway image's ipykernel: this gateway starts kernels only as pods of its profiles.\n"
    'raise ImportError("ipykernel is hidden in this gateway: it starts kernels only as pods of its profiles")\n'
)
STATE_DIR = "/var/lib/jupyter-gateway/state"  # jupyter data dir (connection files), IPython dir
WORKSPACE_DIR = "/home/jovyan/work"  # the notebook's workspace, at the same path in kernel pods
KERNEL_SERVICE_ACCOUNT = "default"  # its token is never mounted
KERNEL_USER, KERNEL_GROUP = 1000, 100  # jovyan:users of the docker-stacks and elyra/kernel-* images
# EG's KubernetesProcessProxy, failing a start at once with its reason (kernel_proxy.py, on
# the gateway's PYTHONPATH with kernel_reasons.py).
PROCESS_PROXY = "kernel_proxy.ReasonedKubernetesProcessProxy"
STOCK_PROCESS_PROXY = "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy"
PROXY_MODULES = ("kernel_proxy.py", "kernel_reasons.py", "kernel_metrics.py", "kernel_ends.py")
KERNEL_MANAGER = "kernel_metrics.MeteredKernelManager"  # EG's, counting kernels by reason
GPU = "nvidia.com/gpu"
# Labels of our kernel pods (besides EG's kernel_id and the gateway's): the notebook that started
# the kernel (the front door stamps it from the caller's identity) and the kernel profile.
NOTEBOOK_LABEL = "kubeflow.tkestack.io/notebook"
PROFILE_LABEL = "kubeflow.tkestack.io/kernel-profile"

DEFAULT_PROFILE = KernelProfile(
    name=DEFAULT_KERNEL_PROFILE,
    display_name="Python 3 (kernel pod)",
    image=DEFAULT_KERNEL_IMAGE,
    resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    max_resources={"cpu": "4", "memory": "8Gi"},
)

# Lay the ConfigMap out as kernelspec directories (POSIX sh; arguments: source dir,
# install dir, stock launcher). Profile names come from the file names, never the script.
INSTALL_SCRIPT = """set -eu
src="$1"; dst="$2"; launcher="$3"
for spec in "$src"/*.kernel.json; do
  name=$(basename "$spec" .kernel.json)
  mkdir -p "$dst/$name/scripts"
  cp "$spec" "$dst/$name/kernel.json"
  cp "$src/$name.kernel-pod.yaml.j2" "$dst/$name/scripts/kernel-pod.yaml.j2"
  cp "$src/$name.policy.json" "$dst/$name/scripts/policy.json"
  cp "$src/kernel_guard.py" "$launcher" "$dst/$name/scripts/"
done
"""

_GUARD = package_files.files(__package__).joinpath("kernel_guard.py").read_text(encoding="utf-8")
_SWEEP = package_files.files(__package__).joinpath("kernel_sweep.py").read_text(encoding="utf-8")
_PROXY = {name: package_files.files(__package__).joinpath(name).read_text(encoding="utf-8") for name in PROXY_MODULES}
_RESOURCE_VARS = (
    ("kernel_cpus", "requests", "cpu"),
    ("kernel_memory", "requests", "memory"),
    ("kernel_gpus", "requests", GPU),
    ("kernel_cpus_limit", "limits", "cpu"),
    ("kernel_memory_limit", "limits", "memory"),
    ("kernel_gpus_limit", "limits", GPU),
)


def config_map_name(name: str) -> str:
    return f"{name}-gateway-kernelspecs"


def profiles(spec: JupyterGatewaySpec) -> list[KernelProfile]:
    """The profiles the gateway serves: spec.kernelProfiles (or the default one), narrowed to spec.kernels."""
    offered = list(spec.kernel_profiles or [DEFAULT_PROFILE])
    if spec.kernels:
        offered = [p for p in offered if p.name in spec.kernels]
    return sorted(offered, key=lambda p: p.name)


def profile_problems(spec: JupyterGatewaySpec) -> list[str]:
    """Profiles whose defaults break their own maximum (every start without values would be refused)."""
    problems = []
    for i, profile in enumerate(spec.kernel_profiles or []):
        defaults = _quantities(profile)
        for resource, maximum in _maximum(profile).items():
            for part in ("requests", "limits"):
                value = defaults.get(part, {}).get(resource)
                if value is not None and quantity(value) > quantity(maximum):
                    problems.append(
                        f"spec.kernelProfiles[{i}].resources.{part}.{resource}: {value} exceeds maxResources {maximum}"
                    )
    return problems


def sweep_selector(name: str, namespace: str) -> str:
    labels = {"component": "kernel", **ch.gateway_client_labels(name, namespace)}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def config_map(name: str, namespace: str, labels: dict, spec: JupyterGatewaySpec) -> dict:
    data = {"kernel_guard.py": _GUARD, "kernel_sweep.py": _SWEEP, "sweep.json": _json(_sweep(name, namespace, spec))}
    data["no_ipykernel.py"] = NO_IPYKERNEL
    data.update(_PROXY)
    for profile in profiles(spec):
        data[f"{profile.name}.kernel.json"] = _json(kernel_json(profile))
        data[f"{profile.name}.kernel-pod.yaml.j2"] = pod_template(profile, name, namespace)
        data[f"{profile.name}.policy.json"] = _json(policy(profile, namespace, spec))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(name), "namespace": namespace, "labels": labels},
        "data": dict(sorted(data.items())),
    }


def kernel_json(profile: KernelProfile) -> dict:
    """kernel.json: jupyter_client turns "python" into its own interpreter and {resource_dir}
    into the kernelspec's directory, so the same file works in the image and in a local run."""
    scripts = "{resource_dir}/scripts"
    return {
        "display_name": profile.display_name or profile.name,
        "language": "python",
        "metadata": {
            "process_proxy": {"class_name": PROCESS_PROXY, "config": {"image_name": profile.image}},
            "debugger": True,
        },
        "env": {},
        "argv": [
            "python",
            f"{scripts}/kernel_guard.py",
            f"{scripts}/policy.json",
            f"{scripts}/launch_kubernetes.py",
            "--RemoteProcessProxy.kernel-id",
            "{kernel_id}",
            "--RemoteProcessProxy.port-range",
            "{port_range}",
            "--RemoteProcessProxy.response-address",
            "{response_address}",
            "--RemoteProcessProxy.public-key",
            "{public_key}",
        ],
    }


def policy(profile: KernelProfile, namespace: str, spec: JupyterGatewaySpec) -> dict:
    """What kernel_guard.py enforces for one profile."""
    return {
        "profile": profile.name,
        "gatewayNamespace": namespace,
        "allowedNamespaces": sorted(spec.allowed_namespaces or []),
        "defaults": _quantities(profile),
        "maximum": _maximum(profile),
        "workspaceDir": WORKSPACE_DIR,
        # Enterprise Gateway waits as long as a client's KERNEL_LAUNCH_TIMEOUT says; the guard
        # refuses more than the gateway's own (EG_KERNEL_LAUNCH_TIMEOUT, for clients sending none).
        "launchTimeout": spec.kernel_launch_timeout,
    }


def pod_template(profile: KernelProfile, gateway: str, namespace: str) -> str:
    """The Jinja2 pod template launch_kubernetes.py renders (trim_blocks, lstrip_blocks, no
    autoescape). Constants are JSON with every Jinja2 delimiter character escaped; each
    client value passes the launcher's yaml_safe filter (a double-quoted YAML scalar)."""
    labels = {
        "app": "enterprise-gateway",
        "component": "kernel",
        "source": "kernel-pod.yaml",
        PROFILE_LABEL: profile.name,
        **ch.gateway_client_labels(gateway, namespace),
    }
    pod_security = {
        "runAsNonRoot": True,
        "runAsUser": KERNEL_USER,
        "runAsGroup": KERNEL_GROUP,
        "fsGroup": KERNEL_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container_security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    scheduling = []
    if profile.node_selector:
        scheduling.append(f"  nodeSelector: {_literal(dict(sorted(profile.node_selector.items())))}")
    if profile.tolerations:
        tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in profile.tolerations]
        scheduling.append(f"  tolerations: {_literal(tolerations)}")
    if profile.priority_class_name:
        scheduling.append(f"  priorityClassName: {_literal(profile.priority_class_name)}")
    lines = [
        f"# Kernel profile {profile.name} of JupyterGateway {namespace}/{gateway}, rendered by its hook.",
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  name: {{ kernel_pod_name | yaml_safe }}",
        "  namespace: {{ kernel_namespace | yaml_safe }}",
        "  labels:",
        "    kernel_id: {{ kernel_id | yaml_safe }}",
        *(f"    {_literal(k)}: {_literal(v)}" for k, v in sorted(labels.items())),
        "{% if kernel_notebook %}",
        f"    {NOTEBOOK_LABEL}: {{{{ kernel_notebook | yaml_safe }}}}",
        "{% endif %}",
        "  annotations:",
        '    cluster-autoscaler.kubernetes.io/safe-to-evict: "false"',
        "spec:",
        "  restartPolicy: Never",
        f"  serviceAccountName: {_literal(KERNEL_SERVICE_ACCOUNT)}",
        "  automountServiceAccountToken: false",
        f"  securityContext: {_literal(pod_security)}",
        *scheduling,
        "{% if kernel_workspace_claim %}",
        '{% if kernel_workspace_access_mode == "ReadWriteOnce" and kernel_notebook %}',
        "  affinity:",
        "    podAffinity:",
        "      requiredDuringSchedulingIgnoredDuringExecution:",
        "      - topologyKey: kubernetes.io/hostname",
        "        labelSelector:",
        "          matchLabels:",
        "            kubeflow.tkestack.io/jupyternotebook: {{ kernel_notebook | yaml_safe }}",
        "            app.kubernetes.io/component: notebook",
        "{% endif %}",
        "  volumes:",
        "  - name: workspace",
        "    persistentVolumeClaim:",
        "      claimName: {{ kernel_workspace_claim | yaml_safe }}",
        "{% endif %}",
        "  containers:",
        "  - name: kernel",
        f"    image: {_literal(profile.image)}",
        "    env: []",
        f"    securityContext: {_literal(container_security)}",
        *_resources_block(),
        "{% if kernel_workspace_claim %}",
        "{% if kernel_working_dir %}",
        "    workingDir: {{ kernel_working_dir | yaml_safe }}",
        "{% endif %}",
        "    volumeMounts:",
        f"    - name: workspace\n      mountPath: {_literal(WORKSPACE_DIR)}",
        "{% endif %}",
    ]
    return "\n".join(lines) + "\n"


def gateway_pod_parts(name: str, image: str) -> dict:
    """Init containers, volumes, mounts and environment that make the gateway container serve
    exactly our kernelspecs.

    jupyter_client 6.1.12 (KernelSpecManager.kernel_dirs, not configurable) searches
    jupyter_core's jupyter_path("kernels") plus <IPython dir>/kernels, and adds ipykernel's
    own python3 unless ensure_native_kernel is off (the configuration file turns it off).
    jupyter_path is $JUPYTER_PATH, the data dir ($JUPYTER_DATA_DIR), the user site's
    share/jupyter (off with PYTHONNOUSERSITE), sys.prefix/share/jupyter (/opt/conda in the
    elyra images), /usr/local/share/jupyter and /usr/share/jupyter. Each is ours or empty.
    """
    installer = {
        "name": "kernelspecs",
        "image": image,
        "command": ["/bin/sh", "-c", INSTALL_SCRIPT, "install-kernelspecs", SOURCE_DIR, INSTALL_DIR, STOCK_LAUNCHER],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {"name": "kernelspecs-source", "mountPath": SOURCE_DIR, "readOnly": True},
            {"name": "kernelspecs", "mountPath": INSTALL_DIR},
        ],
    }
    # The orphan sweep runs at every start of the gateway container, not only a new pod's: a
    # crashed EG (OOM, liveness) is restarted by the kubelet in the same pod, without init
    # containers, and its predecessor's kernel pods would be left that no gateway culls. The
    # kubelet starts the container's readiness checks (so its Service) after this hook ends.
    sweep = {"exec": {"command": ["python", f"{PYTHON_PATH_DIR}/kernel_sweep.py", f"{PYTHON_PATH_DIR}/sweep.json"]}}
    volumes = [
        {"name": "kernelspecs-source", "configMap": {"name": config_map_name(name)}},
        {"name": "kernelspecs", "emptyDir": {}},
        {"name": "no-kernelspecs", "emptyDir": {}},
        {"name": "state", "emptyDir": {}},
        {
            "name": "python-path",
            "configMap": {
                "name": config_map_name(name),
                "items": [
                    {"key": "no_ipykernel.py", "path": "ipykernel/__init__.py"},
                    *({"key": name, "path": name} for name in (*PROXY_MODULES, "kernel_sweep.py", "sweep.json")),
                ],
            },
        },
    ]
    mounts = [
        {"name": "kernelspecs", "mountPath": KERNELSPEC_DIR, "readOnly": True},
        {"name": "no-kernelspecs", "mountPath": "/usr/share/jupyter/kernels", "readOnly": True},
        {"name": "no-kernelspecs", "mountPath": "/opt/conda/share/jupyter/kernels", "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
        {"name": "python-path", "mountPath": PYTHON_PATH_DIR, "readOnly": True},
    ]
    env = [
        # No extra kernelspec directories (an image's JUPYTER_PATH is replaced by one that is empty).
        {"name": "JUPYTER_PATH", "value": f"{STATE_DIR}/path"},
        {"name": "JUPYTER_DATA_DIR", "value": f"{STATE_DIR}/data"},
        {"name": "IPYTHONDIR", "value": f"{STATE_DIR}/ipython"},
        {"name": "PYTHONNOUSERSITE", "value": "1"},
        # no ipykernel: no python3 kernel; our process proxy (kernel_proxy.py)
        {"name": "PYTHONPATH", "value": PYTHON_PATH_DIR},
        # Kernels start in the notebook's directory (KERNEL_WORKING_DIR from Jupyter Server);
        # kernel_guard.py keeps it inside the workspace.
        {"name": "EG_MIRROR_WORKING_DIRS", "value": "True"},
    ]
    lifecycle = {"postStart": sweep}
    return {"initContainers": [installer], "volumes": volumes, "mounts": mounts, "env": env, "lifecycle": lifecycle}


def _sweep(name: str, namespace: str, spec: JupyterGatewaySpec) -> dict:
    namespaces = sorted({namespace, *(n for n in spec.allowed_namespaces or [] if n != "*")})
    return {"selector": sweep_selector(name, namespace), "namespaces": namespaces}


def _resources_block() -> list[str]:
    lines = ["{% if " + " or ".join(f"{v} is defined" for v, _, _ in _RESOURCE_VARS) + " %}", "    resources:"]
    for part in ("requests", "limits"):
        variables = [(v, r) for v, p, r in _RESOURCE_VARS if p == part]
        lines.append("{% if " + " or ".join(f"{v} is defined" for v, _ in variables) + " %}")
        lines.append(f"      {part}:")
        for variable, resource in variables:
            lines += [
                f"{{% if {variable} is defined %}}",
                f"        {resource}: {{{{ {variable} | yaml_safe }}}}",
                "{% endif %}",
            ]
        lines.append("{% endif %}")
    lines.append("{% endif %}")
    return lines


def _quantities(profile: KernelProfile) -> dict:
    out = {}
    for part in ("requests", "limits"):
        values = getattr(profile.resources, part, None) if profile.resources else None
        if values:
            dumped = values.model_dump(by_alias=True, exclude_none=True)
            out[part] = {k: canonical_quantity(v) for k, v in sorted(dumped.items())}
    return out


def _maximum(profile: KernelProfile) -> dict:
    if not profile.max_resources:
        return {}
    dumped = profile.max_resources.model_dump(by_alias=True, exclude_none=True)
    return {k: canonical_quantity(v) for k, v in sorted(dumped.items())}


def _json(value) -> str:
    # orjson: json's indenting encoder leaves cyclic garbage (see gateway.render_config).
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def _literal(value) -> str:
    """JSON (so YAML) for a constant, with no Jinja2 delimiter character left in any string."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=True)
    if isinstance(value, str):
        for char in "{}%#":
            text = text.replace(char, f"\\u{ord(char):04x}")
    return text
