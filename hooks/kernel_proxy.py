"""The process proxy of our kernelspecs: Enterprise Gateway 3.3's KubernetesProcessProxy,
failing a kernel start at once with its reason in the user's words.

Stock, a kernel pod that cannot be scheduled, whose image cannot be pulled or that ended
early makes the user wait ``kernelLaunchTimeout`` for "Waited too long ... to get connection
file", and a launcher that exits early (the guard's refusal, a ResourceQuota's 403) gives
"Error occurred during launch ... Check Enterprise Gateway log". Here:

- the launcher's stderr goes through a pipe: each line is still written to the gateway's log,
  and the last ones say why it failed (kernel_reasons.launcher_failure);
- each poll while the kernel starts reads the kernel pod (the same list call the stock proxy
  makes, as JSON) and asks kernel_reasons.pod_start_failure; a pod that will not run is
  deleted and the start fails.

The failure is a tornado HTTPError whose log_message is the user's message: Enterprise
Gateway answers it as the JSON ``message``, Jupyter Server's gateway client quotes it in its
own error ("Error from Gateway: [<message>] ..."), JupyterLab shows that in its dialog.

Rights: list and delete on pods, as the stock proxy, and list on events (why a pod that
vanished ended: the scheduler's "Preempted"); without it such a pod ends as "deleted".
Shipped by the gateway hook in the kernelspec ConfigMap with kernel_reasons.py, on the
gateway's PYTHONPATH; kernel.json names ``kernel_proxy.ReasonedKubernetesProcessProxy``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import threading
import time

import kernel_metrics as metrics
import kernel_reasons as reasons
from enterprise_gateway.services.processproxies.k8s import KubernetesProcessProxy
from enterprise_gateway.services.processproxies.processproxy import RemoteProcessProxy, poll_interval
from kubernetes import client
from tornado import web

HTTP_REASON = "Kernel start failed"
STDERR_LINES = 60  # the launcher's last lines kept to explain its failure
LAUNCHER_GRACE = 5.0  # seconds the launcher may still take to say why, once the stock wait is over


class ReasonedKubernetesProcessProxy(KubernetesProcessProxy):
    def __init__(self, kernel_manager, proxy_config: dict):
        super().__init__(kernel_manager, proxy_config)
        self._stderr: collections.deque = collections.deque(maxlen=STDERR_LINES)
        self._relay: threading.Thread | None = None
        self._pod: dict | None = None  # the kernel pod as last read (None: not found)
        self._seen: dict | None = None  # the kernel pod as last found
        self._terminating = False  # EG deletes the pod (shutdown, culling, restart)
        self.end_reason: reasons.Reason | None = None  # why the pod ended, when not by EG

    async def launch_process(self, kernel_cmd, **kwargs):
        self._terminating, self.end_reason, self._pod, self._seen = False, None, None, None  # no state kept
        return await super().launch_process(kernel_cmd, **kwargs)

    # ------------------------------------------------------------------ the launcher
    def launch_kernel(self, cmd, **kwargs):
        kwargs["stderr"] = subprocess.PIPE
        proc = super().launch_kernel(cmd, **kwargs)
        self._relay = threading.Thread(target=self._relay_stderr, args=(proc.stderr,), daemon=True)
        self._relay.start()
        return proc

    def _relay_stderr(self, stream) -> None:
        """Copy the launcher's stderr to the gateway's (its log, as before) and keep its tail."""
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                self._stderr.append(line)
                sys.stderr.write(line)
                sys.stderr.flush()

    def detect_launch_failure(self) -> None:
        proc = self.local_proc
        if proc is not None and (proc.poll() or 0) > 0:
            proc.wait()
            if self._relay is not None:
                self._relay.join(timeout=5)
            self.local_proc = None
            self._fail(reasons.launcher_failure("".join(self._stderr)))

    async def handle_timeout(self):
        """EG's wait, except that once the launch timeout is over, a launcher that failed says why
        and a kernel pod the launcher made is deleted.

        EG reads the client's KERNEL_LAUNCH_TIMEOUT before the guard runs: with -1 (which the
        guard refuses) the stock wait ended on its first check, before the guard's exit was seen,
        and the user got "Waited too long (-1.0s) to get connection file" instead of the reason.
        And a short timeout (0.001, which the guard allows) ended the wait before any pod was
        read, so the stock kill() had no pod name and the launcher's pod kept running."""
        await asyncio.sleep(poll_interval)
        elapsed = RemoteProcessProxy.get_time_diff(self.start_time, RemoteProcessProxy.get_current_time())
        if elapsed > self.kernel_launch_timeout:
            await self._launcher_done(LAUNCHER_GRACE)
            self.detect_launch_failure()  # the guard's refusal, the API server's, ...
            if self.local_proc is not None and self.local_proc.poll() is None:
                self.local_proc.kill()  # it must not create a pod once EG has given up
                await self._launcher_done(1.0)  # poll() reaps it: no zombie
            self.container_name = self.container_name or self.kernel_pod_name  # so that kill() deletes it
            await super().handle_timeout()  # EG's own timeout: kill(), then "Waited too long"

    async def _launcher_done(self, seconds: float) -> None:
        """Until the launcher has exited and its stderr is read, at most ``seconds``, without
        holding a thread or EG's event loop."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._launcher_busy():
            await asyncio.sleep(0.05)

    def _launcher_busy(self) -> bool:
        proc, relay = self.local_proc, self._relay
        return (proc is not None and proc.poll() is None) or (relay is not None and relay.is_alive())

    # ------------------------------------------------------------------ the pod
    def get_container_status(self, iteration: int | None) -> str:
        """The stock method's answer, from one list of the kernel's pod as JSON; while the
        kernel starts (``iteration`` set), a pod that will not run fails the start."""
        try:
            pod = self._pod = self._kernel_pod()
        except client.rest.ApiException as exc:
            if not iteration:
                raise
            # Stock, any error here answered "Unknown server error". While the launcher runs (the
            # guard refusing a client's KERNEL_NAMESPACE, say) or the error may pass, keep waiting:
            # confirm_remote_startup asks detect_launch_failure next, the launch timeout still holds.
            if exc.status != 403 or self._launcher_busy():
                return ""
            self.detect_launch_failure()
            # The launcher made the pod, but the gateway may not read it: delete it by its name.
            self.container_name = self.container_name or self.kernel_pod_name
            self.kill()
            self._fail(reasons.pod_unreadable(self.kernel_namespace, exc.status, exc.reason))
        phase = ""
        if pod is not None:
            self._seen = pod
            self.container_name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            phase = (status.get("phase") or "").lower()
            if phase == "running" and not self.assigned_host:
                self.assigned_ip = status.get("podIP")
                self.assigned_host = self.container_name
                self.assigned_node_ip = status.get("hostIP")
            if iteration:
                failure = reasons.pod_start_failure(pod)
                if failure is not None:
                    self.kill()  # delete the pod: it would hold its quota and wait forever
                    self._fail(failure)
        if iteration:
            self.log.debug(
                f"{iteration}: Waiting to connect to k8s pod in namespace '{self.kernel_namespace}'. "
                f"Name: '{self.container_name}', Status: '{phase}', Pod IP: '{self.assigned_ip}', "
                f"KernelID: '{self.kernel_id}'"
            )
        return phase

    def poll(self):
        """The stock answer (None while the pod runs). A pod that ends while EG did not ask for it
        (OOMKilled, preempted, evicted, exited, deleted by someone else) is logged and counted
        once, with its reason, read from the pod as last seen."""
        alive = super().poll()
        if self._terminating or self.end_reason is not None or self._seen is None:
            return alive
        if self._pod is not None:
            ended = reasons.pod_end(self._pod)
        else:
            ended = reasons.pod_gone(self._seen, self._events(self._seen))
        # Not running, or being deleted (not by EG), with no reason in its status.
        if ended is None and (alive is not None or self._pod["metadata"].get("deletionTimestamp")):
            ended = reasons.pod_gone(self._pod, self._events(self._pod))
        if ended is not None:
            self.end_reason = ended
            metrics.record_end(self.kernel_manager, ended)
            self.log.warning(f"KernelID: '{self.kernel_id}' ended: {ended.message} [{ended.code}]")
        return alive

    def terminate_container_resources(self):
        self._terminating = True
        return super().terminate_container_resources()

    def _events(self, pod: dict) -> list:
        """The events about a pod (list on events in its namespace); none without that right."""
        try:
            response = client.CoreV1Api().list_namespaced_event(
                namespace=pod["metadata"]["namespace"],
                field_selector=f"involvedObject.uid={pod['metadata']['uid']}",
                _preload_content=False,
            )
        except client.rest.ApiException as exc:
            self.log.warning(f"KernelID: '{self.kernel_id}' cannot read its pod's events: {exc.status} {exc.reason}")
            return []
        return json.loads(response.data).get("items") or []

    def _kernel_pod(self) -> dict | None:
        response = client.CoreV1Api().list_namespaced_pod(
            namespace=self.kernel_namespace,
            label_selector=f"kernel_id={self.kernel_id},component=kernel",
            _preload_content=False,
        )
        items = json.loads(response.data).get("items") or []
        return items[0] if items else None

    # ------------------------------------------------------------------ failing
    def _fail(self, reason: reasons.Reason) -> None:
        # The reason alone: Jupyter Server puts 54 characters before it, JupyterLab's dialog (titled
        # "Error Starting Kernel") shows one line, and the HTTP reason says "Kernel start failed".
        self.log.error(f"KernelID: '{self.kernel_id}' {HTTP_REASON}: {reason.message} [{reason.code}]")
        self._close_response_socket()
        error = web.HTTPError(reason.status, reason.message, reason=HTTP_REASON)
        error.kernel_reason = reason.code  # kernel_metrics counts the failure by it
        raise error
