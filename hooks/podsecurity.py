"""Make a pod pass the Kubernetes ``restricted`` Pod Security Standard.

``harden`` fills in what the standard requires and the pod leaves unset; it never
overrides a value a user chose. ``violations`` lists what still breaks the standard
(a user's template may ask for root or a hostPath), so the hook can refuse it with a
message naming the field instead of rendering a pod the cluster would reject.
The rules follow https://kubernetes.io/docs/concepts/security/pod-security-standards/.
"""

from __future__ import annotations

_ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def harden(pod_spec: dict, run_as_user: int = 1000, run_as_group: int = 100) -> dict:
    """A copy of ``pod_spec`` with the restricted standard's required settings filled in.

    Only the dicts it changes are copied (the pod, its securityContext, each container and
    its securityContext): a deep copy of a whole template would cost more than the hook.
    """
    spec = dict(pod_spec)
    pod_sc = spec["securityContext"] = dict(spec.get("securityContext") or {})
    pod_sc.setdefault("runAsNonRoot", True)
    if pod_sc.get("runAsUser") is None:
        # Images such as docker-stacks name their user (jovyan); the kubelet can
        # only enforce runAsNonRoot on a numeric one.
        pod_sc["runAsUser"] = run_as_user
        pod_sc.setdefault("runAsGroup", run_as_group)
        pod_sc.setdefault("fsGroup", run_as_group)
    pod_sc.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    for list_name in _CONTAINER_LISTS:
        if spec.get(list_name):
            spec[list_name] = [_harden_container(c) for c in spec[list_name]]
    return spec


def _harden_container(container: dict) -> dict:
    sc = dict(container.get("securityContext") or {})
    sc.setdefault("allowPrivilegeEscalation", False)
    caps = sc["capabilities"] = dict(sc.get("capabilities") or {})
    if not caps.get("drop"):
        caps["drop"] = ["ALL"]
    return {**container, "securityContext": sc}


def violations(pod_spec: dict, path: str = "spec") -> list[str]:
    """Every way ``pod_spec`` breaks the restricted standard, as ``field: reason``."""
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            found.append(f"{path}.{field}: must not be true")
    for i, volume in enumerate(pod_spec.get("volumes") or []):
        kinds = set(volume) - {"name"}
        for kind in kinds - _ALLOWED_VOLUME_TYPES:
            found.append(f"{path}.volumes[{i}].{kind}: volume type not allowed")
    pod_sc = pod_spec.get("securityContext") or {}
    found += _identity(pod_sc, f"{path}.securityContext")
    for i, sysctl in enumerate(pod_sc.get("sysctls") or []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            found.append(f"{path}.securityContext.sysctls[{i}]: unsafe sysctl {sysctl.get('name')}")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    for list_name in _CONTAINER_LISTS:
        for i, container in enumerate(pod_spec.get(list_name) or []):
            where = f"{path}.{list_name}[{i}]"
            sc = container.get("securityContext") or {}
            found += _identity(sc, f"{where}.securityContext")
            if sc.get("privileged"):
                found.append(f"{where}.securityContext.privileged: must not be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}.securityContext.allowPrivilegeEscalation: must be false")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                found.append(f"{where}.securityContext.capabilities.drop: must include ALL")
            for cap in caps.get("add") or []:
                if cap != "NET_BIND_SERVICE":
                    found.append(f"{where}.securityContext.capabilities.add: {cap} not allowed")
            if sc.get("procMount") not in (None, "Default"):
                found.append(f"{where}.securityContext.procMount: must be Default")
            if not (sc.get("runAsNonRoot") is True or (pod_non_root and sc.get("runAsNonRoot") is None)):
                found.append(f"{where}.securityContext.runAsNonRoot: must be true")
            seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
            if seccomp not in ("RuntimeDefault", "Localhost"):
                found.append(f"{where}.securityContext.seccompProfile.type: must be RuntimeDefault or Localhost")
            for j, port in enumerate(container.get("ports") or []):
                if port.get("hostPort"):
                    found.append(f"{where}.ports[{j}].hostPort: must not be set")
    return found


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def annotation_violations(annotations: dict, path: str = "metadata.annotations") -> list[str]:
    """What the pod's annotations break: AppArmor profiles other than the runtime's or a node's."""
    found = []
    for key, value in sorted(annotations.items()):
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            found.append(f"{path}[{key}]: AppArmor profile {value} not allowed (runtime/default or localhost/*)")
    return found


def _identity(sc: dict, where: str) -> list[str]:
    found = []
    if sc.get("runAsNonRoot") is False:
        found.append(f"{where}.runAsNonRoot: must be true")
    if sc.get("runAsUser") == 0:
        found.append(f"{where}.runAsUser: must not be 0 (root)")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}.seccompProfile.type: must not be Unconfined")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}.appArmorProfile.type: must not be Unconfined")
    se_type = (sc.get("seLinuxOptions") or {}).get("type")
    if se_type not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"):
        found.append(f"{where}.seLinuxOptions.type: {se_type} not allowed")
    if any((sc.get("seLinuxOptions") or {}).get(k) for k in ("user", "role")):
        found.append(f"{where}.seLinuxOptions: user and role must not be set")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where}.windowsOptions.hostProcess: must not be true")
    return found
