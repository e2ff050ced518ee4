"""Command line: ``python -m hooks serve|render|crds``.

serve   run the hook server (uvicorn)
render  print the children the hooks would create for the CRs in YAML files
crds    write the CRDs generated from the models to manifests/crds/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from . import podtemplate
from .app import now
from .crd import crds
from .gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, auth_secret_name, customize_gateway, sync_gateway
from .models import API_VERSION, DEFAULT_KERNEL_CLUSTER_ROLE
from .notebook import GATEWAYS, customize_notebook, sync_notebook

PLACEHOLDER = "<generated-at-first-sync>"


RENDERED = {(API_VERSION, "JupyterGateway"), (API_VERSION, "JupyterNotebook")}


def load(name: str, text: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """Each non-empty YAML document of one file as (``file: document N``, object), and the errors."""
    documents, errors, index = [], [], 0
    try:
        for index, doc in enumerate(yaml.safe_load_all(text), 1):
            if doc is not None:
                documents.append((f"{name}: document {index}", doc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        errors.append(f"{name}: document {index + 1}: not valid YAML: {problem}{line}")
    return documents, errors


def _check(doc: object) -> str | None:
    """Why ``doc`` cannot be rendered, or None."""
    if not isinstance(doc, dict):
        return f"not a Kubernetes object but a {type(doc).__name__}"
    if not any(doc.get("apiVersion") == api and doc.get("kind") == kind for api, kind in RENDERED):
        return (
            f"unknown kind {doc.get('apiVersion')!r} {doc.get('kind')!r}: "
            f"render takes {API_VERSION} JupyterGateway and JupyterNotebook"
        )
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        return f"{doc['kind']}: metadata.name is missing"
    if not isinstance(meta.get("namespace", ""), str):
        return f"{doc['kind']} {meta['name']}: metadata.namespace is not a string"
    return None


def render(documents: list[dict], allow_all: bool = False) -> list[dict]:
    """The children of ``documents`` (see render_named); ValueError if one renders nothing."""
    children, errors = render_named([(f"document {i}", d) for i, d in enumerate(documents, 1)], allow_all)
    if errors:
        raise ValueError("; ".join(errors))
    return children


def render_named(documents: list[tuple[str, dict]], allow_all: bool = False) -> tuple[list[dict], list[str]]:
    """Children of every JupyterGateway and JupyterNotebook in ``documents``, as on a first sync.

    Returns (children, errors): one line per document that renders nothing, naming it. What the
    customize hooks would read is assumed: ClusterRoles exist and carry the approval label, token
    Secrets exist, a gateway not in ``documents`` exists with the default spec; ``allow_all``
    also assumes every gateway lists every namespace in allowedNamespaces. Secret data is
    redacted: this is a preview, not something to apply.
    """
    checked = [(where, doc, _check(doc)) for where, doc in documents]
    errors = [f"{where}: {problem}" for where, _, problem in checked if problem]
    valid = [
        (where, {**doc, "metadata": {"namespace": "default", **doc["metadata"]}}) for where, doc, p in checked if not p
    ]
    given = {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}": d for _, d in valid if d["kind"] == "JupyterGateway"
    }
    out = []
    for where, doc in valid:
        if doc["kind"] == "JupyterGateway":
            related = _assumed(customize_gateway(doc), doc, given, allow_all)
            result = sync_gateway(doc, {}, related, now(), PLACEHOLDER)
        else:
            related = _assumed(customize_notebook(doc), doc, given, allow_all)
            result = sync_notebook(doc, {}, related, now(), PLACEHOLDER)
        if not result["children"]:
            ready = next(c for c in result["status"]["conditions"] if c["type"] == "Ready")
            errors.append(f"{where} ({doc['kind']} {doc['metadata']['name']}): {ready['reason']}: {ready['message']}")
        out += result["children"]
    for child in out:
        if child["kind"] == "Secret":
            child["data"] = {key: "<redacted>" for key in child["data"]}
    return out, errors


def _assumed(customized: dict, doc: dict, given: dict, allow_all: bool) -> dict:
    related: dict = {}
    for rule in customized["relatedResources"]:
        if rule["resource"] == "pods":  # a notebook's kernel pods: none before its first sync
            continue
        if rule["resource"] == "secrets" and "labelSelector" in rule:  # the gateway's token Secret
            owner = rule["labelSelector"]["matchLabels"]["kubeflow.tkestack.io/jupytergateway"]
            _assume(related, rule, auth_secret_name(owner), doc, given, allow_all)
            continue
        # A rule by label (the ClusterRoles approved for gateways): assume the gateways' roles are.
        roles = {(g.get("spec") or {}).get("clusterRole") or DEFAULT_KERNEL_CLUSTER_ROLE for g in given.values()}
        for name in rule.get("names") or sorted(roles | {DEFAULT_KERNEL_CLUSTER_ROLE}):
            _assume(related, rule, name, doc, given, allow_all)
    return related


def _assume(related: dict, rule: dict, name: str, doc: dict, given: dict, allow_all: bool) -> None:
    key = f"{rule['namespace']}/{name}" if "namespace" in rule else name
    if rule["resource"] == "clusterroles":
        obj = {"metadata": {"name": name, "labels": {KERNEL_ROLE_LABEL: "true"}}}
    elif rule["resource"] == "jupytergateways":
        stub = {
            "apiVersion": API_VERSION,
            "kind": "JupyterGateway",
            "spec": {},
            "metadata": {"name": name, "namespace": rule["namespace"]},
        }
        obj = given.get(key, stub)
        if allow_all:
            obj = {**obj, "spec": {**(obj.get("spec") or {}), "allowedNamespaces": ["*"]}}
    else:
        auth = (doc.get("spec") or {}).get("auth") or {}
        keys = {"token", auth.get("secretRef", {}).get("key", "token")}
        keys.add(auth.get("passwordSecretRef", {}).get("key", "password"))
        obj = {"data": dict.fromkeys(keys, "cmVkYWN0ZWQ=")}
    kind = {"clusterroles": CLUSTER_ROLES, "jupytergateways": GATEWAYS, "secrets": "Secret.v1"}[rule["resource"]]
    related.setdefault(kind, {})[key] = obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hooks")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hook server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--token-file",
        help="file holding the bearer token callers must send (mounted from a Secret); without it, no auth",
    )
    show = sub.add_parser(
        "render",
        help="print the children the hooks would create",
        description="Print, as YAML, the children the hooks would create on a first sync of the CRs given "
        "(Secret data redacted). A document that renders nothing is reported on stderr as one line naming "
        "its file and position, and the exit status is 1. What render cannot see is assumed: every "
        "ClusterRole named by spec.clusterRole exists and carries the approval label; every Secret named "
        "by an auth.secretRef exists; a gateway that is not among the files exists with the default spec "
        "(it allows only its own namespace). Gateways among the files are used as written, unless "
        "--assume-gateways-allow-all-namespaces.",
    )
    show.add_argument(
        "-f",
        "--filename",
        required=True,
        action="append",
        help="YAML file of CRs ('-' for stdin); repeat for several",
    )
    show.add_argument(
        "--assume-gateways-allow-all-namespaces",
        action="store_true",
        help="assume every gateway lists every namespace in spec.allowedNamespaces (default: as written)",
    )
    write = sub.add_parser("crds", help="write the generated CRDs")
    write.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "manifests" / "crds"))
    args = parser.parse_args(argv)

    if args.command == "serve":
        from .serving import serve

        serve(args.host, args.port, args.workers, args.token_file)
    elif args.command == "render":
        documents, errors = [], []
        for name in args.filename:
            try:
                text = sys.stdin.read() if name == "-" else Path(name).read_text()
            except OSError as exc:
                errors.append(f"{name}: {exc.strerror}")
                continue
            loaded, failed = load("<stdin>" if name == "-" else name, text)
            documents += loaded
            errors += failed
        children, problems = render_named(documents, args.assume_gateways_allow_all_namespaces)
        for line in errors + problems:
            print("render: " + line.replace("\n", "\\n"), file=sys.stderr)  # one line each
        if errors or problems:
            return 1
        yaml.safe_dump_all(children, sys.stdout, sort_keys=False)
    elif args.command == "crds":
        print(f"wrote {podtemplate.write()}")
        for name, crd in crds().items():
            path = Path(args.out) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_crd(crd))
            print(f"wrote {path}")
    return 0


def dump_crd(crd: dict) -> str:
    header = "# Generated from hooks/models.py by `python -m hooks crds`; do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


if __name__ == "__main__":
    raise SystemExit(main())
