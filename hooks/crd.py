"""Generate the two CustomResourceDefinitions from the pydantic models.

pydantic writes JSON Schema; the API server wants a *structural* OpenAPI v3 schema:
no $ref, no null types, no anyOf for optional fields, x-kubernetes-* extensions for
int-or-string values and for objects that keep unknown fields. ``openapi()`` turns
one into the other; ``crds()`` adds names, printer columns and the status subresource.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .models import (
    GROUP,
    VERSION,
    JupyterGatewaySpec,
    JupyterGatewayStatus,
    JupyterNotebookSpec,
    JupyterNotebookStatus,
)

_DROP = {"title", "additionalProperties", "$defs"}
_READY = '.status.conditions[?(@.type=="Ready")].status'


def openapi(model: type[BaseModel]) -> dict:
    """The structural OpenAPI v3 schema of a pydantic model."""
    schema = model.model_json_schema(by_alias=True)
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict, defs: dict) -> dict:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        return _convert({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express {node} structurally")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        return _convert({**branches[0], **outer}, defs)

    out: dict[str, Any] = {}
    if node.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
        for branch in node.get("anyOf", []):  # the string branch's pattern and length
            out.update({k: branch[k] for k in ("pattern", "maxLength") if k in branch})
    for key, value in node.items():
        if key in _DROP or key in out or key == "anyOf":
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            value = {name: _convert(prop, defs) for name, prop in value.items()}
        elif key == "items":
            value = _convert(value, defs)
        out[key] = value
    extra = node.get("additionalProperties")
    if extra is True:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict):
        out["additionalProperties"] = _convert(extra, defs)
    return out


def _crd(kind: str, plural: str, short: list[str], spec: type, status: type, columns: list, name_rule: dict) -> dict:
    schema = {
        "type": "object",
        "required": ["spec"],
        "x-kubernetes-validations": [name_rule],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi(spec),
            "status": openapi(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "elastic-jupyter"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["jupyter"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crds() -> dict[str, dict]:
    """File name -> CRD, as committed under manifests/crds/."""
    gateway = _crd(
        "JupyterGateway",
        "jupytergateways",
        ["jgw"],
        JupyterGatewaySpec,
        JupyterGatewayStatus,
        [
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {
                "name": "Cull-Idle",
                "type": "integer",
                "jsonPath": ".spec.cullIdleTimeout",
                "description": "Seconds before an idle kernel is culled (0: never)",
            },
            {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        {
            # The gateway's Service is named after it and must be a DNS-1035 label;
            # "-notebook" is what notebooks' Services end with.
            "rule": "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') "
            "&& !self.metadata.name.endsWith('-notebook')",
            "message": "metadata.name must be a DNS-1035 label of at most 63 characters "
            "that does not end with -notebook (the gateway's Service takes this name)",
        },
    )
    notebook = _crd(
        "JupyterNotebook",
        "jupyternotebooks",
        ["jnb"],
        JupyterNotebookSpec,
        JupyterNotebookStatus,
        [
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Gateway", "type": "string", "jsonPath": ".spec.gateway.name"},
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        {
            "rule": "self.metadata.name.size() <= 54 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "message": "metadata.name must be a DNS-1035 label of at most 54 characters "
            "(its Service is named <name>-notebook)",
        },
    )
    return {"jupytergateways.yaml": gateway, "jupyternotebooks.yaml": notebook}
