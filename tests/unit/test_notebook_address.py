"""The notebook's readiness probe and Service follow the port and base_url its Jupyter server is given."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.notebook import server_address, sync_notebook
from tests.builders import NOW, TOKEN, by_kind, child_types, notebook, observe

TYPES = child_types("jupyternotebook.yaml")


def render(**container) -> dict:
    template = {"spec": {"containers": [{"name": "notebook", "image": "quay.io/jupyter/base-notebook", **container}]}}
    return sync_notebook(notebook(template=template), {t: {} for t in TYPES}, {}, NOW, TOKEN)


def served(result) -> tuple[dict, list[int], dict, str]:
    """(readiness probe's httpGet, container ports, the Service's port, status url)."""
    children = by_kind(result["children"])
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    ports = [p["containerPort"] for p in container["ports"]]
    service = children["Service"]["spec"]["ports"][0]
    return container["readinessProbe"]["httpGet"], ports, service, result["status"]["url"]


def test_by_default_the_server_is_probed_and_served_on_8888_at_the_root():
    probe, ports, service, url = served(render())
    assert probe == {"path": "/api", "port": 8888}
    assert ports == [8888]
    assert (service["port"], service["targetPort"]) == (8888, 8888)
    assert url == "http://nb-notebook.default.svc:8888"


@pytest.mark.parametrize(
    ("container", "port", "base_url"),
    [
        ({"args": ["start-notebook.py", "--ServerApp.base_url=/user/a/", "--ServerApp.port=9000"]}, 9000, "/user/a/"),
        ({"command": ["jupyter", "lab", "--port", "9999", "--ServerApp.base_url", "lab"]}, 9999, "/lab/"),
        ({"args": ["--NotebookApp.port=7000", "--port=7001"]}, 7001, "/"),
        ({"env": [{"name": "NOTEBOOK_ARGS", "value": "--ServerApp.base_url=/x --port=7002"}]}, 7002, "/x/"),
        ({"env": [{"name": "JUPYTER_PORT", "value": "7003"}]}, 7003, "/"),
        ({"args": ["--port=7004"], "env": [{"name": "JUPYTER_PORT", "value": "7003"}]}, 7004, "/"),
    ],
)
def test_the_probe_and_service_follow_the_servers_port_and_base_url(container, port, base_url):
    probe, ports, service, url = served(render(**container))
    assert probe == {"path": f"{base_url}api", "port": port}
    assert port in ports
    assert (service["port"], service["targetPort"]) == (8888, port), "the URL keeps port 8888"
    assert url == "http://nb-notebook.default.svc:8888" + base_url.rstrip("/")


def test_a_users_own_probe_is_kept():
    own = {"httpGet": {"path": "/custom", "port": 1234}}
    probe, _, _, _ = served(render(args=["--port=9000"], readinessProbe=own))
    assert probe == own["httpGet"]


@pytest.mark.parametrize("args", [["--port=http"], ["--ServerApp.port=0"], ["--port=70000"], ["--port"]])
def test_a_port_that_is_not_one_is_an_invalid_spec_and_the_children_are_kept(args):
    first = render()
    observed = observe(first["children"], TYPES)
    template = {"spec": {"containers": [{"name": "notebook", "image": "i", "args": args}]}}
    result = sync_notebook(notebook(template=template), observed, {}, NOW, TOKEN)
    ready = result["status"]["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert "spec.template.spec.containers[0]" in ready["message"] and "port" in ready["message"]
    assert len(result["children"]) == 3


_words = st.lists(
    st.sampled_from(["--port", "--ServerApp.port", "--ServerApp.base_url", "--port=1", "9000", "/a/", "x"])
    | st.text(max_size=12),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(command=_words, args=_words, env=st.dictionaries(st.sampled_from(["NOTEBOOK_ARGS", "JUPYTER_PORT"]), st.text()))
def test_any_command_gives_a_port_in_range_or_a_problem(command, args, env):
    container = {"command": command, "args": args, "env": [{"name": k, "value": v} for k, v in env.items()]}
    port, base_url, problem = server_address(container, "c")
    assert 1 <= port <= 65535
    assert base_url.startswith("/") and base_url.endswith("/")
    assert problem is None or problem.startswith("c: ")
