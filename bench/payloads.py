"""Realistic Metacontroller v2 sync requests, at steady state.

Each request is what Metacontroller sends on a resync once the children exist: the
parent with the status the hook returned last time, every observed child as the API
server returns it (last-applied annotation, managedFields, server defaults, status),
and the related objects. Sizes: small (defaults), typical (a real user's template),
large (many containers, variables and volumes).
"""

from __future__ import annotations

import copy
import json

from hooks.children import LAST_APPLIED
from hooks.gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, sync_gateway
from hooks.models import API_VERSION
from hooks.notebook import GATEWAYS, sync_notebook

NOW = "2026-11-26T10:00:00Z"
TOKEN = "3f" * 24
GATEWAY_TYPES = [
    "ServiceAccount.v1",
    "RoleBinding.rbac.authorization.k8s.io/v1",
    "ConfigMap.v1",
    "Deployment.apps/v1",
    "Service.v1",
    "Secret.v1",
    "NetworkPolicy.networking.k8s.io/v1",
]
NOTEBOOK_TYPES = [
    "Deployment.apps/v1",
    "Service.v1",
    "Secret.v1",
    "ConfigMap.v1",
    "PersistentVolumeClaim.v1",
    "RoleBinding.rbac.authorization.k8s.io/v1",
    "ServiceAccount.v1",
]


def template(containers: int, env: int, volumes: int) -> dict:
    """A user's pod template: a notebook container plus sidecars, with env vars and volumes."""
    mounts = [{"name": f"data-{v}", "mountPath": f"/data/{v}"} for v in range(volumes)]
    main = {
        "name": "notebook",
        "image": "quay.io/jupyter/scipy-notebook:2025-03-14",
        "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(env)],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}, *mounts],
    }
    sidecars = [
        {
            "name": f"sidecar-{i}",
            "image": "busybox:1.36",
            "command": ["sh", "-c", "sleep infinity"],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
        for i in range(containers - 1)
    ]
    claims = [{"name": f"data-{v}", "persistentVolumeClaim": {"claimName": f"dataset-{v}"}} for v in range(volumes)]
    return {
        "metadata": {"labels": {"team": "ml-research", "cost-center": "42"}, "annotations": {"owner": "alice"}},
        "spec": {
            "containers": [main, *sidecars],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}}, *claims],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "notebooks", "effect": "NoSchedule"}],
        },
    }


NOTEBOOK_SIZES = {
    "small": {},
    "typical": {"template": template(containers=1, env=8, volumes=2), "workspace": {"size": "10Gi"}},
    "large": {"template": template(containers=6, env=60, volumes=20)},
}


def _meta(name: str, namespace: str, uid: str, generation: int = 1) -> dict:
    return {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": generation,
        "resourceVersion": "123456",
        "creationTimestamp": "2026-11-20T08:00:00Z",
    }


def _as_observed(child: dict, parent: dict) -> dict:
    """A child as the API server returns it: annotation, owner, managedFields, defaults, status."""
    obj = copy.deepcopy(child)
    meta = obj["metadata"]
    meta.update(_meta(meta["name"], meta["namespace"], f"uid-{meta['name']}"))
    meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: json.dumps(child)}
    meta["labels"] = {**meta.get("labels", {}), "controller-uid": parent["metadata"]["uid"]}
    meta["ownerReferences"] = [
        {
            "apiVersion": API_VERSION,
            "kind": parent["kind"],
            "name": parent["metadata"]["name"],
            "uid": parent["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    meta["managedFields"] = [
        {
            "manager": "metacontroller",
            "operation": "Update",
            "apiVersion": child["apiVersion"],
            "time": "2026-11-20T08:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {k: {} for k in meta["labels"]}}},
        }
    ]
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        pod.update(
            restartPolicy="Always",
            terminationGracePeriodSeconds=30,
            dnsPolicy="ClusterFirst",
            schedulerName="default-scheduler",
        )
        for container in pod["containers"]:
            container.update(
                terminationMessagePath="/dev/termination-log",
                terminationMessagePolicy="File",
                imagePullPolicy="IfNotPresent",
            )
        obj["spec"].update(revisionHistoryLimit=10, progressDeadlineSeconds=600)
        obj["status"] = {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": NOW,
                    "lastTransitionTime": NOW,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": "ReplicaSet has successfully progressed.",
                    "lastUpdateTime": NOW,
                    "lastTransitionTime": NOW,
                },
            ],
        }
    if obj["kind"] == "Service":
        obj["spec"].update(
            clusterIP="10.96.12.34",
            clusterIPs=["10.96.12.34"],
            type="ClusterIP",
            sessionAffinity="None",
            ipFamilies=["IPv4"],
            ipFamilyPolicy="SingleStack",
            internalTrafficPolicy="Cluster",
        )
        obj["status"] = {"loadBalancer": {}}
    return obj


def _steady(parent: dict, types: list[str], first: dict) -> dict:
    children = {key: {} for key in types}
    for child in first["children"]:
        obj = _as_observed(child, parent)
        children[f"{obj['kind']}.{obj['apiVersion']}"][f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"] = (
            obj
        )
    return children


def gateway_parent() -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "JupyterGateway",
        "metadata": _meta("shared-gateway", "ml-platform", "uid-gw", generation=3),
        "spec": {
            "cullIdleTimeout": 1800,
            "cullInterval": 60,
            "cullConnected": True,
            "cullBusy": False,
            "kernels": ["python_kubernetes", "python_tf_gpu_kubernetes", "r_kubernetes"],
            "kernelProfiles": [
                {"name": "python_kubernetes", "displayName": "Python 3", "image": "elyra/kernel-py:3.3.0"},
                {
                    "name": "python_tf_gpu_kubernetes",
                    "image": "elyra/kernel-tf-gpu-py:3.3.0",
                    "resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}},
                    "maxResources": {"nvidia.com/gpu": 2, "cpu": 8, "memory": "32Gi"},
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "priorityClassName": "preemptible-kernels",
                },
                {"name": "r_kubernetes", "image": "elyra/kernel-r:3.3.0"},
            ],
            "defaultKernel": "python_kubernetes",
            "logLevel": "INFO",
            "kernelLaunchTimeout": 300,
            "image": "elyra/enterprise-gateway:3.3.0",
            "clusterRole": "jupyter-gateway-kernels",
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            "allowedNamespaces": ["team-a", "team-b"],
        },
    }


ROLE = {
    CLUSTER_ROLES: {
        "jupyter-gateway-kernels": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "jupyter-gateway-kernels", "labels": {KERNEL_ROLE_LABEL: "true"}},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]}
            ],
        }
    }
}


def gateway_request() -> dict:
    parent = gateway_parent()
    first = sync_gateway(parent, {}, ROLE, NOW, TOKEN)
    assert first["children"], first["status"]
    children = _steady(parent, GATEWAY_TYPES, first)
    parent["status"] = sync_gateway(parent, children, ROLE, NOW, TOKEN)["status"]
    return {"controller": {}, "parent": parent, "children": children, "related": ROLE, "finalizing": False}


def notebook_request(size: str) -> dict:
    parent = {
        "apiVersion": API_VERSION,
        "kind": "JupyterNotebook",
        "metadata": _meta("alice", "team-a", "uid-nb-alice", generation=2),
        "spec": {"gateway": {"name": "shared-gateway", "namespace": "ml-platform"}, **NOTEBOOK_SIZES[size]},
    }
    gateway = gateway_request()
    token = gateway["children"]["Secret.v1"]["ml-platform/shared-gateway-gateway-auth"]
    related = {
        GATEWAYS: {"ml-platform/shared-gateway": gateway["parent"]},
        "Secret.v1": {"ml-platform/shared-gateway-gateway-auth": token},
        **ROLE,
    }
    first = sync_notebook(parent, {}, related, NOW, TOKEN)
    assert first["children"], first["status"]  # a notebook that really renders, not one kept as it was
    children = _steady(parent, NOTEBOOK_TYPES, first)
    parent["status"] = sync_notebook(parent, children, related, NOW, TOKEN)["status"]
    return {"controller": {}, "parent": parent, "children": children, "related": related, "finalizing": False}


def growth_request(containers: int, env: int, volumes: int) -> dict:
    NOTEBOOK_SIZES["_growth"] = {"template": template(containers, env, volumes)}
    try:
        return notebook_request("_growth")
    finally:
        del NOTEBOOK_SIZES["_growth"]


def many_children_request(children: int, size: str = "large") -> dict:
    """A notebook request observing ``children`` children: its own three, then copies of them.

    Metacontroller sends only the children a parent owns (3 for a notebook, 7 for a gateway),
    so this is far beyond a real request: it sizes the hook server's body limit.
    """
    request = notebook_request(size)
    own = [(key, obj) for key, group in request["children"].items() for obj in group.values()]
    for i in range(children - len(own)):
        key, obj = own[i % len(own)]
        name = f"{obj['metadata']['name']}-copy-{i}"
        copy_ = {**obj, "metadata": {**obj["metadata"], "name": name}}
        request["children"][key][f"{obj['metadata']['namespace']}/{name}"] = copy_
    return request
