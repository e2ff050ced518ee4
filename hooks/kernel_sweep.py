"""Delete the kernel pods a previous gateway left behind, before the gateway starts.

Enterprise Gateway keeps its kernels in memory. On SIGTERM it shuts every kernel down
(``EnterpriseGatewayApp.shutdown``), but a gateway that is killed (OOM, node loss, a grace
period too short for its kernels) leaves their pods running, and no gateway would ever cull
them. The gateway container runs this file as its postStart hook, at each of its starts (a
new pod after a Recreate rollout, when the old gateway is gone; the kubelet's restart of a
crashed one in the same pod), before its readiness checks and so before any client reaches
it, with the gateway's ServiceAccount:

    python kernel_sweep.py SWEEP.json

SWEEP.json (written by the gateway hook) names the label selector of this gateway's kernel
pods and the namespaces to look in: its own and those of spec.allowedNamespaces (``*``
cannot be listed with namespaced rights; see the README). A namespace it cannot sweep (no
rights there: no notebook yet; the API server unreachable) is reported and skipped: the
sweep never keeps the gateway from starting. Uses the kubernetes client of the gateway image.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list) -> int:
    # The gateway image's client, as its launch_kubernetes.py uses it; not a dependency of the hooks.
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    with open(argv[1], encoding="utf-8") as f:
        sweep = json.load(f)
    if os.getenv("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    api = client.CoreV1Api()
    deleted = 0
    for namespace in sweep["namespaces"]:
        # Never keep the gateway from starting: a namespace that fails is reported and skipped
        # (no rights there yet: 403), and its orphans wait for the next restart.
        try:
            for pod in api.list_namespaced_pod(namespace, label_selector=sweep["selector"]).items:
                try:
                    api.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
                    deleted += 1
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        except Exception as exc:
            print(f"kernel sweep: namespace {namespace} skipped: {exc}".splitlines()[0], file=sys.stderr)
    print(f"kernel sweep: deleted {deleted} kernel pods left by a previous gateway", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
