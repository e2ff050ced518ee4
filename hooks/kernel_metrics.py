"""Kernel starts, refusals and ends by reason, as Prometheus metrics of the gateway.

Enterprise Gateway 3.3 serves no /metrics. Its configuration names this module's kernel
manager (``EnterpriseGatewayApp.kernel_manager_class``), so it is imported when EG starts:
it serves the counters below on ``EG_METRICS_PORT`` (prometheus_client's own HTTP server,
a thread), counts each start and each failed start by the reason kernel_proxy.py gave, and
each kernel EG culls (journaled for the front door too: kernel_ends.py). kernel_proxy.py
counts the ends it sees on a kernel pod (OOMKilled, preempted, evicted, exited) with
record_end, which the kernel's model then shows. Labels
are the profile (a kernelspec of this gateway: a small set) and a reason code of
kernel_reasons.py (a fixed set), so series stay bounded.

Shipped by the gateway hook in the kernelspec ConfigMap, on the gateway's PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

import kernel_ends
from enterprise_gateway.services.kernels.remotemanager import RemoteMappingKernelManager
from prometheus_client import REGISTRY, Counter, start_http_server

PREFIX = "elastic_jupyter_kernel"
ENDS_FILE_ENV = "EG_KERNEL_ENDS_FILE"  # kernel_ends' journal, in an emptyDir the front door reads
OTHER = "other"  # a failed start no reason of kernel_reasons explains (e.g. an unknown kernelspec)

STARTS = Counter(f"{PREFIX}_starts", "Kernels started (connected), by profile", ["profile"])
START_FAILURES = Counter(
    f"{PREFIX}_start_failures", "Kernel starts that failed, by profile and reason", ["profile", "reason"]
)
ENDS = Counter(f"{PREFIX}_ends", "Kernels that ended, by profile and reason", ["profile", "reason"])
_serving: list[int] = []


def serve(port: int) -> None:
    """Serve the default registry on ``port`` (once per process)."""
    if not _serving:
        start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
        _serving.append(port)


def failure_reason(exc: BaseException) -> str:
    """The reason code kernel_proxy.py attached to a failed start, else OTHER."""
    return getattr(exc, "kernel_reason", None) or OTHER


def record_end(kernel, reason) -> None:
    """Count a kernel's end and keep it on its manager (EG's RemoteKernelManager, one per kernel
    id, kept across restarts): the kernel's model shows it as ``last_end``."""
    ENDS.labels(kernel.kernel_name, reason.code).inc()
    kernel.last_end = {"reason": reason.code, "message": reason.message, "at": time.time()}


class MeteredKernelManager(RemoteMappingKernelManager):
    """EG's kernel manager, counting starts, failed starts and culled kernels."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        port = os.environ.get("EG_METRICS_PORT")
        if port:
            serve(int(port))

    async def start_kernel(self, *args, **kwargs) -> str:
        profile = kwargs.get("kernel_name") or self.default_kernel_name
        try:
            kernel_id = await super().start_kernel(*args, **kwargs)
        except BaseException as exc:
            START_FAILURES.labels(profile, failure_reason(exc)).inc()
            raise
        STARTS.labels(profile).inc()
        return kernel_id

    def kernel_model(self, kernel_id: str) -> dict:
        """EG's model of a kernel, with why its pod last ended on its own (``last_end``)."""
        model = super().kernel_model(kernel_id)
        last_end = getattr(self._kernels.get(kernel_id), "last_end", None)
        if last_end:
            model["last_end"] = dict(last_end)
        return model

    async def cull_kernel_if_idle(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        last_activity = getattr(kernel, "last_activity", None)
        # jupyter_server also culls a dead kernel (a failed restart), whatever its connections:
        # its end was counted and told when it died.
        dead = getattr(kernel, "execution_state", None) == "dead"
        now = time.time()  # the idle time EG judged, not counting the shutdown
        await super().cull_kernel_if_idle(kernel_id)
        if kernel is not None and kernel_id not in self._kernels and not dead:
            ENDS.labels(kernel.kernel_name, "culled").inc()
            journal_culled(kernel_id, kernel.kernel_name, last_activity, now, self.log)


def journal_culled(kernel_id: str, profile: str, last_activity, now: float, log) -> None:
    """Tell the front door (kernel_ends) that EG culled this kernel, and after how long idle."""
    path = os.environ.get(ENDS_FILE_ENV)
    if not path:
        return
    idle = now - last_activity.timestamp() if isinstance(last_activity, datetime) else 0.0
    try:
        kernel_ends.append(path, kernel_ends.culled_line(kernel_id, profile, max(idle, 0.0), now))
    except OSError as exc:  # the user is not told; the kernel is culled all the same
        log.error("kernel %s culled, but not journaled for its owner: %s", kernel_id, exc)
