"""The CRDs: generated from the models, structural, and in agreement with the hooks.

The agreement tests evaluate the CRD the way the API server does (OpenAPI schema, then
the CEL rules, with a real CEL implementation) and compare the verdict with the one of
the pydantic models the hooks use, on generated specs.
"""

import copy
import json
import re
from decimal import Decimal, localcontext

import cel
import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, validators
from pydantic import ValidationError

from hooks import podtemplate
from hooks.__main__ import dump_crd
from hooks.crd import crds
from hooks.gateway import sync_gateway
from hooks.models import JupyterGatewaySpec, JupyterNotebookSpec
from hooks.notebook import sync_notebook
from hooks.structural import without_nulls
from tests.builders import NOW, ROOT, TOKEN, gateway, kernel_role, load, notebook, related_gateway

CRDS = crds()
# The API server decodes 1.0 as a float, which no "integer" accepts (Draft 7 would).
KubernetesValidator = validators.extend(
    Draft7Validator,
    type_checker=Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
K8S_VERSIONS = ["1.34.0", "1.35.0", "1.36.0"]


def schema_of(plural: str) -> dict:
    return CRDS[f"{plural}.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def apply_defaults(schema: dict, value):
    """What the API server does before validation: fill in schema defaults."""
    if isinstance(value, dict) and "properties" in schema:
        for name, prop in schema["properties"].items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                apply_defaults(prop, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def _quantity_value(text: str) -> Decimal:
    """The exact value of a quantity, as Kubernetes' resource.ParseQuantity reads it (uncapped)."""
    match = re.fullmatch(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)", text)
    number, suffix = match.groups()
    binary = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
    decimal = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
    with localcontext(prec=200, Emax=10**9, Emin=-(10**9)):
        if suffix in binary:
            return Decimal(number) * 2 ** binary[suffix]
        exponent = decimal[suffix] if suffix in decimal else int(suffix[1:])
        return Decimal(number).scaleb(exponent)


def _is_quantity(text) -> bool:
    """Kubernetes' CEL isQuantity(): the grammar, with an integer exponent."""
    return isinstance(text, str) and bool(
        re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?", text)
    )


def _compare(a: str, b: str) -> int:
    x, y = _quantity_value(a), _quantity_value(b)
    return (x > y) - (x < y)


# The Kubernetes CEL quantity library (k8s.io/apiserver/pkg/cel/library/quantity.go), as far as
# the CRDs use it; a quantity is passed around as its text.
CEL_FUNCTIONS = {"isQuantity": _is_quantity, "quantity": lambda text: text, "compareTo": _compare}


def cel_failures(schema: dict, value, path: str = "") -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks (at every level)."""
    found = []
    for rule in schema.get("x-kubernetes-validations", []):
        if not cel.evaluate(rule["rule"], cel.Context({"self": value}, CEL_FUNCTIONS)):
            found.append(f"{path}: {rule['message']}" if path else rule["message"])
    if isinstance(value, dict):
        for name, item in value.items():
            where = f"{path}.{name}" if path else name
            if name in (schema.get("properties") or {}):
                found += cel_failures(schema["properties"][name], item, where)
            elif isinstance(schema.get("additionalProperties"), dict):
                found += cel_failures(schema["additionalProperties"], item, where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += cel_failures(schema["items"], item, f"{path}.{i}")
    return found


def unknown_fields(schema: dict, value, path: str = "") -> list[str]:
    """Fields the schema does not declare: `kubectl apply` (strict field validation) refuses them."""
    found = []
    if isinstance(value, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        for name, item in value.items():
            where = f"{path}.{name}" if path else name
            if name not in schema["properties"]:
                found.append(f"{where}: unknown field")
            else:
                found += unknown_fields(schema["properties"][name], item, where)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += unknown_fields(schema["items"], item, f"{path}.{i}")
    return found


def api_server_verdict(plural: str, obj: dict) -> list[str]:
    """Why the API server would refuse ``obj`` (empty: accepted)."""
    schema = schema_of(plural)
    obj = apply_defaults(schema, without_nulls(obj))
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in KubernetesValidator(schema).iter_errors(obj)
    ]
    return errors or unknown_fields(schema, obj) or cel_failures(schema, obj)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_committed_crds_are_generated_from_the_models(name):
    committed = (ROOT / "manifests" / "crds" / name).read_text()
    assert committed == dump_crd(CRDS[name]), "run `python -m hooks crds` after changing hooks/models.py"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(CRDS))
def test_crds_are_valid_kubernetes_objects(name, version):
    kubernetes_validate.validate(CRDS[name], version, strict=True)


def _walk(schema: dict, path: str = ""):
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("plural", ["jupytergateways", "jupyternotebooks"])
def test_schemas_are_structural(plural):
    """Every node typed, no $ref or null: what apiextensions.k8s.io/v1 demands."""
    for path, node in _walk(schema_of(plural)):
        assert "$ref" not in node and "$defs" not in node, path
        assert node.get("type") in {"object", "array", "string", "integer", "boolean", "number"} or node.get(
            "x-kubernetes-int-or-string"
        ), f"{path} has no type"
        assert node.get("type") != "null" and "nullable" not in node, path


def test_status_subresource_printer_columns_short_names_and_category():
    for plural, columns in [
        ("jupytergateways", {"Ready", "Cull-Idle", "Age"}),
        ("jupyternotebooks", {"Ready", "Gateway", "URL"}),
    ]:
        spec = CRDS[f"{plural}.yaml"]["spec"]
        version = spec["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert columns <= {c["name"] for c in version["additionalPrinterColumns"]}
        assert spec["names"]["categories"] == ["jupyter"] and spec["names"]["shortNames"]
        assert spec["group"] == "kubeflow.tkestack.io" and version["name"] == "v1alpha1"
        assert "observedGeneration" in version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]


@pytest.mark.parametrize(
    ("plural", "path"),
    [
        ("jupytergateways", "manifests/samples/jupytergateway-sample.yaml"),
        ("jupyternotebooks", "manifests/samples/jupyternotebook-sample.yaml"),
    ],
)
def test_the_seed_samples_are_accepted(plural, path):
    assert api_server_verdict(plural, load(path)) == []


GATEWAY_REJECTS = [
    ({"cullIdleTimeout": -1}, "spec.cullIdleTimeout"),
    ({"cullIdleTimeout": "1h"}, "spec.cullIdleTimeout"),
    ({"cullInterval": 0}, "spec.cullInterval"),
    ({"logLevel": "debug"}, "spec.logLevel"),
    ({"kernels": ["py kernel"]}, "spec.kernels.0"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "spec.resources.requests.cpu"),
    ({"clusterRole": "Cluster_Admin"}, "spec.clusterRole"),
    ({"kernels": ["a"], "defaultKernel": "b"}, "spec: defaultKernel must be one of kernels"),
]


@pytest.mark.parametrize(("spec", "where"), GATEWAY_REJECTS)
def test_invalid_gateways_are_rejected_naming_the_field(spec, where):
    errors = api_server_verdict("jupytergateways", {"metadata": {"name": "gw"}, "spec": spec})
    assert errors and errors[0].startswith(where), errors
    with pytest.raises(ValidationError):
        JupyterGatewaySpec.model_validate(spec)


@pytest.mark.parametrize(
    ("name", "plural"),
    [("Bad", "jupytergateways"), ("x-notebook", "jupytergateways"), ("n" * 55, "jupyternotebooks")],
)
def test_names_that_would_break_child_names_are_rejected(name, plural):
    errors = api_server_verdict(plural, {"metadata": {"name": name}, "spec": {}})
    assert errors and errors[0].startswith("metadata.name")


# --- generated specs: the API server's verdict and the hooks' agree ---

_quantities = st.one_of(
    st.integers(-1, 4),
    st.sampled_from(["1", "500m", "1Gi", "0.5", "1e3", "lots", "1 Gi", "", "1e30", "1e1000000", "8Ei", "7Ei", "1e1.5"]),
    st.integers(2**63 - 2, 2**63 + 1),
)
_names = st.sampled_from(["python_kubernetes", "r_kubernetes", "a.b-c", "bad name", "", "x" * 129])
_gateway_specs = st.fixed_dictionaries(
    {},
    optional={
        "kernels": st.lists(_names, max_size=3, unique=True),
        "defaultKernel": _names,
        "cullIdleTimeout": st.one_of(st.integers(-2, 10**10), st.text(max_size=3), st.booleans()),
        "cullInterval": st.integers(-1, 100),
        "cullConnected": st.one_of(st.booleans(), st.sampled_from(["yes", 1])),
        "cullBusy": st.booleans(),
        "kernelLaunchTimeout": st.integers(0, 4000),
        "logLevel": st.sampled_from(["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "debug", "TRACE"]),
        "image": st.sampled_from(["elyra/enterprise-gateway:3.3.0", ""]),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), _quantities, max_size=2),
                "limits": st.dictionaries(st.sampled_from(["cpu"]), _quantities, max_size=1),
            },
        ),
        "clusterRole": st.sampled_from(["jupyter-gateway-kernels", "a.b", "Bad", ""]),
        "kernelProfiles": st.lists(
            st.fixed_dictionaries(
                {"name": _names},
                optional={
                    "displayName": st.sampled_from(["Python", ""]),
                    "image": st.sampled_from(["elyra/kernel-py:3.3.0", ""]),
                    "resources": st.fixed_dictionaries(
                        {},
                        optional={"requests": st.dictionaries(st.sampled_from(["cpu", "nvidia.com/gpu"]), _quantities)},
                    ),
                    "maxResources": st.dictionaries(
                        st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "x"]), _quantities
                    ),
                    "nodeSelector": st.dictionaries(st.sampled_from(["gpu", "zone"]), st.sampled_from(["a", "x" * 64])),
                    "tolerations": st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "key": st.sampled_from(["nvidia.com/gpu", ""]),
                                "operator": st.sampled_from(["Exists", "Equal", "In"]),
                                "effect": st.sampled_from(["NoSchedule", "Sometimes"]),
                                "tolerationSeconds": st.one_of(st.integers(0, 5), st.just("5")),
                            },
                        ),
                        max_size=2,
                    ),
                    "priorityClassName": st.sampled_from(["low", "Low!"]),
                },
            ),
            max_size=3,
            unique_by=lambda p: p["name"],
        ),
        "surprise": st.just(1),
    },
)
_notebook_specs = st.fixed_dictionaries(
    {},
    optional={
        "gateway": st.fixed_dictionaries(
            {"name": st.sampled_from(["gw", "Gw", "1gw", "g" * 64])},
            optional={"namespace": st.sampled_from(["default", "team-a", "Team", ""])},
        ),
        "auth": st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from(["enable", "disable", "on"]),
                "token": st.sampled_from(["short", "long-enough-token"]),
                "password": st.sampled_from(["pw", ""]),
                "secretRef": st.fixed_dictionaries(
                    {"name": st.sampled_from(["s", "S!"])}, optional={"key": st.sampled_from(["token", "a b"])}
                ),
            },
        ),
        "kernelResources": st.fixed_dictionaries(
            {},
            optional={
                part: st.dictionaries(
                    st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "amd.com/gpu"]), _quantities, max_size=3
                )
                for part in ("requests", "limits")
            },
        ),
        "suspend": st.one_of(st.booleans(), st.just("yes")),
        "workspace": st.fixed_dictionaries(
            {},
            optional={
                "claimName": st.sampled_from(["data", "Data!", ""]),
                "size": _quantities,
                "storageClassName": st.sampled_from(["fast", "Bad_Name"]),
                "accessMode": st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]),
            },
        ),
        "template": st.fixed_dictionaries(
            {
                "spec": st.fixed_dictionaries(
                    {
                        "containers": st.lists(
                            st.fixed_dictionaries(
                                {"name": st.sampled_from(["notebook", "Side"])},
                                optional={
                                    "image": st.sampled_from(["x", ""]),
                                    "env": st.sampled_from(["oops", [5], [{"name": "A", "value": "b"}], []]),
                                    "resources": st.fixed_dictionaries(
                                        {}, optional={"limits": st.dictionaries(st.just("cpu"), _quantities)}
                                    ),
                                },
                            ),
                            max_size=2,
                        )
                    }
                )
            }
        ),
    },
)


def _pydantic_accepts(model, spec) -> bool:
    try:
        model.model_validate(spec)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_gateway_specs)
def test_crd_and_hook_agree_on_generated_gateways(spec):
    api = not api_server_verdict("jupytergateways", {"metadata": {"name": "gw"}, "spec": spec})
    assert api == _pydantic_accepts(JupyterGatewaySpec, spec), spec


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_notebook_specs)
def test_crd_and_hook_agree_on_generated_notebooks(spec):
    api = not api_server_verdict("jupyternotebooks", {"metadata": {"name": "nb"}, "spec": spec})
    assert api == _pydantic_accepts(JupyterNotebookSpec, spec), spec


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(_gateway_specs)
def test_hook_status_always_fits_the_crd_and_invalid_specs_keep_children(spec):
    result = sync_gateway(
        gateway(**spec), {}, kernel_role(spec.get("clusterRole", "jupyter-gateway-kernels")), NOW, TOKEN
    )
    status_schema = schema_of("jupytergateways")["properties"]["status"]
    assert not list(Draft7Validator(status_schema).iter_errors(result["status"]))
    if not _pydantic_accepts(JupyterGatewaySpec, spec):
        assert result["children"] == [] and result["status"]["conditions"][0]["reason"] == "InvalidSpec"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(_notebook_specs)
def test_notebook_status_always_fits_the_crd(spec):
    gw = gateway("gw", (spec.get("gateway") or {}).get("namespace") or "default")
    result = sync_notebook(notebook(**spec), {}, related_gateway(gw), NOW, TOKEN)
    status_schema = schema_of("jupyternotebooks")["properties"]["status"]
    assert not list(Draft7Validator(status_schema).iter_errors(result["status"]))
    assert TOKEN not in str(result["status"])


def test_the_committed_pod_template_schema_is_generated_from_kubernetes():
    committed = json.loads((ROOT / "hooks" / "podtemplate.schema.json").read_text())
    assert committed == podtemplate.generate(), "run `python -m hooks crds`"


def test_the_notebook_crd_fits_the_annotation_client_side_apply_writes():
    """kubectl apply (client-side) stores the object as JSON in an annotation of at most 262144 bytes."""
    for crd in CRDS.values():
        assert len(json.dumps(crd, separators=(",", ":"))) < 262144 * 0.6


def test_crd_files_are_in_the_kustomization():
    kustomization = (ROOT / "manifests" / "kustomization.yaml").read_text()
    for name in CRDS:
        assert f"crds/{name}" in kustomization
