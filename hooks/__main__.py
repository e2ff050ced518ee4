"""Command line: ``python -m hooks serve|render|crds``.

serve   run the hook server (uvicorn)
render  print the children the hooks would create for the CRs in a YAML file
crds    write the CRDs generated from the models to manifests/crds/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .app import now
from .crd import crds
from .gateway import CLUSTER_ROLES, KERNEL_ROLE_LABEL, customize_gateway, sync_gateway
from .models import API_VERSION, DEFAULT_KERNEL_CLUSTER_ROLE
from .notebook import GATEWAYS, customize_notebook, sync_notebook

PLACEHOLDER = "<generated-at-first-sync>"


def render(documents: list[dict]) -> list[dict]:
    """Children of every JupyterGateway and JupyterNotebook in ``documents``, as on a first sync.

    What the customize hooks would read is assumed to exist and allow the CR: its gateway
    (taken from the same documents when there), ClusterRole and token Secrets. Secret data is
    redacted: this is a preview, not something to apply.
    """
    given = {
        f"{d['metadata'].get('namespace') or 'default'}/{d['metadata']['name']}": d
        for d in documents
        if d.get("kind") == "JupyterGateway"
    }
    out = []
    for doc in documents:
        doc = {**doc, "metadata": {"namespace": "default", **doc["metadata"]}}
        if doc.get("kind") == "JupyterGateway":
            result = sync_gateway(doc, {}, _assumed(customize_gateway(doc), doc, given), now(), PLACEHOLDER)
        elif doc.get("kind") == "JupyterNotebook":
            result = sync_notebook(doc, {}, _assumed(customize_notebook(doc), doc, given), now(), PLACEHOLDER)
        else:
            continue
        out += result["children"]
        ready = next(c for c in result["status"]["conditions"] if c["type"] == "Ready")
        if not result["children"]:
            print(f"# {doc['kind']} {doc['metadata']['name']}: {ready['reason']}: {ready['message']}", file=sys.stderr)
    for child in out:
        if child["kind"] == "Secret":
            child["data"] = {key: "<redacted>" for key in child["data"]}
    return out


def _assumed(customized: dict, doc: dict, given: dict) -> dict:
    related: dict = {}
    for rule in customized["relatedResources"]:
        # A rule by label (the ClusterRoles approved for gateways): assume the gateways' roles are.
        roles = {(g.get("spec") or {}).get("clusterRole") or DEFAULT_KERNEL_CLUSTER_ROLE for g in given.values()}
        for name in rule.get("names") or sorted(roles | {DEFAULT_KERNEL_CLUSTER_ROLE}):
            _assume(related, rule, name, doc, given)
    return related


def _assume(related: dict, rule: dict, name: str, doc: dict, given: dict) -> None:
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
        obj = {**obj, "spec": {**(obj.get("spec") or {}), "allowedNamespaces": ["*"]}}
    else:
        token_key = ((doc.get("spec") or {}).get("auth") or {}).get("secretRef", {}).get("key", "token")
        obj = {"data": {"token": "cmVkYWN0ZWQ=", token_key: "cmVkYWN0ZWQ="}}
    kind = {"clusterroles": CLUSTER_ROLES, "jupytergateways": GATEWAYS, "secrets": "Secret.v1"}[rule["resource"]]
    related.setdefault(kind, {})[key] = obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hooks")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hook server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    show = sub.add_parser("render", help="print the children the hooks would create")
    show.add_argument("-f", "--filename", required=True, help="YAML file of CRs ('-' for stdin)")
    write = sub.add_parser("crds", help="write the generated CRDs")
    write.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "manifests" / "crds"))
    args = parser.parse_args(argv)

    if args.command == "serve":
        import uvicorn

        uvicorn.run(
            "hooks.app:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=False,
            loop=event_loop(args.workers),
            http="httptools",
        )
    elif args.command == "render":
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d]
        yaml.safe_dump_all(render(documents), sys.stdout, sort_keys=False)
    elif args.command == "crds":
        for name, crd in crds().items():
            path = Path(args.out) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_crd(crd))
            print(f"wrote {path}")
    return 0


def event_loop(workers: int) -> str:
    """The event loop uvicorn should use (measured in bench/RESULTS.md).

    One worker (the manifests' setting): the stdlib loop, because under a burst of new
    connections uvloop starved a few of them behind the CPU-bound handlers for up to 0.8 s.
    Several workers: uvloop, because there the stdlib loop leaves TCP_NODELAY off on the
    shared socket and every answer waits 40 ms for a delayed ACK.
    """
    return "asyncio" if workers == 1 else "uvloop"


def dump_crd(crd: dict) -> str:
    header = "# Generated from hooks/models.py by `python -m hooks crds`; do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


if __name__ == "__main__":
    raise SystemExit(main())
