"""Check a kernel start before Enterprise Gateway's launch_kubernetes.py renders its pod.

Every kernelspec the gateway serves runs this file first (kernel.json's argv):

    python kernel_guard.py POLICY LAUNCHER [LAUNCHER ARGS...]

It reads the profile's policy (JSON written by the gateway hook), checks the KERNEL_*
variables a client sent, fills in the profile's default resources, and then replaces
itself with the real launcher in the same process (os.execve), so Enterprise Gateway still
watches the launcher's PID. The launcher gets an environment built from an allow-list:
the KERNEL_* variables below with checked values, and the few others it needs to reach the
API server. Nothing else: the launcher turns every KERNEL_* name into a template keyword
by lower-casing it (KERNEL_NAMESPACe would override KERNEL_NAMESPACE, the last one wins),
and copies its whole environment into the kernel pod.

A refused start prints one line on stderr (the gateway's log) and exits 1; Enterprise
Gateway then answers the client's kernel start with an HTTP 500 naming the kernel id.

Standard library only and Python 3.8+: it runs in the gateway image's interpreter. The
hook ships this file's text in the gateway's kernelspec ConfigMap; the functions above
``main`` are pure and unit-tested.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import sys
from decimal import Decimal, InvalidOperation

PREFIX = "KERNEL_"
# Set by Enterprise Gateway itself (container.py, k8s.py) for the stock template; ours reads
# none of them (a client may not choose the kernel pod's service account, image or user), so
# they are left out of the launcher's environment, whoever set them.
SET_BY_GATEWAY = (
    "KERNEL_SERVICE_ACCOUNT_NAME",
    "KERNEL_IMAGE",
    "KERNEL_EXECUTOR_IMAGE",
    "KERNEL_UID",
    "KERNEL_GID",
)
# (variable, resource, requests or limits)
RESOURCES = (
    ("KERNEL_CPUS", "cpu", "requests"),
    ("KERNEL_MEMORY", "memory", "requests"),
    ("KERNEL_GPUS", "nvidia.com/gpu", "requests"),
    ("KERNEL_CPUS_LIMIT", "cpu", "limits"),
    ("KERNEL_MEMORY_LIMIT", "memory", "limits"),
    ("KERNEL_GPUS_LIMIT", "nvidia.com/gpu", "limits"),
)
WORKSPACE = ("KERNEL_WORKSPACE_CLAIM", "KERNEL_WORKSPACE_ACCESS_MODE", "KERNEL_WORKING_DIR")
# Every KERNEL_* variable that may reach the launcher, each checked below. Any other name
# whose upper or lower case starts with KERNEL_ is refused, so that no spelling of a name
# reaches the template as one of its keywords.
ALLOWED = (
    "KERNEL_ID",  # a UUID (Enterprise Gateway's)
    "KERNEL_POD_NAME",
    "KERNEL_NAMESPACE",
    "KERNEL_NOTEBOOK",
    "KERNEL_USERNAME",  # Enterprise Gateway attributes kernels by it; only in the pod's env
    "KERNEL_LANGUAGE",  # set by Enterprise Gateway from kernel.json; read by the kernel image
    "KERNEL_GATEWAY",  # "1", set by Enterprise Gateway
    "KERNEL_LAUNCH_TIMEOUT",  # read by Enterprise Gateway itself, before this guard runs
    *WORKSPACE,
    *(variable for variable, _, _ in RESOURCES),
)
KNOWN = frozenset(ALLOWED + SET_BY_GATEWAY)
# Not KERNEL_*: what the launcher needs to reach the API server, the names Enterprise
# Gateway's KubernetesProcessProxy.launch_process copies from its own environment for it
# (in a pod, KUBERNETES_SERVICE_HOST/PORT; outside one, KUBECONFIG). A client cannot send
# them: Enterprise Gateway takes only KERNEL_* names from a client (client_envs is empty).
LAUNCHER = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG")
GPU = "nvidia.com/gpu"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")
LANGUAGE = "python"  # kernel.json's language, which Enterprise Gateway passes on

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A number of seconds as Jupyter Server sends it; Enterprise Gateway's float() also takes
# nan, inf, 1e9, 1_0, " 5" and non-ASCII digits, which are refused here.
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
# The API server's quantity syntax (k8s.io/apimachinery resource.Quantity), without a sign:
# a kernel asks for a positive amount or none.
_QUANTITY = re.compile(r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class Refused(Exception):
    """A kernel start the policy does not allow; the message names the variable."""


def quantity(text: str) -> Decimal:
    """The amount a Kubernetes quantity stands for; ValueError if it is none."""
    match = _QUANTITY.fullmatch(text)
    if not match or len(text) > 64:
        raise ValueError(text)
    number, suffix = text[: match.end(1)], text[match.end(1) :]
    try:
        amount = Decimal(number)
        if suffix in _BINARY:
            return amount * (2 ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return amount.scaleb(_DECIMAL[suffix])
        return amount.scaleb(int(suffix[1:]))
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(text) from None


def _dns(env: dict, name: str, pattern, limit: int) -> str:
    value = env.get(name, "")
    if not pattern.fullmatch(value) or len(value) > limit:
        raise Refused(f"{name}={value!r} is not a valid Kubernetes name")
    return value


def check_namespace(env: dict, policy: dict) -> None:
    namespace = _dns(env, "KERNEL_NAMESPACE", _DNS_LABEL, 63)
    allowed = {policy["gatewayNamespace"], *policy.get("allowedNamespaces", [])}
    if namespace not in allowed and "*" not in allowed:
        raise Refused(
            f"KERNEL_NAMESPACE={namespace!r}: this gateway runs kernels only in "
            f"{', '.join(sorted(allowed))} (its own namespace and spec.allowedNamespaces)"
        )


def resources(env: dict, policy: dict) -> dict:
    """The KERNEL_* resource variables to launch with: the client's, checked against the
    profile's maximum, else the profile's defaults. Requests never exceed limits, and GPUs
    (an extended resource) are requested exactly as limited."""
    chosen: dict = {"requests": {}, "limits": {}}
    for variable, resource, part in RESOURCES:
        value = env.get(variable, "")
        if not value:
            continue
        try:
            amount = quantity(value)
        except ValueError:
            raise Refused(f"{variable}={value!r} is not a Kubernetes quantity such as 500m, 2 or 4Gi") from None
        maximum = (policy.get("maximum") or {}).get(resource, "0" if resource == GPU else None)
        if maximum is not None and amount > quantity(maximum):
            raise Refused(f"{variable}={value} is more than this kernel profile allows ({resource} at most {maximum})")
        chosen[part][resource] = value
    asked = {part: dict(values) for part, values in chosen.items()}
    defaults = policy.get("defaults") or {}
    for part in ("requests", "limits"):
        for resource, value in (defaults.get(part) or {}).items():
            chosen[part].setdefault(resource, value)
    requests, limits = chosen["requests"], chosen["limits"]
    if GPU in requests and GPU not in limits:
        limits[GPU] = requests[GPU]
    if GPU in limits and GPU not in requests:
        requests[GPU] = limits[GPU]
    if GPU in requests and quantity(requests[GPU]) != quantity(limits[GPU]):
        raise Refused(f"KERNEL_GPUS={requests[GPU]} and KERNEL_GPUS_LIMIT={limits[GPU]} must be equal")
    for resource in ("cpu", "memory"):
        if resource in requests and resource in limits and quantity(requests[resource]) > quantity(limits[resource]):
            # A client's value moves the profile's default on the other side; two of the
            # client's own that contradict each other are refused.
            if resource in asked["requests"] and resource not in asked["limits"]:
                limits[resource] = requests[resource]
            elif resource in asked["limits"] and resource not in asked["requests"]:
                requests[resource] = limits[resource]
            else:
                raise Refused(f"the {resource} request {requests[resource]} exceeds its limit {limits[resource]}")
    out = {}
    for variable, resource, part in RESOURCES:
        if resource in chosen[part]:
            out[variable] = chosen[part][resource]
    return out


def workspace(env: dict, policy: dict) -> dict:
    """The workspace variables the template reads, checked; none without a claim."""
    out = {}
    claim = env.get("KERNEL_WORKSPACE_CLAIM", "")
    if not claim:
        return out
    out["KERNEL_WORKSPACE_CLAIM"] = _dns(env, "KERNEL_WORKSPACE_CLAIM", _DNS_SUBDOMAIN, 253)
    mode = env.get("KERNEL_WORKSPACE_ACCESS_MODE") or "ReadWriteOnce"
    if mode not in ACCESS_MODES:
        raise Refused(f"KERNEL_WORKSPACE_ACCESS_MODE={mode!r} is not one of {', '.join(ACCESS_MODES)}")
    out["KERNEL_WORKSPACE_ACCESS_MODE"] = mode
    if mode == "ReadWriteOnce":
        # The kernel must share the notebook's node: it is found by the notebook's name.
        out["KERNEL_NOTEBOOK"] = _dns(env, "KERNEL_NOTEBOOK", _DNS_LABEL, 63)
    root = policy["workspaceDir"]
    wanted = posixpath.normpath(_text(env, "KERNEL_WORKING_DIR", 4096).get("KERNEL_WORKING_DIR") or root)
    # Jupyter Server sends the notebook's own directory; anything outside the workspace
    # does not exist in the kernel pod, so the kernel starts at the workspace's root.
    out["KERNEL_WORKING_DIR"] = wanted if wanted == root or wanted.startswith(root + "/") else root
    return out


def launch_timeout(env: dict, policy: dict) -> dict:
    """KERNEL_LAUNCH_TIMEOUT, if sent: Enterprise Gateway has already read it (float(), in
    RemoteKernelManager._capture_user_overrides and RemoteProcessProxy.launch_process) and
    waits that long for the pod. A value it could wait on for ever, or longer than the gateway
    allows, is refused here, before any pod exists; the launcher's exit ends that wait."""
    if "KERNEL_LAUNCH_TIMEOUT" not in env:
        return {}
    value, maximum = env["KERNEL_LAUNCH_TIMEOUT"], policy["launchTimeout"]
    seconds = float(value) if _SECONDS.fullmatch(value) else math.nan
    if not 0 < seconds <= maximum:
        raise Refused(
            f"KERNEL_LAUNCH_TIMEOUT={value!r} is not a number of seconds above 0 and at most {maximum} "
            f"(this gateway's kernelLaunchTimeout)"
        )
    return {"KERNEL_LAUNCH_TIMEOUT": value}


def _text(env: dict, name: str, limit: int = 256) -> dict:
    """A free-form value (no control characters), if sent."""
    if name not in env:
        return {}
    value = env[name]
    if len(value) > limit or _CONTROL.search(value):
        raise Refused(f"{name}={value!r} has control characters or is longer than {limit}")
    return {name: value}


def _exactly(env: dict, name: str, expected: str) -> dict:
    if name not in env:
        return {}
    if env[name] != expected:
        raise Refused(f"{name}={env[name]!r}: Enterprise Gateway sets it to {expected!r}")
    return {name: expected}


def unknown_kernel_variables(env: dict) -> list:
    """Names a launcher would take for a KERNEL_* keyword (or that look like one in some case)
    that are not exactly, in ASCII upper case, one this guard knows."""
    return sorted(
        name
        for name in env
        if name not in KNOWN and (name.upper().startswith(PREFIX) or name.lower().startswith(PREFIX.lower()))
    )


def checked_env(env: dict, policy: dict) -> dict:
    """The environment to launch with, or Refused naming the first variable that is not allowed."""
    unknown = unknown_kernel_variables(env)
    if unknown:
        raise Refused(
            f"{unknown[0]!a} is not a kernel variable this gateway takes; it takes exactly (upper case) "
            f"{', '.join(ALLOWED)}"
        )
    check_namespace(env, policy)
    out = {"KERNEL_NAMESPACE": env["KERNEL_NAMESPACE"]}
    out["KERNEL_POD_NAME"] = _dns(env, "KERNEL_POD_NAME", _DNS_SUBDOMAIN, 253)
    kernel_id = env.get("KERNEL_ID", "")
    if not _UUID.fullmatch(kernel_id):
        raise Refused(f"KERNEL_ID={kernel_id!r} is not a UUID")
    out["KERNEL_ID"] = kernel_id
    if env.get("KERNEL_NOTEBOOK"):
        out["KERNEL_NOTEBOOK"] = _dns(env, "KERNEL_NOTEBOOK", _DNS_LABEL, 63)
    out.update(_text(env, "KERNEL_USERNAME"))
    out.update(_exactly(env, "KERNEL_LANGUAGE", LANGUAGE))
    out.update(_exactly(env, "KERNEL_GATEWAY", "1"))
    out.update(launch_timeout(env, policy))
    out.update(resources(env, policy))
    out.update(workspace(env, policy))
    out.update({name: env[name] for name in LAUNCHER if name in env})
    return out


def main(argv: list) -> int:
    if len(argv) < 3:
        print("usage: kernel_guard.py POLICY LAUNCHER [ARGS...]", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        policy = json.load(f)
    try:
        env = checked_env(dict(os.environ), policy)
    except Refused as exc:
        print(f"kernel start refused by profile {policy.get('profile')}: {exc}", file=sys.stderr)
        return 1
    os.execve(sys.executable, [sys.executable, argv[2], *argv[3:]], env)
    return 1  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv))
