"""Stopping a node leaves nothing: no process it started (nor the shims and containers those
started), no bridge, no KUBE-*/CNI-* chains, no mounts, no kubepods cgroups, sysctls as before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from node import BRIDGE, SYSCTLS, NodeCluster, leftovers, mounts_under
from testimage import TEST_IMAGE

pytestmark = [pytest.mark.node]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_stop_undoes_every_host_change(workdir: Path, test_image: Path) -> None:
    sysctls = {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS}
    nc = NodeCluster(workdir / "teardown", images=[test_image], cached=["pause"])
    with nc:
        nc.create_namespace("t")
        nc.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "sleeper", "namespace": "t"},
                "spec": {
                    "containers": [{"name": "c", "image": TEST_IMAGE, "command": ["/bin/busybox", "sleep", "3600"]}],
                    "terminationGracePeriodSeconds": 30,  # stop() must not wait on it
                },
            }
        )
        nc.wait_pod_phase("t", "sleeper", "Running")
        pids = [p.pid for p in nc.processes] + nc._shim_pids()
        assert len(pids) > len(nc.processes), "the running pod has a containerd shim"
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
    assert [pid for pid in pids if alive(pid)] == []
    assert leftovers() == []
    assert mounts_under(nc.node_dir) == []
    assert {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS} == sysctls
