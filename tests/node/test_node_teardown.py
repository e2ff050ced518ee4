"""Stopping a node leaves nothing: no process it started (nor the shims and containers those
started), no bridge, no KUBE-*/CNI-* chains, no mounts, no kubepods cgroups, sysctls as before.
And a node killed without any teardown is swept by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from controlplane import wait_for
from node import (
    BRIDGE,
    OWNER_FILE,
    SHORT_DIR,
    SYSCTLS,
    NodeCluster,
    _kubepods_cgroups,
    bridge_exists,
    leftovers,
    mounts_under,
    processes_of,
)
from testimage import TEST_IMAGE

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.node]


SLEEPER = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sleeper", "namespace": "t"},
    "spec": {
        "containers": [{"name": "c", "image": TEST_IMAGE, "command": ["/bin/busybox", "sleep", "3600"]}],
        "terminationGracePeriodSeconds": 30,  # stop() must not wait on it
    },
}

# A run that starts a node with a running pod, says so, and waits to be killed.
KILLED_RUN = """
import json, sys, time
from pathlib import Path
sys.path[:0] = [{e2e!r}, {here!r}]
from node import NodeCluster
nc = NodeCluster(Path({workdir!r}), images=[Path({image!r})], cached=["pause"])
nc.start()
nc.create_namespace("t")
nc.apply(json.loads({pod!r}))
nc.wait_pod_phase("t", "sleeper", "Running")
Path({ready!r}).write_text("ready")
time.sleep(3600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def deep(workdir: Path, name: str, length: int = 160) -> Path:
    """workdir/<padding>/name, at least ``length`` bytes: CI's checkout (/check/work/main/...) once put
    containerd's and kubelet's sockets past the unix socket limit, and every node test failed there."""
    return workdir / ("deep-" + "d" * max(0, length - len(str(workdir / name)) - 6)) / name


def test_stop_undoes_every_host_change(workdir: Path, test_image: Path) -> None:
    """From a workdir deeper than any socket may be: a pod runs, and stopping leaves nothing."""
    sysctls = {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS}
    nc = NodeCluster(deep(workdir, "teardown"), images=[test_image], cached=["pause"])
    assert len(str(nc.workdir)) >= 160
    with nc:
        nc.create_namespace("t")
        nc.apply(SLEEPER)
        nc.wait_pod_phase("t", "sleeper", "Running")
        pids = [p.pid for p in nc.processes] + nc._shim_pids()
        assert len(pids) > len(nc.processes), "the running pod has a containerd shim"
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
    assert [pid for pid in pids if alive(pid)] == []
    assert leftovers() == []
    assert mounts_under(nc.node_dir) == [] and mounts_under(SHORT_DIR) == [] and not SHORT_DIR.exists()
    assert {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS} == sysctls


def test_a_node_killed_without_teardown_is_swept_by_the_next(
    workdir: Path, test_image: Path, capsys: pytest.CaptureFixture
) -> None:
    """A lost session or a CI timeout SIGKILLs the run and every node process: no teardown runs, and
    the bridge, chains, mounts and netns stay. The next node sees none of the killed one's processes
    alive, undoes its changes from OWNER_FILE, and starts; stopping it then leaves nothing."""
    sysctls = {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS}
    killed = workdir / "killed"
    ready = workdir / "killed.ready"
    script = KILLED_RUN.format(
        e2e=str(HERE.parent / "e2e"),
        here=str(HERE),
        workdir=str(killed),
        image=str(test_image),
        pod=json.dumps(SLEEPER),
        ready=str(ready),
    )
    log = (workdir / "killed-run.log").open("w")
    run = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: ready.exists() or run.poll() is not None, timeout=300, what="the node of the run to be killed")
        assert ready.exists(), f"the run to be killed failed: see {log.name}"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()

        def killed_all() -> bool:
            for pid in processes_of(killed):
                os.kill(pid, signal.SIGKILL)
            return not processes_of(killed)

        wait_for(killed_all, timeout=30, what="every process of the killed node gone")
    containers = {int(p) for g in _kubepods_cgroups() for p in (g / "cgroup.procs").read_text().split()}
    assert bridge_exists() and OWNER_FILE.exists() and mounts_under(killed / "node")
    pod_mounts = [p for p in mounts_under(SHORT_DIR) if "pods" in p.parts]  # the sleeper's token, by kubelet
    assert pod_mounts

    with NodeCluster(workdir / "after-kill", cached=["pause"]) as nc:
        assert nc.node()["metadata"]["name"] == nc.node_name
        assert mounts_under(killed / "node") == []
        assert set(pod_mounts) & set(mounts_under(SHORT_DIR)) == set()
        assert json.loads(OWNER_FILE.read_text())["workdir"] == str(nc.workdir)
    assert "was killed without teardown; undoing its host changes" in capsys.readouterr().err
    assert [pid for pid in containers if alive(pid)] == []
    assert leftovers() == []
    assert {s: Path(f"/proc/sys/{s}").read_text() for s in SYSCTLS} == sysctls
