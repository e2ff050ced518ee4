"""Test-only: what a pod gives Enterprise Gateway, for a process that runs outside a pod.

1. In-cluster configuration (LOCALRUN_INCLUSTER_DIR). EG's KubernetesProcessProxy calls
   kubernetes.config.load_incluster_config() at import. In a pod the kubelet mounts the
   ServiceAccount token and the cluster CA at /var/run/secrets/kubernetes.io/serviceaccount/
   and sets KUBERNETES_SERVICE_HOST/PORT. Here the test writes a real token of the gateway's
   ServiceAccount (TokenRequest API) and the local API server's CA to that directory, and this
   file points the client's two file names there and reads the API server's address from
   LOCALRUN_KUBERNETES_SERVICE_HOST/PORT. Not from KUBERNETES_SERVICE_*: EG copies those into
   the environment of launch_kubernetes.py, which would then load the in-cluster configuration
   too, and the kernel guard gives the launcher no PYTHONPATH to find this file. Outside the
   cluster EG copies KUBECONFIG instead, which the test points at the same token and CA.
2. Mounts over the image's Python prefix (LOCALRUN_HIDDEN_JUPYTER_PATH, os.pathsep-separated).
   The gateway pod mounts an empty directory over /opt/conda/share/jupyter/kernels, the image
   interpreter's kernelspecs; locally that interpreter is the shared EG venv, which cannot be
   mounted over, so its share/jupyter is dropped from jupyter_core's search path instead.

Active only when those variables are set; listed in tests/integration/localrun.py
SUBSTITUTIONS (rows in-cluster-config and kernelspec-mask).
"""

import os

_dir = os.environ.get("LOCALRUN_INCLUSTER_DIR")
if _dir:
    from kubernetes.config import incluster_config

    incluster_config.SERVICE_TOKEN_FILENAME = os.path.join(_dir, "token")
    incluster_config.SERVICE_CERT_FILENAME = os.path.join(_dir, "ca.crt")
    incluster_config.SERVICE_HOST_ENV_NAME = "LOCALRUN_KUBERNETES_SERVICE_HOST"
    incluster_config.SERVICE_PORT_ENV_NAME = "LOCALRUN_KUBERNETES_SERVICE_PORT"

_hidden = [p for p in os.environ.get("LOCALRUN_HIDDEN_JUPYTER_PATH", "").split(os.pathsep) if p]
if _hidden:
    from jupyter_core import paths

    for _search in (paths.ENV_JUPYTER_PATH, paths.SYSTEM_JUPYTER_PATH):
        _search[:] = [p for p in _search if os.path.realpath(p) not in map(os.path.realpath, _hidden)]
