"""The hooks are pure: same input, same output, and the input is never modified."""

import copy
import json

import pytest

from bench import payloads
from hooks.gateway import customize_gateway, sync_gateway
from hooks.notebook import customize_notebook, sync_notebook

CASES = [("notebook", size) for size in ("small", "typical", "large")] + [("gateway", "typical")]


def run(kind, request, now):
    if kind == "notebook":
        return sync_notebook(request["parent"], request["children"], request["related"], now, payloads.TOKEN)
    return sync_gateway(request["parent"], request["children"], request["related"], now, payloads.TOKEN)


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_steady_state_requests_are_answered_identically_and_left_untouched(kind, size):
    request = payloads.notebook_request(size) if kind == "notebook" else payloads.gateway_request()
    before = copy.deepcopy(request)
    first = json.dumps(run(kind, request, "2026-11-26T10:00:00Z"))
    assert request == before
    assert json.dumps(run(kind, request, "2027-01-01T00:00:00Z")) == first
    customize_notebook(request["parent"])
    customize_gateway(request["parent"])
    assert request == before


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_at_steady_state_the_desired_children_are_what_was_last_applied(kind, size):
    """What Metacontroller compares: no child would be updated on a resync."""
    request = payloads.notebook_request(size) if kind == "notebook" else payloads.gateway_request()
    result = run(kind, request, payloads.NOW)
    assert [c["reason"] for c in result["status"]["conditions"] if c["type"] == "Ready"] == ["DeploymentAvailable"]
    desired = result["children"]
    for child in desired:
        key = f"{child['kind']}.{child['apiVersion']}"
        observed = request["children"][key][f"{child['metadata']['namespace']}/{child['metadata']['name']}"]
        last_applied = json.loads(
            observed["metadata"]["annotations"]["metacontroller.k8s.io/last-applied-configuration"]
        )
        assert child == last_applied


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_the_hooks_leave_no_cyclic_garbage(kind, size):
    """The server collects garbage rarely (hooks/app.py): every object must die by reference count."""
    import gc

    request = payloads.notebook_request(size) if kind == "notebook" else payloads.gateway_request()
    run(kind, request, payloads.NOW)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            run(kind, request, payloads.NOW)
        gc.collect()
        assert [type(o).__name__ for o in gc.garbage] == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
