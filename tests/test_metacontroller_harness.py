"""Metacontroller comes from outside the repository: the install references upstream by URL,
make up / the scenarios use the shipped flags, and a run without a binary says what it left out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "manifests" / "metacontroller-install"
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from controlplane import shipped_metacontroller_flags  # noqa: E402

UPSTREAM = "https://github.com/metacontroller/metacontroller/manifests/production?ref=v4.17.2"
TUNED = ("--client-go-qps", "--client-go-burst", "--workers", "--discovery-interval")


def test_the_install_takes_upstream_by_url_and_patches_only_the_flags_and_the_rights():
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [UPSTREAM, "kernel-roles.yaml"]
    assert kustomization["patches"] == [{"path": "flags.yaml"}, {"path": "rbac.yaml"}]
    assert sorted(p.name for p in INSTALL.iterdir()) == [
        "flags.yaml",
        "kernel-roles.yaml",
        "kustomization.yaml",
        "rbac.yaml",
    ], "no upstream copies"
    patch = yaml.safe_load((INSTALL / "flags.yaml").read_text())
    assert (patch["kind"], patch["metadata"]) == (
        "StatefulSet",
        {"name": "metacontroller", "namespace": "metacontroller"},
    )
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "metacontroller"


def test_make_up_and_the_scenarios_run_the_shipped_flags():
    flags = shipped_metacontroller_flags()
    names = [f.split("=")[0] for f in flags]
    assert all(names.count(name) == 1 for name in TUNED), flags
    assert len(names) == len(set(names))
    assert "cp.start_metacontroller(flags)" in (ROOT / "tests/e2e/localcluster.py").read_text()
    assert (
        "start_metacontroller(shipped_metacontroller_flags())"
        in (ROOT / "tests/e2e/test_metacontroller_e2e.py").read_text()
    )


def test_nothing_in_the_repository_builds_metacontroller():
    for path in ROOT.rglob("go.mod"):
        if ".cache" in path.parts or ".venv" in path.parts:
            continue
        assert "metacontroller" not in path.read_text(), path
    code = [
        line
        for line in (ROOT / "tests" / "e2e" / "build.sh").read_text().splitlines()
        if not line.strip().startswith("#")
    ]
    assert not [line for line in code if "metacontroller" in line.lower()]


def test_without_a_binary_the_scenarios_are_left_out_and_counted():
    env = {k: v for k, v in os.environ.items() if k not in ("METACONTROLLER_BIN", "METACONTROLLER_CRDS")}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/e2e/test_metacontroller_e2e.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode in (0, 5), res.stdout + res.stderr  # 5: nothing selected
    assert "Metacontroller scenarios left out" in res.stdout, res.stdout
    assert "METACONTROLLER_BIN=" in res.stdout and "ghcr.io/metacontroller/metacontroller:v4.17.2" in res.stdout
    count = int(res.stdout.split(" Metacontroller scenarios left out")[0].rsplit("=", 1)[-1].strip().split()[-1])
    assert count >= 12


def test_the_harness_hands_the_hook_server_its_token_the_way_the_app_reads_it():
    from hookserver import AUTH_SECRET, TOKEN_FILE_ENV

    from hooks.app import TOKEN_FILE_ENV as APP_TOKEN_FILE_ENV

    assert TOKEN_FILE_ENV == APP_TOKEN_FILE_ENV
    controllers = [
        yaml.safe_load((ROOT / "metacontroller" / f).read_text())
        for f in ("jupytergateway.yaml", "jupyternotebook.yaml")
    ]
    refs = {
        h["webhook"]["authorization"]["secretRef"]["name"] for c in controllers for h in c["spec"]["hooks"].values()
    }
    assert refs == {AUTH_SECRET}


def _rules(path: Path) -> list[dict]:
    return [r for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] == "ClusterRole" for r in doc["rules"]]


def _allowed(rules: list[dict], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and verb in r["verbs"]
        and (not r.get("resourceNames") or name in r["resourceNames"])
        for r in rules
    )


def test_metacontrollers_rights_are_its_controllers_types_and_no_wildcard():
    """Every parent, child and related type of metacontroller/*.yaml is covered with the verbs
    Metacontroller uses, nothing is a wildcard, and `bind` names exactly the shipped kernel role."""
    rules = _rules(INSTALL / "rbac.yaml")
    binds = _rules(INSTALL / "kernel-roles.yaml")
    assert not [r for r in rules + binds for field in ("apiGroups", "resources", "verbs") if "*" in r[field]]
    assert not [r for r in rules if {"bind", "escalate", "impersonate"} & set(r["verbs"])]
    assert binds == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["jupyter-gateway-kernels"],
        }
    ]
    kernel_role = yaml.safe_load((ROOT / "manifests" / "rbac" / "kernel-clusterrole.yaml").read_text())
    assert kernel_role["metadata"]["name"] in binds[0]["resourceNames"]
    assert not _allowed(rules, "", "pods", "create"), "it may not run pods (nor hold the kernel role's rights)"
    controllers = [
        yaml.safe_load((ROOT / "metacontroller" / f).read_text())
        for f in ("jupytergateway.yaml", "jupyternotebook.yaml")
    ]
    for controller in controllers:
        spec = controller["spec"]
        group = spec["parentResource"]["apiVersion"].rpartition("/")[0]
        parent = spec["parentResource"]["resource"]
        for verb in ("get", "list", "watch", "update"):
            assert _allowed(rules, group, parent, verb), (parent, verb)
        assert _allowed(rules, group, f"{parent}/status", "update")
        assert _allowed(rules, group, f"{parent}/finalizers", "update")
        for child in spec["childResources"]:
            child_group = child["apiVersion"].rpartition("/")[0]
            for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
                assert _allowed(rules, child_group, child["resource"], verb), (child["resource"], verb)
    # Related objects the customize hooks ask for (hooks/gateway.py, hooks/notebook.py).
    for group, resource in (
        ("kubeflow.tkestack.io", "jupytergateways"),
        ("", "secrets"),
        ("rbac.authorization.k8s.io", "clusterroles"),
    ):
        for verb in ("get", "list", "watch"):
            assert _allowed(rules, group, resource, verb), (resource, verb)
    assert _allowed(rules, "", "events", "create") and _allowed(rules, "", "events", "patch")
    assert _allowed(rules, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert _allowed(rules, "", "namespaces", "watch") and not _allowed(rules, "", "namespaces", "delete")
    for resource in ("compositecontrollers", "decoratorcontrollers", "controllerrevisions"):
        assert _allowed(rules, "metacontroller.k8s.io", resource, "watch"), resource
