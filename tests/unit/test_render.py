"""`python -m hooks render` and `make render`: YAML on stdout, one line per unrenderable document, exit 1."""

import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.__main__ import main, render
from tests.builders import ROOT

GATEWAY = "apiVersion: kubeflow.tkestack.io/v1alpha1\nkind: JupyterGateway\nmetadata: {name: gw}\n"
SAMPLES = ["jupytergateway-sample.yaml", "jupyternotebook-sample.yaml"]
NOTEBOOK = "apiVersion: kubeflow.tkestack.io/v1alpha1\nkind: JupyterNotebook\nmetadata: {name: nb}\n"


def run(capsys, tmp_path, text: str, *flags: str) -> tuple[int, str, list[str]]:
    path = tmp_path / "crs.yaml"
    path.write_text(text)
    code = main(["render", "-f", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


@pytest.mark.parametrize(
    ("text", "document", "problem"),
    [
        (GATEWAY + "---\nkind: [unclosed\n", 2, "not valid YAML"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", 1, "unknown kind 'v1' 'Pod'"),
        ("apiVersion: example.com/v1\nkind: JupyterGateway\nmetadata: {name: g}\n", 1, "unknown kind"),
        (GATEWAY + "---\n" + NOTEBOOK.replace("{name: nb}", "{namespace: x}"), 2, "metadata.name is missing"),
        (NOTEBOOK.replace("metadata: {name: nb}", "metadata: nb"), 1, "metadata.name is missing"),
        ("- 1\n- 2\n", 1, "not a Kubernetes object but a list"),
        (GATEWAY + "spec: {cullInterval: often}\n", 1, "(JupyterGateway gw): InvalidSpec: spec.cullInterval"),
        (NOTEBOOK + "spec: {template: {spec: {containers: []}}}\n", 1, "InvalidSpec: spec.template"),
    ],
)
def test_a_bad_document_is_one_line_naming_file_and_document_and_exit_1(capsys, tmp_path, text, document, problem):
    code, out, err = run(capsys, tmp_path, text)
    assert code == 1 and out == ""
    assert len(err) == 1, err
    assert err[0].startswith(f"render: {tmp_path / 'crs.yaml'}: document {document}")
    assert problem in err[0]


def test_a_gateway_in_the_file_is_used_as_written_unless_the_flag_says_otherwise(capsys, tmp_path):
    text = GATEWAY + "---\n" + NOTEBOOK.replace("{name: nb}", "{name: nb, namespace: team-a}")
    text += "spec: {gateway: {name: gw, namespace: default}}\n"
    code, out, err = run(capsys, tmp_path, text)
    assert code == 1 and "NamespaceNotAllowed" in err[0] and "document 2" in err[0]
    code, out, err = run(capsys, tmp_path, text, "--assume-gateways-allow-all-namespaces")
    assert code == 0 and err == []
    assert {d["metadata"]["name"] for d in yaml.safe_load_all(out)} >= {"nb-notebook", "gw-gateway"}


def test_help_states_what_render_assumes_about_the_cluster(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--assume-gateways-allow-all-namespaces" in text
    assert "ClusterRole" in text and "approval label" in text and "Secret" in text


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_documents = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["kubeflow.tkestack.io/v1alpha1", "v1"]) | _yaml_values,
        "kind": st.sampled_from(["JupyterGateway", "JupyterNotebook", "Pod"]) | _yaml_values,
        "metadata": st.fixed_dictionaries({}, optional={"name": _yaml_values, "namespace": _yaml_values})
        | _yaml_values,
        "spec": _yaml_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(_documents | _yaml_values, min_size=1, max_size=3), garbage=st.text(max_size=20))
def test_no_input_gives_a_traceback(capsys, tmp_path, docs, garbage):
    text = yaml.safe_dump_all(docs) + (f"---\n{garbage}\n" if garbage.strip() else "")
    code, out, err = run(capsys, tmp_path, text)
    assert code in (0, 1)
    assert all(line.startswith(f"render: {tmp_path / 'crs.yaml'}: document ") for line in err), err
    if code == 0:
        assert all(isinstance(d, dict) and d.get("kind") for d in yaml.safe_load_all(out) if d is not None)
    else:
        assert err and out == ""


def test_make_render_prints_only_yaml():
    result = subprocess.run(["make", "--no-print-directory", "render"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    docs = list(yaml.safe_load_all(result.stdout))
    samples = [yaml.safe_load((ROOT / "manifests" / "samples" / f).read_text()) for f in SAMPLES]
    assert [d["kind"] for d in docs] == [c["kind"] for c in render(samples)]
    assert not [line for line in result.stdout.splitlines() if line.startswith(("#", "cat ", "make"))]
