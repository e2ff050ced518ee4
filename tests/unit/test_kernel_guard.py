"""The kernel guard's allow-list (issue 15): what reaches Enterprise Gateway's launcher.

launch_kubernetes.py lower-cases every KERNEL_* name of its environment into a template
keyword (the last one wins) and copies its whole environment into the kernel pod, so the
guard hands it only names it knows, spelled exactly, with checked values, and refuses any
other spelling of a KERNEL_* name. The pods here are written by the sdist's whole launcher
(tests/eg_launcher.launch_pod), and the environment the guard execs the launcher with is
read back from a real exec.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from hooks import kernel_guard as guard
from hooks.podsecurity import violations
from tests import eg_launcher
from tests.builders import gateway
from tests.unit.test_kernel_pods import (
    DATA,
    KERNEL_ID,
    TEMPLATE_VARIABLES,
    WORKSPACE_DIR,
    client_env,
    kernelspec_data,
    policy,
)

TEMPLATE = DATA["python_kubernetes.kernel-pod.yaml.j2"]
OTHER_KERNEL = "deadbeef-0000-4000-8000-000000000000"
# What the launcher may be handed, written out here so that a change to the guard's lists
# changes this test too.
ALLOWED = {
    *TEMPLATE_VARIABLES,  # pod name, namespace, notebook, workspace claim, resources
    "KERNEL_ID",
    "KERNEL_USERNAME",
    "KERNEL_LANGUAGE",
    "KERNEL_GATEWAY",
    "KERNEL_LAUNCH_TIMEOUT",
    "KERNEL_WORKSPACE_ACCESS_MODE",
    "KERNEL_WORKING_DIR",
}
CLUSTER_ACCESS = {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG"}
# Set by Enterprise Gateway for its stock template; left out of the launcher's environment.
SET_BY_GATEWAY = {"KERNEL_SERVICE_ACCOUNT_NAME", "KERNEL_IMAGE", "KERNEL_EXECUTOR_IMAGE", "KERNEL_UID", "KERNEL_GID"}
# What Enterprise Gateway's own process hands a launcher besides the client's KERNEL_*
# (a request without "env" gets its whole environment; jupyter_client adds JPY_PARENT_PID).
GATEWAY_ENV = {
    "KERNEL_LANGUAGE": "python",
    "KERNEL_GATEWAY": "1",
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "PATH": "/opt/conda/bin:/usr/bin",
    "HOME": "/home/jovyan",
    "LANG": "C.UTF-8",
    "PYTHONPATH": "/etc/jupyter-gateway/python",
    "JUPYTER_DATA_DIR": "/var/lib/jupyter-gateway/state/data",
    "EG_NAMESPACE": "gateways",
    "EG_RESPONSE_PORT": "8877",
    "JPY_PARENT_PID": "7",
}


def gateway_env(**extra) -> dict:
    return {**client_env(), **GATEWAY_ENV, **extra}


def pod_through_guard(env: dict, profile: str = "python_kubernetes") -> dict | None:
    """The pod the real launcher writes after the guard, or None if the guard refused."""
    try:
        checked = guard.checked_env(env, policy(profile))
    except guard.Refused:
        return None
    return eg_launcher.launch_pod(DATA[f"{profile}.kernel-pod.yaml.j2"], checked, KERNEL_ID)


# Each of these reached the rendered pod before the allow-list (name, value, what it steered).
BYPASSES = [
    ("KERNEL_NAMESPACe", "kube-system"),
    ("KERNEL_GPUs", "8"),
    ("KERNEL_GPUS_LIMIt", "8"),
    ("KERNEL_CPUS_LIMIt", "64"),
    ("KERNEL_Id", OTHER_KERNEL),
    ("kernel_namespace", "kube-system"),
    ("Kernel_Memory_Limit", "1Ti"),
    # KELVIN SIGN: its lower case is an ASCII k, so the launcher's keyword is kernel_workspace_claim
    ("KERNEL_WOR\u212aSPACE_CLAIM", "someone-elses-claim"),
    ("KERNEL_NOTEBOO\u212a", "bob"),
    ("\u212aERNEL_NAMESPACE", "kube-system"),
    ("KERNEL_NAMESPACE\n", "kube-system"),
    ("KERNEL_VOLUMES", "[{name: host, hostPath: {path: /}}]"),
    ("KERNEL_CLASS_NAME", "evil.Kernel"),
    ("KERNEL_LAUNCHERS_DIR", "/tmp"),
]


def test_without_the_guard_the_real_launcher_takes_any_spelling_of_a_keyword():
    """Why names are refused: the last spelling of a keyword in the environment wins."""
    pod = eg_launcher.launch_pod(TEMPLATE, {**client_env(), "KERNEL_NAMESPACe": "kube-system"}, KERNEL_ID)
    assert pod["metadata"]["namespace"] == "kube-system"
    pod = eg_launcher.launch_pod(TEMPLATE, {**client_env(), "KERNEL_Id": OTHER_KERNEL}, KERNEL_ID)
    assert pod["metadata"]["labels"]["kernel_id"] == OTHER_KERNEL


@pytest.mark.parametrize(("name", "value"), BYPASSES, ids=[ascii(n) for n, _ in BYPASSES])
def test_every_other_spelling_of_a_kernel_variable_is_refused_by_name(name, value):
    with pytest.raises(guard.Refused, match=re.escape(ascii(name))):
        guard.checked_env(gateway_env(**{name: value}), policy())
    # Enterprise Gateway's answer is the launcher's exit; the pod is never written.
    assert pod_through_guard(gateway_env(**{name: value})) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KERNEL_NAMESPACE", "team-a\n"),
        ("KERNEL_NAMESPACE", " team-a"),
        ("KERNEL_ID", KERNEL_ID + "\n"),
        ("KERNEL_POD_NAME", f"alice-{KERNEL_ID}\n"),
        ("KERNEL_NOTEBOOK", "alice\n"),
        ("KERNEL_WORKSPACE_CLAIM", "alice-workspace\n"),
        ("KERNEL_CPUS", "1\n"),
        ("KERNEL_MEMORY", " 1Gi"),
        ("KERNEL_LANGUAGE", "scala"),
        ("KERNEL_GATEWAY", "0"),
        ("KERNEL_USERNAME", "alice\nKERNEL_NAMESPACE=kube-system"),
        ("KERNEL_WORKING_DIR", f"{WORKSPACE_DIR}/x\n"),
    ],
)
def test_values_match_whole_with_no_trailing_newline_or_space(name, value):
    env = gateway_env(**{"KERNEL_WORKSPACE_CLAIM": "alice-workspace", name: value})
    with pytest.raises(guard.Refused, match=name):
        guard.checked_env(env, policy())


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e9", "1e2", "61", "3600", "-1", "0",
                                   "0.0", "abc", "", " 60", "60\n", "1_0", "\u0666\u0660", "60s"])  # fmt: skip
def test_a_launch_timeout_enterprise_gateway_could_wait_on_past_the_gateways_is_refused(value):
    with pytest.raises(
        guard.Refused, match=r"KERNEL_LAUNCH_TIMEOUT=.* at most 60 \(this gateway's kernelLaunchTimeout\)"
    ):
        guard.checked_env(gateway_env(KERNEL_LAUNCH_TIMEOUT=value), policy())


def test_a_launch_timeout_up_to_the_gateways_passes_and_the_policy_carries_the_gateways():
    for value in ("60", "30", "0.5", "59.999"):
        assert guard.checked_env(gateway_env(KERNEL_LAUNCH_TIMEOUT=value), policy())["KERNEL_LAUNCH_TIMEOUT"] == value
    assert policy()["launchTimeout"] == 60
    slow = kernelspec_data(gateway("gw", "gateways", allowedNamespaces=["team-a"], kernelLaunchTimeout=900))
    assert json.loads(slow["python_kubernetes.policy.json"])["launchTimeout"] == 900
    assert guard.checked_env(
        gateway_env(KERNEL_LAUNCH_TIMEOUT="900"), json.loads(slow["python_kubernetes.policy.json"])
    )


def test_the_launcher_gets_only_allow_listed_names_and_the_pod_only_those_and_its_own():
    env = gateway_env(KERNEL_WORKSPACE_CLAIM="alice-workspace", KERNEL_LAUNCH_TIMEOUT="60", KERNEL_CPUS="1")
    checked = guard.checked_env(env, policy())
    assert set(checked) <= ALLOWED | CLUSTER_ACCESS
    assert not set(checked) & SET_BY_GATEWAY
    assert checked["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and checked["KERNEL_CPUS"] == "1"
    pod = eg_launcher.launch_pod(TEMPLATE, checked, KERNEL_ID)
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    # The launcher adds what it reads from its argv and where it was installed.
    assert names == set(checked) | {"PORT_RANGE", "PUBLIC_KEY", "RESPONSE_ADDRESS", "KERNEL_NAME",
                                    "KERNEL_SPARK_CONTEXT_INIT_MODE"}  # fmt: skip


def test_the_guard_execs_the_launcher_with_exactly_the_checked_environment(tmp_path):
    """A real exec: the 'launcher' here prints the environment it was started with."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text("import json, os, sys\nprint(json.dumps([dict(os.environ), sys.argv[1:]]))\n")
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy()))
    env = gateway_env(KERNEL_LAUNCH_TIMEOUT="60")
    guard_py = Path(guard.__file__)
    result = subprocess.run(
        [sys.executable, "-I", str(guard_py), str(policy_file), str(launcher), "--kernel-id", KERNEL_ID],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen, argv = json.loads(result.stdout)
    seen.pop("LC_CTYPE", None)  # Python's own locale coercion in a C locale
    assert seen == guard.checked_env(env, policy())
    assert set(seen) <= ALLOWED | CLUSTER_ACCESS and argv == ["--kernel-id", KERNEL_ID]
    refused = subprocess.run(
        [sys.executable, "-I", str(guard_py), str(policy_file), str(launcher)],
        env={**env, "KERNEL_NAMESPACe": "kube-system"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("kernel start refused by profile python_kubernetes: 'KERNEL_NAMESPACe' is not")


# --- hypothesis: names ---------------------------------------------------------------------

# Characters whose upper or lower case is an ASCII letter of a KERNEL_* name, or that look like one.
LOOKALIKES = {
    "K": ["k", "\u212a", "\u039a"],  # KELVIN SIGN, GREEK CAPITAL KAPPA
    "S": ["s", "\u017f"],  # LATIN SMALL LETTER LONG S (upper case: S)
    "I": ["i", "\u0131", "\u0130"],  # dotless i (upper case: I), I with dot
    "E": ["e", "\u0415"],  # CYRILLIC CAPITAL IE
    "_": ["-", "\uff3f"],
}


@st.composite
def spellings(draw) -> str:
    """Another spelling of a KERNEL_* name the guard knows: cases, look-alikes, whitespace."""
    name = draw(st.sampled_from(sorted(ALLOWED | SET_BY_GATEWAY)))
    chars = [draw(st.sampled_from([c, c.lower(), *LOOKALIKES.get(c, [])])) for c in name]
    around = draw(st.sampled_from(["", "\n", " ", "\t", "\r\n", "\x0b"]))
    spelled = "".join(chars)
    return draw(st.sampled_from([spelled + around, around + spelled, spelled]))


NAMES = st.one_of(
    spellings(),
    spellings(),
    spellings(),
    st.text(min_size=1, max_size=30).filter(lambda n: "=" not in n and "\0" not in n),
)
VALUES = st.one_of(
    st.sampled_from(["kube-system", "team-a", "gateways", "8", "64", "1Ti", OTHER_KERNEL, "", "nan", "1e9"]),
    st.text(max_size=30),
)


def takes_as_keyword(name: str) -> bool:
    """launch_kubernetes.py's own test for a template keyword (its launch_kubernetes_kernel)."""
    return name.startswith("KERNEL_")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NAMES, VALUES)
@example("KERNEL_NAMESPACe", "kube-system")
@example("\u212aERNEL_ID", OTHER_KERNEL)
@example("KERNEL_NOTEBOO\u212a", "bob")
def test_any_name_is_refused_by_name_or_kept_out_of_the_launchers_environment(name, value):
    assume(name not in ALLOWED | SET_BY_GATEWAY | CLUSTER_ACCESS)
    env = gateway_env(**{name: value})
    try:
        checked = guard.checked_env(env, policy())
    except guard.Refused as exc:
        event("refused")
        assert ascii(name) in str(exc), "refused for another reason than the name"
        return
    event("kept out")
    # Kept: only names the guard takes, none of them this one; no spelling of a KERNEL_*
    # name gets by, whether its upper or its lower case says KERNEL_.
    assert set(checked) <= ALLOWED | CLUSTER_ACCESS and name not in checked
    assert not name.upper().startswith("KERNEL_") and not name.lower().startswith("kernel_")
    assert not takes_as_keyword(name)


# --- hypothesis: values ------------------------------------------------------------------

HOSTILE_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["60", "30", "1", "500m", "4Gi", "team-a", "gateways", "alice", "ReadWriteMany", WORKSPACE_DIR]),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e9", "-1", "0", "60", "61", "0.5", " 60", "60\n", "1", "500m", "4Gi", "5", "8Gi\n",
         "team-a", "team-a\n", "kube-system", "gateways", "alice", "alice\n", "ReadWriteMany", "ReadOnlyMany",
         "python", "Python", "1", KERNEL_ID, KERNEL_ID + "\n", OTHER_KERNEL, WORKSPACE_DIR, WORKSPACE_DIR + "/x\n",
         "\u0666\u0660", "\u212a", ""]
    ),
)  # fmt: skip
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAXIMUM = {"cpu": 4, "memory": 8 * 2**30, "nvidia.com/gpu": 0}
QUANTITIES = {
    "KERNEL_CPUS": "cpu",
    "KERNEL_CPUS_LIMIT": "cpu",
    "KERNEL_MEMORY": "memory",
    "KERNEL_MEMORY_LIMIT": "memory",
    "KERNEL_GPUS": "nvidia.com/gpu",
    "KERNEL_GPUS_LIMIT": "nvidia.com/gpu",
}


SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "": 1}
SUFFIXES.update({"n": "1e-9", "u": "1e-6", "m": "1e-3", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12", "P": "1e15"})
SUFFIXES["E"] = "1e18"


def amount(text: str) -> Decimal:
    """A quantity's amount, read here without the guard's parser."""
    match = re.fullmatch(r"([0-9]*\.?[0-9]*)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)", text)
    assert match and match.group(1) not in ("", "."), text
    number, suffix = match.groups()
    factor = (
        Decimal(10) ** int(suffix[1:]) if suffix[:1] in ("e", "E") and len(suffix) > 1 else Decimal(SUFFIXES[suffix])
    )
    return Decimal(number) * factor


def assert_checked(name: str, value: str) -> None:
    """What a value the guard let through must be, said independently of the guard."""
    assert "\n" not in value and (value == value.strip() or name == "KERNEL_USERNAME"), (name, value)
    if name == "KERNEL_NAMESPACE":
        assert value in ("gateways", "team-a")
    elif name == "KERNEL_ID":  # the launcher replaces it with the id of its argv
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value)
    elif name in ("KERNEL_NOTEBOOK",):
        assert DNS_LABEL.fullmatch(value) and len(value) <= 63
    elif name in ("KERNEL_POD_NAME", "KERNEL_WORKSPACE_CLAIM"):
        assert DNS_SUBDOMAIN.fullmatch(value) and len(value) <= 253
    elif name == "KERNEL_LAUNCH_TIMEOUT":
        assert value.isascii() and 0 < float(value) <= 60 and math.isfinite(float(value))
    elif name in QUANTITIES:
        assert 0 <= amount(value) <= MAXIMUM[QUANTITIES[name]]
    elif name == "KERNEL_WORKSPACE_ACCESS_MODE":
        assert value in ("ReadWriteOnce", "ReadWriteMany")
    elif name == "KERNEL_WORKING_DIR":
        assert value == WORKSPACE_DIR or value.startswith(WORKSPACE_DIR + "/")
        assert value.isprintable()
    elif name == "KERNEL_USERNAME":
        assert value.isprintable() or all(c >= " " and c != "\x7f" for c in value)
    elif name == "KERNEL_LANGUAGE":
        assert value == "python"
    elif name == "KERNEL_GATEWAY":
        assert value == "1"
    else:
        assert name in CLUSTER_ACCESS, name


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(ALLOWED)), HOSTILE_VALUES, max_size=4))
def test_every_value_that_reaches_the_launcher_was_checked(extra):
    env = gateway_env(KERNEL_WORKSPACE_CLAIM="alice-workspace", KERNEL_LAUNCH_TIMEOUT="60")
    env.update(extra)
    try:
        checked = guard.checked_env(env, policy())
    except guard.Refused:
        event("refused")
        return
    event("launched")
    assert set(checked) <= ALLOWED | CLUSTER_ACCESS
    for name, value in checked.items():
        assert_checked(name, value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(NAMES, VALUES, max_size=3), st.dictionaries(st.sampled_from(sorted(ALLOWED)), HOSTILE_VALUES,
                                                                    max_size=3))  # fmt: skip
@example({"KERNEL_NAMESPACe": "kube-system", "KERNEL_GPUs": "8"}, {})
def test_the_real_launcher_renders_a_refused_start_never_and_an_accepted_one_as_checked(names, values):
    env = gateway_env(KERNEL_WORKSPACE_CLAIM="alice-workspace")
    env.update(values)
    env.update({k: v for k, v in names.items() if k not in ALLOWED | SET_BY_GATEWAY | CLUSTER_ACCESS})
    pod = pod_through_guard(env)
    event("refused" if pod is None else "rendered")
    if pod is None:
        return
    checked = guard.checked_env(env, policy())
    spec = pod["spec"]
    container = spec["containers"][0]
    assert pod["metadata"]["namespace"] == checked["KERNEL_NAMESPACE"] in ("gateways", "team-a")
    assert pod["metadata"]["labels"]["kernel_id"] == KERNEL_ID
    for part, values in container.get("resources", {}).items():
        for resource, value in values.items():
            assert amount(value) <= MAXIMUM[resource], (part, resource, value)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])]
    assert claims == ([checked["KERNEL_WORKSPACE_CLAIM"]] if "KERNEL_WORKSPACE_CLAIM" in checked else [])
    env_names = {e["name"] for e in container["env"]}
    assert env_names - set(checked) <= {"PORT_RANGE", "PUBLIC_KEY", "RESPONSE_ADDRESS", "KERNEL_NAME",
                                        "KERNEL_SPARK_CONTEXT_INIT_MODE"}  # fmt: skip
    assert violations(spec) == []
    kubernetes_validate.validate(pod, "1.36.0", strict=True)
