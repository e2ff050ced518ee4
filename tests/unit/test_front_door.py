"""The front door's pure parts: identity from a TokenReview, routes, ownership, stamping."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks import front_door as fd

AUD = "kubeflow.tkestack.io/gateway/gateways/gw"
ALICE = "system:serviceaccount:team-a:alice-notebook"


def review(username=ALICE, authenticated=True, audiences=(AUD,), extra=None):
    user = {"username": username, "groups": ["system:serviceaccounts"]}
    if extra is not None:
        user["extra"] = extra
    return {"authenticated": authenticated, "user": user, "audiences": list(audiences)}


def denied(fn, *args) -> int:
    with pytest.raises(fd.Denied) as exc:
        fn(*args)
    return exc.value.code


def test_identity_is_the_notebooks_service_account():
    extra = {fd.POD_NAME_EXTRA: ["alice-notebook-5d9-x"]}
    assert fd.identity(review(extra=extra), AUD) == ("team-a", "alice", "alice-notebook-5d9-x")
    assert fd.identity(review(), AUD) == ("team-a", "alice", "")


@pytest.mark.parametrize(
    "status",
    [
        review(authenticated=False),
        review(audiences=("https://kubernetes.default.svc",)),
        review(audiences=()),
        {"authenticated": True, "user": {"username": ALICE}},  # no audiences at all
        {},
        None,
        {"authenticated": "true", "user": {"username": ALICE}, "audiences": [AUD]},
    ],
)
def test_an_invalid_token_or_another_audience_is_401(status):
    assert denied(fd.identity, status, AUD) == 401


@pytest.mark.parametrize(
    "username",
    [
        "system:serviceaccount:team-a:default",  # not a notebook's
        "system:serviceaccount:team-a:-notebook",  # no notebook name
        "system:serviceaccount:team-a:a:b-notebook",
        "alice",  # a user, not a ServiceAccount
        "system:node:n1",
        "system:serviceaccount:Team-A:alice-notebook",
        "",
    ],
)
def test_an_identity_that_is_no_notebook_is_403(username):
    assert denied(fd.identity, review(username=username), AUD) == 403


@given(st.text(max_size=80))
def test_identity_never_raises_anything_but_denied(username):
    try:
        namespace, notebook, _ = fd.identity(review(username=username), AUD)
    except fd.Denied as exc:
        assert exc.code == 403
    else:
        assert username == f"system:serviceaccount:{namespace}:{notebook}-notebook"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "token abc", "Basic YTpi", "bearer" + " x" * 0])
def test_no_bearer_token_is_401(header):
    assert denied(fd.bearer_token, header) == 401


def test_bearer_token():
    assert fd.bearer_token("Bearer abc.def") == "abc.def"
    assert fd.bearer_token("bearer abc") == "abc"


def test_the_cache_key_is_no_function_an_observer_can_reverse_cheaply():
    key = fd.token_key("secret-token")
    assert "secret-token" not in key and len(key) == 64


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/kernels", "list"),
        ("POST", "/api/kernels", "start"),
        ("DELETE", "/api/kernels", "hidden"),
        ("GET", "/api/kernels/0f0e", "kernel"),
        ("DELETE", "/api/kernels/0f0e", "kernel"),
        ("POST", "/api/kernels/0f0e/interrupt", "kernel"),
        ("POST", "/api/kernels/0f0e/restart", "kernel"),
        ("GET", "/api/kernels/0f0e/channels", "kernel"),
        ("GET", "/api", "open"),
        ("GET", "/api/kernelspecs", "open"),
        ("GET", "/api/kernelspecs/python_kubernetes", "open"),
        ("GET", "/kernelspecs/python_kubernetes/logo-64x64.png", "open"),
        ("POST", "/api/kernelspecs", "hidden"),
        ("GET", "/api/sessions", "hidden"),
        ("POST", "/api/sessions", "hidden"),
        ("GET", "/api/swagger.yaml", "hidden"),
        ("GET", "/", "hidden"),
    ],
)
def test_routes(method, path, kind):
    assert fd.route(method, path) == kind


def test_the_kernel_list_is_the_callers_own():
    owners = {"k1": ("team-a", "alice"), "k2": ("team-b", "bob"), "k3": ("team-a", "other")}
    kernels = [{"id": "k1"}, {"id": "k2"}, {"id": "k3"}, {"id": "k4"}, "junk", {"name": "x"}]
    assert fd.own_kernels(kernels, owners, ("team-a", "alice")) == [{"id": "k1"}]
    assert fd.own_kernels(kernels, owners, ("team-b", "bob")) == [{"id": "k2"}]
    assert fd.own_kernels({"not": "a list"}, owners, ("team-a", "alice")) == []


def test_a_kernel_start_is_stamped_with_the_callers_identity():
    body = json.dumps(
        {
            "name": "python_kubernetes",
            "env": {
                "KERNEL_NAMESPACE": "team-b",
                "kernel_namespace": "team-b",
                "KERNEL_NOTEBOOK": "bob",
                "KERNEL_USERNAME": "bob",
                "Kernel_Id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                "KERNEL_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                "KERNEL_CPUS": "1",
            },
        }
    ).encode()
    out = json.loads(fd.stamped_body(body, "team-a", "alice"))
    assert out["name"] == "python_kubernetes"
    assert out["env"] == {
        "KERNEL_NAMESPACE": "team-a",
        "KERNEL_NOTEBOOK": "alice",
        "KERNEL_USERNAME": "alice",
        "KERNEL_CPUS": "1",
    }
    assert json.loads(fd.stamped_body(b"", "team-a", "alice"))["env"]["KERNEL_NAMESPACE"] == "team-a"


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=8))
def test_stamping_always_decides_the_owner(env):
    out = json.loads(fd.stamped_body(json.dumps({"env": env}).encode(), "team-a", "alice"))["env"]
    assert (out["KERNEL_NAMESPACE"], out["KERNEL_NOTEBOOK"], out["KERNEL_USERNAME"]) == ("team-a", "alice", "alice")
    assert [k for k in out if k.upper() in {"KERNEL_NAMESPACE", "KERNEL_NOTEBOOK", "KERNEL_USERNAME"}] == [
        "KERNEL_NAMESPACE",
        "KERNEL_NOTEBOOK",
        "KERNEL_USERNAME",
    ]
    assert not any(k.upper() == "KERNEL_ID" for k in out)


@pytest.mark.parametrize("body", [b"[1]", b"not json", b'{"env": "x"}', b'{"env": []}'])
def test_a_malformed_kernel_start_is_400(body):
    assert denied(fd.stamped_body, body, "team-a", "alice") == 400


LABELS = {"kubeflow.tkestack.io/gateway-name": "gw", "kubeflow.tkestack.io/gateway-namespace": "gateways"}


def pod(namespace, notebook, labels=LABELS):
    meta_labels = {**labels, "kernel_id": "k1", **({fd.NOTEBOOK_LABEL: notebook} if notebook else {})}
    return {"metadata": {"namespace": namespace, "labels": meta_labels}}


def kernel_pod(namespace, notebook, kernel_id, labels=LABELS):
    return {
        "metadata": {"namespace": namespace, "labels": {**labels, "kernel_id": kernel_id, fd.NOTEBOOK_LABEL: notebook}}
    }


def test_owners_from_the_kernel_pods():
    pods = [
        kernel_pod("team-a", "alice", "k1"),
        kernel_pod("team-a", "alice", "k2"),
        kernel_pod("team-a", "alice", "k3", {"x": "y"}),  # not this gateway's
        kernel_pod("team-a", "alice", "k4"),
        kernel_pod("team-a", "mallory", "k4"),  # a copied kernel_id: nobody owns k4
        {"metadata": {"namespace": "team-a"}},
        "junk",
    ]
    assert fd.owners_from_pods(pods, LABELS) == {"k1": ("team-a", "alice"), "k2": ("team-a", "alice")}
    assert fd.owners_from_pods({"items": []}, LABELS) == {}


def test_owner_from_the_kernel_pod():
    assert fd.owner_from_pods([pod("team-a", "alice")], LABELS) == ("team-a", "alice")
    assert fd.owner_from_pods([], LABELS) is None
    assert fd.owner_from_pods([pod("team-a", None)], LABELS) is None
    # another gateway's pod, or a pod someone made with the same kernel_id: no owner
    assert fd.owner_from_pods([pod("team-a", "alice", {"x": "y"})], LABELS) is None
    assert fd.owner_from_pods([pod("team-a", "alice"), pod("team-a", "mallory")], LABELS) is None


def test_allowed_namespaces():
    assert fd.allowed("team-a", fd.parse_allowed('["gateways", "team-a"]'))
    assert not fd.allowed("team-b", fd.parse_allowed('["gateways", "team-a"]'))
    assert fd.allowed("team-b", fd.parse_allowed('["*"]'))
    for bad in ('{"a": 1}', "[1]", "nope"):
        with pytest.raises(ValueError):
            fd.parse_allowed(bad)


def test_the_allowed_file_is_reread_when_it_changes_and_allows_none_when_broken(tmp_path):
    path = tmp_path / "allowed.json"
    path.write_text('["team-a", "team-b"]')
    allowed = fd.AllowedFile(str(path))
    assert allowed.current() == {"team-a", "team-b"}
    # a ConfigMap volume swaps a symlink: a new inode
    new = tmp_path / "allowed.new"
    new.write_text('["team-a"]')
    os.replace(new, path)
    assert allowed.current() == {"team-a"}
    path.write_text("{broken")
    assert allowed.current() == frozenset()
    path.unlink()
    assert allowed.current() == frozenset()


def test_the_review_cache_expires_and_stays_bounded():
    now = [0.0]
    cache = fd.ReviewCache(30, clock=lambda: now[0], limit=3)
    cache.put("a", ("team-a", "alice", ""))
    assert cache.get("a") == ("team-a", "alice", "")
    now[0] = 30.0
    assert cache.get("a") is None
    for key in "bcdef":
        cache.put(key, fd.Denied(401, "x"))
    assert len(cache._entries) <= 3
    assert isinstance(cache.get("f"), fd.Denied)
