"""The hook server over HTTP, with requests in Metacontroller's exact v2 format."""

import asyncio
import json

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.app import app
from tests.builders import ROOT, child_types, gateway, kernel_role, load, notebook, observe, related_gateway

GATEWAY_TYPES = child_types("jupytergateway.yaml")
NOTEBOOK_TYPES = child_types("jupyternotebook.yaml")
CONTROLLER = load("metacontroller/jupyternotebook.yaml")


def post(path: str, body) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return await client.post(path, content=content, headers={"content-type": "application/json"})

    return asyncio.run(go())


def sync_request(parent, types, children=None, related=None) -> dict:
    return {
        "controller": CONTROLLER,
        "parent": parent,
        "children": children or {t: {} for t in types},
        "related": related or {},
        "finalizing": False,
    }


def test_gateway_sync_over_http():
    response = post("/sync/jupytergateway", sync_request(gateway(), GATEWAY_TYPES, related=kernel_role()))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "children"}, "v2 parses strictly: no other top-level key"
    assert len(body["children"]) == 10


def test_notebook_customize_and_sync_over_http():
    parent = notebook(namespace="team-a", gateway={"name": "gw", "namespace": "default"})
    customize = post("/customize/jupyternotebook", {"controller": CONTROLLER, "parent": parent})
    assert customize.status_code == 200
    assert set(customize.json()) == {"relatedResources"}
    rule = customize.json()["relatedResources"][1]
    assert (rule["namespace"], rule["names"]) == ("default", ["gw"])
    shared = gateway(allowedNamespaces=["team-a"])
    related = related_gateway(shared) | kernel_role()
    response = post("/sync/jupyternotebook", sync_request(parent, NOTEBOOK_TYPES, related=related))
    assert response.status_code == 200
    kinds = {c["kind"] for c in response.json()["children"]}
    assert kinds == {"Deployment", "Service", "Secret", "ConfigMap", "RoleBinding", "ServiceAccount"}


def test_the_token_is_generated_once_and_kept_over_http():
    first = post("/sync/jupyternotebook", sync_request(notebook(), NOTEBOOK_TYPES)).json()
    second = post("/sync/jupyternotebook", sync_request(notebook(), NOTEBOOK_TYPES)).json()
    secret = next(c for c in first["children"] if c["kind"] == "Secret")
    assert secret != next(c for c in second["children"] if c["kind"] == "Secret"), "fresh randomness per new notebook"
    observed = observe(first["children"], NOTEBOOK_TYPES)
    third = post("/sync/jupyternotebook", sync_request(notebook(), NOTEBOOK_TYPES, observed)).json()
    assert next(c for c in third["children"] if c["kind"] == "Secret") == secret


def test_gateway_customize_over_http():
    body = post("/customize/jupytergateway", {"controller": {}, "parent": gateway(clusterRole="r")}).json()
    assert body["relatedResources"][0]["names"] == ["r"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"children": {}}, 422, "not a Metacontroller hook request"),
        ({"parent": {"kind": "JupyterGateway"}}, 422, "not a Metacontroller hook request"),
        ({"parent": notebook()}, 422, "serves JupyterGateway, not JupyterNotebook"),
        ({"parent": gateway(), "children": {"Secret.v1": {"default/s": "x"}}}, 422, "not a Metacontroller"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(body, status, error):
    response = post("/sync/jupytergateway", body)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_a_4xx_never_echoes_the_request():
    """Observed children hold Secret data, and Metacontroller logs error responses."""
    body = {"parent": gateway(), "children": {"Secret.v1": {"default/s": "c2VjcmV0LXRva2Vu"}}}
    response = post("/sync/jupytergateway", body)
    assert response.status_code == 422
    assert "c2VjcmV0LXRva2Vu" not in response.text


def test_an_invalid_spec_gets_a_200_that_keeps_the_children():
    good = post("/sync/jupytergateway", sync_request(gateway(), GATEWAY_TYPES, related=kernel_role())).json()
    observed = observe(good["children"], GATEWAY_TYPES)
    bad = post(
        "/sync/jupytergateway", sync_request(gateway(cullInterval="often"), GATEWAY_TYPES, observed, kernel_role())
    )
    assert bad.status_code == 200
    assert len(bad.json()["children"]) == 10
    assert bad.json()["status"]["conditions"][0]["message"].startswith("spec.cullInterval")


def test_health_endpoints():
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            return (await client.get("/healthz")).status_code, (await client.get("/readyz")).status_code

    assert asyncio.run(go()) == (200, 200)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
_parents = st.fixed_dictionaries(
    {"metadata": st.one_of(_json, st.fixed_dictionaries({"name": st.text(max_size=5)}))},
    optional={
        "apiVersion": _json,
        "kind": st.sampled_from(["JupyterGateway", "JupyterNotebook", "Pod"]),
        "spec": _json,
        "status": _json,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(
        ["/sync/jupytergateway", "/sync/jupyternotebook", "/customize/jupyternotebook", "/customize/jupytergateway"]
    ),
    body=st.one_of(_json, st.fixed_dictionaries({"parent": _parents}, optional={"children": _json, "related": _json})),
)
def test_no_generated_request_crashes_the_server(path, body):
    response = post(path, body)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 200:
        assert set(response.json()) <= {"status", "children", "relatedResources"}
    else:
        assert response.json()["error"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.dictionaries(st.sampled_from(["gateway", "auth", "template", "cullBusy", "x"]), _json, max_size=3))
def test_generated_notebook_specs_get_a_200_and_keep_their_children(spec):
    observed = observe(
        post("/sync/jupyternotebook", sync_request(notebook(), NOTEBOOK_TYPES)).json()["children"], NOTEBOOK_TYPES
    )
    response = post(
        "/sync/jupyternotebook", sync_request(notebook(**spec), NOTEBOOK_TYPES, observed, related_gateway(gateway()))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    ready = body["status"]["conditions"][0]
    if ready["reason"] == "InvalidSpec":
        assert len(body["children"]) == 3
        assert ready["message"].startswith("spec")


@settings(max_examples=300, deadline=None)
@given(spec=_json, status=_json, related=_json)
def test_the_pure_functions_never_raise_on_any_spec(spec, status, related):
    """Whatever slipped past the schema, the hooks answer (a 5xx would stall the parent)."""
    from hooks.gateway import customize_gateway, sync_gateway
    from hooks.notebook import customize_notebook, sync_notebook

    for kind in ("JupyterGateway", "JupyterNotebook"):
        parent = {
            "apiVersion": "kubeflow.tkestack.io/v1alpha1",
            "kind": kind,
            "spec": spec,
            "status": status,
            "metadata": {"name": "x", "namespace": "default"},
        }
        related_map = (
            related if isinstance(related, dict) and all(isinstance(v, dict) for v in related.values()) else {}
        )
        customize_gateway(parent)
        customize_notebook(parent)
        sync_gateway(parent, {}, related_map, "2026-01-01T00:00:00Z", "t")
        sync_notebook(parent, {}, related_map, "2026-01-01T00:00:00Z", "t")


def test_render_previews_the_samples_with_secrets_redacted(capsys):
    from hooks.__main__ import main

    assert main(["render", "-f", str(ROOT / "manifests" / "samples" / "jupyternotebook-sample.yaml")]) == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount"]
    assert docs[2]["data"] == {"token": "<redacted>"}  # no gateway token: the notebook has its own identity


def test_metrics_count_calls_latency_errors_children_and_invalid_specs():
    def scrape() -> str:
        async def go():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
                return (await client.get("/metrics")).text

        return asyncio.run(go())

    def value(text: str, sample: str) -> float:
        line = next((ln for ln in text.splitlines() if ln.startswith(sample + " ")), None)
        return float(line.split()[-1]) if line else 0.0

    before = scrape()
    post("/sync/jupytergateway", sync_request(gateway(), GATEWAY_TYPES, related=kernel_role()))
    post("/sync/jupytergateway", sync_request(gateway(cullIdleTimeout=-1), GATEWAY_TYPES, related=kernel_role()))
    post("/sync/jupytergateway", b"{oops")
    after = scrape()
    hook = 'hook="sync/jupytergateway"'
    expected = {
        f'elastic_jupyter_hook_calls_total{{code="200",{hook}}}': 2,
        f'elastic_jupyter_hook_errors_total{{{hook},kind="bad_json"}}': 1,
        f'elastic_jupyter_children_rendered_total{{{hook},kind="Deployment"}}': 1,
        f'elastic_jupyter_parents_not_ready_total{{{hook},reason="InvalidSpec"}}': 1,
        f"elastic_jupyter_hook_duration_seconds_count{{{hook}}}": 2,
    }
    assert {sample: value(after, sample) - value(before, sample) for sample in expected} == expected


def test_an_unexpected_error_is_a_500_that_names_no_secret(monkeypatch):
    """Metacontroller keeps every child and retries on a 5xx."""
    import hooks.app

    def broken(*args):
        raise RuntimeError("boom with c2VjcmV0")

    monkeypatch.setattr(hooks.app, "sync_gateway", broken)
    response = post("/sync/jupytergateway", sync_request(gateway(), GATEWAY_TYPES, related=kernel_role()))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError"}
