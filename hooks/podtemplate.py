"""The schema of JupyterNotebook's spec.template: Kubernetes' own PodTemplateSpec, made structural.

``generate()`` (run by ``python -m hooks crds``) reads the OpenAPI definitions that the
``kubernetes-validate`` test dependency ships for the oldest Kubernetes minor we support and
writes the result to podtemplate.schema.json next to this module. That committed file is what
the CRD embeds and what the hooks validate templates with at run time (hooks.structural), so
the API server and the hooks judge a template by the same schema, and nothing at run time
depends on a test package.

Made structural: every $ref inlined, no null types, int-or-string for IntOrString and
Quantity (quantities also get the grammar and, as a CEL rule, the range), no list-map keys
(a CRD demands defaults for them that upstream's OpenAPI lacks), no ephemeralContainers (a
template may not have them), and ``image`` required in containers, as the Deployment's
validation requires. Descriptions are kept on the first levels only: the CRD must stay well
under the 262144 bytes of the annotation client-side ``kubectl apply`` stores.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from .quantity import QUANTITY_PATTERN

CONTAINER_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # a DNS label, as Pod validation demands
KUBERNETES_VERSION = "1.34.0"  # the oldest minor we support
SCHEMA_FILE = Path(__file__).with_name("podtemplate.schema.json")
# Largest quantity Kubernetes represents (it silently caps larger ones at this).
MAX_QUANTITY = "9223372036854775807"
QUANTITY_RULE = {
    "rule": f"isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('{MAX_QUANTITY}')) <= 0 "
    f"&& quantity(string(self)).compareTo(quantity('-{MAX_QUANTITY}')) >= 0",
    "message": f"must be a quantity of at most {MAX_QUANTITY}",
}
QUANTITY_SCHEMA = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
    "pattern": QUANTITY_PATTERN,
    "maxLength": 64,
}
# The API server refuses a CRD whose CEL rules could cost too much on a request: the quantity
# rule goes on the resources of the pod and of each container, with bounds on how many there
# can be (Kubernetes sets none; these are far above any notebook pod). Quantities elsewhere in
# a pod (emptyDir sizeLimit, a divisor) get the grammar here and the range from the hook.
MAX_CONTAINERS = 32
MAX_RESOURCES = 32
_DESCRIBED_DEPTH = 4  # template.spec.containers.env: what `kubectl explain` shows
_DROP = {
    "format",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-map-type",
    "x-kubernetes-unions",
    "x-kubernetes-group-version-kind",
}
_METADATA = {
    "type": "object",
    "description": "Labels and annotations of the notebook's pod.",
    "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@cache
def schema() -> dict:
    """The committed structural schema of spec.template."""
    return json.loads(SCHEMA_FILE.read_text())


def write() -> Path:
    """Regenerate the committed file, and the schema the models already loaded from it."""
    text = json.dumps(generate(), indent=1, sort_keys=True) + "\n"
    SCHEMA_FILE.write_text(text)
    loaded = schema()
    loaded.clear()
    loaded.update(json.loads(text))  # the models' CRD schema refers to this very dict
    return SCHEMA_FILE


def generate(version: str = KUBERNETES_VERSION) -> dict:
    """The structural schema of a PodTemplateSpec, from Kubernetes' OpenAPI of ``version``."""
    import kubernetes_validate  # a test dependency: only generation needs it

    path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions = json.loads((path / "_definitions.json").read_text())["$defs"]
    spec = _structural(definitions["io.k8s.api.core.v1.PodSpec"], definitions, depth=2)
    spec["properties"].pop("ephemeralContainers")
    spec["properties"]["containers"]["minItems"] = 1
    _range_checked(spec["properties"]["resources"])
    for name in ("containers", "initContainers"):
        spec["properties"][name]["maxItems"] = MAX_CONTAINERS
        container = spec["properties"][name]["items"]
        _range_checked(container["properties"]["resources"])
        container["required"] = sorted({*container.get("required", []), "image"})
        container["properties"]["image"]["minLength"] = 1
        container["properties"]["name"].update(pattern=CONTAINER_NAME, maxLength=63)
    top = definitions["io.k8s.api.core.v1.PodTemplateSpec"]
    return {
        "type": "object",
        "description": "A PodTemplateSpec; the container named notebook (else the first) is the Jupyter server.",
        "required": ["spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {**spec, "description": top["properties"]["spec"]["description"]},
        },
    }


def _range_checked(resources: dict) -> None:
    for part in ("limits", "requests"):
        resources["properties"][part]["maxProperties"] = MAX_RESOURCES
        resources["properties"][part]["additionalProperties"]["x-kubernetes-validations"] = [QUANTITY_RULE]


def _structural(node: dict, definitions: dict, depth: int) -> dict:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
            return _described(dict(QUANTITY_SCHEMA), node, depth)
        if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
            return _described({"x-kubernetes-int-or-string": True}, node, depth)
        return _described(_structural(definitions[name], definitions, depth), node, depth)
    out: dict = {}
    for key, value in node.items():
        if key in _DROP or key == "description":
            continue
        if key == "type":
            types = [t for t in (value if isinstance(value, list) else [value]) if t != "null"]
            out["type"] = types[0]
        elif key == "properties":
            out[key] = {name: _structural(prop, definitions, depth + 1) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            if isinstance(value, dict):
                out[key] = _structural(value, definitions, depth)
        elif key == "enum":
            out[key] = [v for v in value if v is not None]
        else:
            out[key] = value
    return _described(out, node, depth)


def _described(out: dict, node: dict, depth: int) -> dict:
    if depth <= _DESCRIBED_DEPTH and node.get("description"):
        out["description"] = node["description"]
    return out
