"""The hook server (`python -m hooks serve --token-file`, 127.0.0.1) under abuse.

The scenarios are bench/abuse.py's; these tests assert what does not depend on timing and
print the figures (`pytest -s`). `python -m bench.abuse` checks the latency targets.
"""

import subprocess
import sys

import httpx
import pytest

from bench import abuse
from hooks.app import MAX_BODY_BYTES


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with abuse.running_server(tmp_path_factory.mktemp("abuse")) as running:
        yield running


def test_hooks_need_the_bearer_token_and_probes_do_not(server):
    body = {"parent": {"apiVersion": "kubeflow.tkestack.io/v1alpha1", "kind": "JupyterGateway"}}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {server.token}"}):
        response = httpx.post(server.base + abuse.HOOK, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"error": "missing or wrong bearer token"}
    assert httpx.post(server.base + abuse.HOOK, json=body, headers=server.auth()).status_code == 422
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(server.base + path).status_code == 200, path


def test_a_200_mb_body_is_refused_and_memory_stays_flat(server):
    figures = abuse.huge_body(server)
    print(figures)
    assert figures["declared: status"] == 413, figures
    assert str(MAX_BODY_BYTES) in figures["declared: error"]
    assert figures["declared: MB sent before refusal"] < 16, "refused by Content-Length, before reading"
    # A chunked body is counted as it streams; the server hangs up once it passes the limit.
    assert figures["chunked: status"] in (413, None), figures
    assert figures["chunked: MB sent before refusal"] < 100, figures
    assert figures["peak RSS MB"] < 2 * figures["idle RSS MB"], figures
    assert figures["alive"]


def test_a_200_mb_header_is_refused(server):
    figures = abuse.huge_headers(server)
    print(figures)
    assert figures["status"] == 431, figures
    assert figures["MB sent before refusal"] < 16, figures
    assert figures["peak RSS MB"] < 2 * figures["idle RSS MB"], figures
    assert figures["alive"]


def test_health_answers_during_a_big_valid_request(server):
    figures = abuse.big_valid_request(server)
    print(figures)
    assert figures["status"] == 200 and figures["healthz probes"] >= 1, figures


def test_slow_clients_are_dropped_and_health_answers_meanwhile(server):
    figures = abuse.slow_clients(server)
    print(figures)
    assert figures["still connected during probes"] == 1000, figures
    assert figures["not dropped"] == 0, f"stalled requests held past the {abuse.REQUEST_TIMEOUT} s deadline"
    assert figures["alive"]


def test_metric_series_are_bounded_whatever_kinds_requests_claim(server):
    figures = abuse.random_kinds(server)
    print(figures)
    assert figures["requests answered 200"] == 10_000, figures
    assert figures["series after"] <= figures["series before"] + 10, figures


@pytest.mark.parametrize(("content", "message"), [(None, "No such file"), ("\n", "is empty")])
def test_a_missing_or_empty_token_file_stops_the_server(tmp_path, content, message):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    argv = [sys.executable, "-m", "hooks", "serve", "--port", str(abuse.free_port()), "--token-file", str(token_file)]
    result = subprocess.run(argv, cwd=abuse.ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Application startup failed" in result.stderr + result.stdout
    assert f"--token-file {token_file}" in result.stderr and message in result.stderr
