"""The hook server's guards over HTTP: bearer token, body limit, error shape, parent identity, metric labels."""

import asyncio
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hooks.app
from hooks import metrics
from hooks.app import MAX_BODY_BYTES, app
from tests.builders import child_types, gateway, kernel_role, notebook

GATEWAY_TYPES = child_types("jupytergateway.yaml")


def call(method: str, path: str, content=b"", headers=None) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            return await client.request(method, path, content=content, headers=headers or {})

    return asyncio.run(go())


def sync_body(parent=None, children=None) -> bytes:
    parent = parent or gateway()
    children = children if children is not None else {t: {} for t in GATEWAY_TYPES}
    return json.dumps({"controller": {}, "parent": parent, "children": children, "related": kernel_role()}).encode()


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setitem(hooks.app.hook_auth, "token", b"s3cret-token")
    return "s3cret-token"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong", "Bearer s3cret-token-longer", "Basic s3cret-token", "s3cret-token"],
)
def test_hooks_refuse_a_missing_or_wrong_bearer_token(token, header):
    headers = {} if header is None else {"authorization": header}
    for path in ("/sync/jupytergateway", "/customize/jupyternotebook"):
        response = call("POST", path, sync_body(), headers)
        assert response.status_code == 401, (header, path)
        assert response.json() == {"error": "missing or wrong bearer token"}
        assert token not in response.text


def test_hooks_answer_the_right_bearer_token_and_probes_need_none(token):
    response = call("POST", "/sync/jupytergateway", sync_body(), {"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert call("POST", "/sync/jupytergateway", sync_body(), {"authorization": f"bearer  {token} "}).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert call("GET", path).status_code == 200, path


def test_without_a_token_file_the_hooks_answer_anyone():
    assert hooks.app.hook_auth["token"] is None
    assert call("POST", "/sync/jupytergateway", sync_body()).status_code == 200


def test_read_token_strips_the_file_and_refuses_an_empty_one(tmp_path):
    (tmp_path / "t").write_text("abc\n")
    assert hooks.app.read_token(str(tmp_path / "t")) == b"abc"
    assert hooks.app.read_token(None) is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SystemExit, match="empty"):
        hooks.app.read_token(str(tmp_path / "empty"))


def test_a_body_over_the_limit_gets_a_413_by_its_content_length():
    """Refused from the header alone: nothing of the body is read (here, none is sent)."""
    headers = {"content-length": str(MAX_BODY_BYTES + 1)}

    async def go():
        sent = []

        async def receive():
            sent.append(1)
            return {"type": "http.request", "body": b"", "more_body": True}

        messages = []

        async def send(message):
            messages.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/sync/jupytergateway",
            "raw_path": b"/sync/jupytergateway",
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "http_version": "1.1",
            "scheme": "http",
            "server": ("hooks", 80),
            "client": ("c", 1),
            "root_path": "",
        }
        await app(scope, receive, send)
        return sent, messages

    sent, messages = asyncio.run(go())
    assert messages[0]["status"] == 413 and not sent, "answered without reading the body"
    assert (b"connection", b"close") in messages[0]["headers"]
    assert "exceeds" in json.loads(messages[1]["body"])["error"]


def test_a_streamed_body_over_the_limit_gets_a_413():
    async def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            return await client.post("/sync/jupytergateway", content=chunks())

    response = asyncio.run(go())
    assert response.status_code == 413
    assert response.json() == {"error": f"request body exceeds {MAX_BODY_BYTES} bytes"}


def test_a_body_at_the_limit_is_read():
    body = sync_body()
    padded = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(padded) == MAX_BODY_BYTES
    assert call("POST", "/sync/jupytergateway", padded).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope", 404), ("POST", "/sync/other", 404), ("GET", "/sync/jupytergateway", 405)],
)
def test_unknown_paths_and_methods_answer_in_the_same_json_shape(method, path, status):
    response = call(method, path)
    assert response.status_code == status
    assert set(response.json()) == {"error"} and response.json()["error"]


@pytest.mark.parametrize("api_version", ["v1", "kubeflow.tkestack.io/v1", "example.com/v1alpha1", ""])
def test_a_parent_of_another_api_version_is_refused(api_version):
    parent = {**gateway(), "apiVersion": api_version}
    response = call("POST", "/sync/jupytergateway", sync_body(parent))
    assert response.status_code == 422
    assert "kubeflow.tkestack.io/v1alpha1" in response.json()["error"]
    customize = {**notebook(), "apiVersion": api_version}
    response = call("POST", "/customize/jupyternotebook", json.dumps({"parent": customize}).encode())
    assert response.status_code == 422


def _label_values(metric, label: str) -> set[str]:
    return {s.labels[label] for family in metric.collect() for s in family.samples if label in s.labels}


@settings(max_examples=50, deadline=None)
@given(kinds=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5))
def test_metric_labels_come_from_a_closed_set(kinds):
    """Kept children carry the observed object's kind: whatever a request claims, labels stay bounded."""
    children = {
        f"{kind}.v1": {f"default/c{i}": {"apiVersion": "v1", "kind": kind, "metadata": {"name": f"c{i}"}}}
        for i, kind in enumerate(kinds)
    }
    response = call("POST", "/sync/jupytergateway", sync_body(gateway(cullInterval="often"), children))
    assert response.status_code == 200
    assert _label_values(metrics.CHILDREN, "kind") <= metrics.CHILD_KINDS | {"other"}
    assert _label_values(metrics.NOT_READY, "reason") <= metrics.NOT_READY_REASONS | {"other"}
