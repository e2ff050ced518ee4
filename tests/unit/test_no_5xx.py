"""Issue 9, item 2: nothing a request can hold makes a sync hook answer 5xx or lose a child.

CRs are generated from the CRDs' own schemas (every field, spec.template included, values
from the schema's types, enums, patterns and bounds), some of them then corrupted (a value of
the wrong type anywhere: an object stored before a schema change), and sent over HTTP with
corrupted observed children and related objects (a Secret whose data is a list, a Deployment
whose status is a string, a ClusterRole whose labels are a list, a gateway whose spec is a
number...). Every answer must be a 200; when the hook keeps the children, every observed child
must be in it; and when the API server's verdict (schema and CEL rules, as test_schema
evaluates them) accepts the spec, the hook's model must accept it too.

HOOK_FUZZ_EXAMPLES sets the number of cases per hook (2,000 by default, as CI runs it).
"""

from __future__ import annotations

import copy
import json
import os
import time
from functools import cache

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hooks.app import app
from hooks.children import LAST_APPLIED, spec_error
from hooks.gateway import sync_gateway
from hooks.models import JupyterGatewaySpec, JupyterNotebookSpec
from hooks.notebook import GATEWAYS, sync_notebook
from hooks.structural import without_nulls
from tests.builders import (
    AVAILABLE,
    NOW,
    TOKEN,
    child_types,
    gateway,
    kernel_role,
    merged,
    notebook,
    observe,
    related_gateway,
    user_secret,
)
from tests.unit.test_schema import api_server_verdict, schema_of

EXAMPLES = int(os.environ.get("HOOK_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
client = TestClient(app)
# Reasons under which a hook keeps the children it observed (besides what it revokes).
KEEP_REASONS = {
    "InvalidSpec",
    "ClusterRoleNotFound",
    "ClusterRoleNotAllowed",
    "AuthSecretNotFound",
    "GatewayNotFound",
    "NamespaceNotAllowed",
    "GatewayTokenNotFound",
    "PasswordSecretNotFound",
    "KernelRoleNotAllowed",
}

# --- values from a structural schema ---

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_quantity_text = st.one_of(
    st.sampled_from(
        ["1", "500m", "2Gi", "7Ei", "8Ei", "1e30", "1e1000000", "1e-1000000", "0.5", "9223372036854775807"]
    ),
    st.from_regex(r"[+-]?[0-9]{1,4}(\.[0-9]{0,3})?([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,7})?", fullmatch=True),
)


@cache
def _strategy(schema_json: str, depth: int) -> st.SearchStrategy:
    schema = json.loads(schema_json)
    if schema.get("x-kubernetes-int-or-string"):
        if "pattern" in schema:
            return st.one_of(_quantity_text, st.integers(-5, 2**64))
        return st.one_of(st.integers(0, 70000), st.sampled_from(["http", "8888", "50%"]))
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= schema.get("maxLength", 64)
            )
        return st.text(min_size=schema.get("minLength", 0), max_size=8)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        return st.one_of(st.integers(-10, 10), st.floats(-10, 10))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        item = _child(schema.get("items") or {}, depth)
        return st.lists(item, min_size=schema.get("minItems", 0), max_size=min(2, schema.get("maxItems", 2)))
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:
            values = _child(schema.get("additionalProperties") or {"type": "string"}, depth)
            return st.dictionaries(st.sampled_from(["a", "cpu", "memory", "nvidia.com/gpu", "k/x"]), values, max_size=2)
        required = {name: _child(properties[name], depth) for name in schema.get("required", [])}
        optional = {} if depth > 5 else {n: _child(p, depth) for n, p in properties.items() if n not in required}
        return st.fixed_dictionaries(required, optional=optional)
    return _junk


def _child(schema: dict, depth: int) -> st.SearchStrategy:
    return _strategy(json.dumps(schema, sort_keys=True), depth + 1)


def corrupted(value, draw):
    """``value`` with, sometimes, one node somewhere replaced by a value of any type."""
    if not draw(st.integers(0, 3)):
        return value
    path, node = [], value
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)) if isinstance(node, dict) else st.integers(0, len(node) - 1))
        path.append(key)
        node = node[key]
    if not path:
        return draw(_junk)
    value = copy.deepcopy(value)
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = draw(_junk)
    return value


def spec_strategy(plural: str) -> st.SearchStrategy:
    return _child(schema_of(plural)["properties"]["spec"], 0)


# --- observed and related objects, whole or corrupted ---


def _corrupt_objects(objects: dict, draw) -> dict:
    """Some objects of a children or related map given odd shapes where the hooks read them."""
    objects = copy.deepcopy(objects)
    for group in objects.values():
        for obj in group.values():
            if not draw(st.integers(0, 4)):
                where = draw(st.sampled_from(["status", "data", "spec", "metadata.labels", "metadata.annotations"]))
                target = obj
                *parents, last = where.split(".")
                for key in parents:
                    target = target.setdefault(key, {})
                target[last] = draw(_junk)
            elif not draw(st.integers(0, 6)):
                obj.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = draw(
                    st.one_of(st.text(max_size=5), _junk.map(json.dumps))
                )
    return objects


def identities(children: list[dict]) -> set[tuple]:
    return {(c["kind"], c["apiVersion"], c["metadata"]["namespace"], c["metadata"]["name"]) for c in children}


def _observed(children: dict) -> set[tuple]:
    return {
        (c["kind"], c["apiVersion"], c["metadata"]["namespace"], c["metadata"]["name"])
        for group in children.values()
        for c in group.values()
        if isinstance(c.get("metadata"), dict)
    }


def _refusal(model, spec) -> str:
    """Why the hook's model refuses ``spec`` ("" if it accepts it)."""
    try:
        model.model_validate(spec)
    except ValidationError as exc:
        return spec_error(exc)
    return ""


def _check(kind: str, parent: dict, children: dict, related: dict, verdict: list[str], model) -> dict:
    res = client.post(f"/sync/{kind.lower()}", json={"parent": parent, "children": children, "related": related})
    assert res.status_code == 200, (res.status_code, res.text[:300], parent["spec"])
    body = res.json()
    ready = body["status"]["conditions"][0]
    if not verdict:
        # The API server would store this spec: the hook's model accepts it as well, except for
        # quantities out of range where the CRD has no CEL rule (podtemplate.py says why).
        refusal = _refusal(model, without_nulls(parent["spec"]))
        assert not refusal or "out of range" in refusal, (refusal, parent["spec"])
    namespace = parent["metadata"]["namespace"]
    assert all(c["metadata"]["namespace"] == namespace for c in body["children"])
    if ready["reason"] in KEEP_REASONS:
        assert ready["message"] and not any(
            w in ready["message"] for w in ("Traceback", "object has no", "instance of")
        )
        # A RoleBinding is kept only while its role is approved (and, for a notebook, while the
        # gateway may run kernels there): test_hardening's property checks that part.
        expected = {i for i in _observed(children) if i[0] != "RoleBinding"}
        assert expected <= identities(body["children"]), (ready, expected - identities(body["children"]))
    return body


GW_TYPES = child_types("jupytergateway.yaml")
NB_TYPES = child_types("jupyternotebook.yaml")
_GW_RUNNING = observe(
    sync_gateway(gateway("gw", "team-a"), {}, kernel_role(), NOW, TOKEN)["children"], GW_TYPES, AVAILABLE
)
_NB_RELATED = merged(related_gateway(gateway("gw", "team-a")), user_secret("pw", {"password": "pw"}, "team-a"))
_NB_RUNNING = observe(
    sync_notebook(notebook("nb", "team-a", gateway={"name": "gw"}), {}, _NB_RELATED, NOW, TOKEN)["children"],
    NB_TYPES,
    AVAILABLE,
)
TIMES: dict[str, list[float]] = {"JupyterGateway": [], "JupyterNotebook": []}


@FUZZ
@given(spec=spec_strategy("jupytergateways"), data=st.data())
def test_no_generated_gateway_request_gets_a_5xx_or_loses_a_child(spec, data):
    started = time.perf_counter()
    spec = corrupted(spec, data.draw)
    verdict = api_server_verdict("jupytergateways", {"metadata": {"name": "gw"}, "spec": spec})
    parent = {**gateway("gw", "team-a"), "spec": spec}
    role = spec.get("clusterRole") if isinstance(spec, dict) and isinstance(spec.get("clusterRole"), str) else ""
    related = merged(
        kernel_role(role or "jupyter-gateway-kernels", allowed=data.draw(st.booleans())),
        user_secret("t", {"token": "user-token"}, "team-a"),
    )
    children = _corrupt_objects(_GW_RUNNING, data.draw)
    _check("JupyterGateway", parent, children, _corrupt_objects(related, data.draw), verdict, JupyterGatewaySpec)
    TIMES["JupyterGateway"].append(time.perf_counter() - started)


@FUZZ
@given(spec=spec_strategy("jupyternotebooks"), data=st.data())
def test_no_generated_notebook_request_gets_a_5xx_or_loses_a_child(spec, data):
    started = time.perf_counter()
    spec = corrupted(spec, data.draw)
    verdict = api_server_verdict("jupyternotebooks", {"metadata": {"name": "nb"}, "spec": spec})
    parent = {**notebook("nb", "team-a"), "spec": spec}
    gw = {**gateway("gw", "team-a"), "spec": data.draw(st.one_of(st.just({}), _junk))}
    related = merged(related_gateway(gw), _NB_RELATED) if data.draw(st.booleans()) else {GATEWAYS: {}}
    children = _corrupt_objects(_NB_RUNNING, data.draw)
    _check("JupyterNotebook", parent, children, _corrupt_objects(related, data.draw), verdict, JupyterNotebookSpec)
    TIMES["JupyterNotebook"].append(time.perf_counter() - started)


@pytest.fixture(scope="module", autouse=True)
def report_times():
    yield
    for kind, times in TIMES.items():
        if times:
            total = sum(times)
            print(
                f"\n{kind}: {len(times)} generated requests in {total:.1f} s ({1000 * total / len(times):.1f} ms each)"
            )
