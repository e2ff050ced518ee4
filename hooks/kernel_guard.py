"""Check a kernel start before Enterprise Gateway's launch_kubernetes.py renders its pod.

Every kernelspec the gateway serves runs this file first (kernel.json's argv):

    python kernel_guard.py POLICY LAUNCHER [LAUNCHER ARGS...]

It reads the profile's policy (JSON written by the gateway hook), checks the KERNEL_*
variables a client sent, fills in the profile's default resources, drops the variables
our pod template ignores on purpose, and then replaces itself with the real launcher
in the same process (os.execv), so Enterprise Gateway still watches the launcher's PID.
A refused start prints one line on stderr (the gateway's log) and exits 1; Enterprise
Gateway then answers the client's kernel start with an HTTP 500 naming the kernel id.

Standard library only and Python 3.8+: it runs in the gateway image's interpreter. The
hook ships this file's text in the gateway's kernelspec ConfigMap; the functions above
``main`` are pure and unit-tested.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from decimal import Decimal, InvalidOperation

# Variables the pod template never reads: a client may not choose the kernel pod's
# service account, image, volumes or user. Enterprise Gateway sets some of them itself
# (KERNEL_IMAGE, KERNEL_UID, ...); they are removed so the pod's environment does not
# pretend they took effect.
IGNORED = (
    "KERNEL_SERVICE_ACCOUNT_NAME",
    "KERNEL_IMAGE",
    "KERNEL_EXECUTOR_IMAGE",
    "KERNEL_VOLUMES",
    "KERNEL_VOLUME_MOUNTS",
    "KERNEL_UID",
    "KERNEL_GID",
)
# The gateway container's own Jupyter directories: a client that sends no environment gets
# Enterprise Gateway's whole one (jupyter_client's pre_start_kernel), and the launcher copies
# its environment into the pod, where these paths do not exist.
GATEWAY_ONLY = ("JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_PATH", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")
# (variable, resource, requests or limits)
RESOURCES = (
    ("KERNEL_CPUS", "cpu", "requests"),
    ("KERNEL_MEMORY", "memory", "requests"),
    ("KERNEL_GPUS", "nvidia.com/gpu", "requests"),
    ("KERNEL_CPUS_LIMIT", "cpu", "limits"),
    ("KERNEL_MEMORY_LIMIT", "memory", "limits"),
    ("KERNEL_GPUS_LIMIT", "nvidia.com/gpu", "limits"),
)
GPU = "nvidia.com/gpu"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The API server's quantity syntax (k8s.io/apimachinery resource.Quantity), without a sign:
# a kernel asks for a positive amount or none.
_QUANTITY = re.compile(r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class Refused(Exception):
    """A kernel start the policy does not allow; the message names the variable."""


def quantity(text: str) -> Decimal:
    """The amount a Kubernetes quantity stands for; ValueError if it is none."""
    match = _QUANTITY.match(text)
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
    if not pattern.match(value) or len(value) > limit:
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
        value = env.get(variable, "").strip()
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
    wanted = posixpath.normpath(env.get("KERNEL_WORKING_DIR") or root)
    # Jupyter Server sends the notebook's own directory; anything outside the workspace
    # does not exist in the kernel pod, so the kernel starts at the workspace's root.
    out["KERNEL_WORKING_DIR"] = wanted if wanted == root or wanted.startswith(root + "/") else root
    return out


def checked_env(env: dict, policy: dict) -> dict:
    """The environment to launch with, or Refused naming the first variable that is not allowed."""
    check_namespace(env, policy)
    _dns(env, "KERNEL_POD_NAME", _DNS_SUBDOMAIN, 253)
    kernel_id = env.get("KERNEL_ID", "")
    if not _UUID.match(kernel_id):
        raise Refused(f"KERNEL_ID={kernel_id!r} is not a UUID")
    notebook = env.get("KERNEL_NOTEBOOK")
    if notebook is not None and notebook != "":
        _dns(env, "KERNEL_NOTEBOOK", _DNS_LABEL, 63)
    decided = {**resources(env, policy), **workspace(env, policy)}
    managed = {name for name, _, _ in RESOURCES} | {
        "KERNEL_WORKSPACE_CLAIM",
        "KERNEL_WORKSPACE_ACCESS_MODE",
        "KERNEL_WORKING_DIR",
    }
    out = {k: v for k, v in env.items() if k not in IGNORED and k not in GATEWAY_ONLY and k not in managed}
    out.update(decided)
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
