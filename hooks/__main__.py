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
from .models import API_VERSION
from .notebook import GATEWAYS, customize_notebook, sync_notebook


def render(documents: list[dict]) -> list[dict]:
    """Children of every JupyterGateway and JupyterNotebook in ``documents``, as on a first sync.

    A notebook's gateway is taken from the same documents when there, else assumed to exist.
    Secret data is redacted: this is a preview, not something to apply.
    """
    gateways = {}
    for doc in documents:
        if doc.get("kind") == "JupyterGateway":
            meta = doc["metadata"]
            gateways[f"{meta.get('namespace') or 'default'}/{meta['name']}"] = doc
    out = []
    for doc in documents:
        doc = {**doc, "metadata": {"namespace": "default", **doc["metadata"]}}
        if doc.get("kind") == "JupyterGateway":
            role = customize_gateway(doc)["relatedResources"][0]["names"][0]
            # Preview as if the ClusterRole exists and may be bound.
            allowed = {"metadata": {"name": role, "labels": {KERNEL_ROLE_LABEL: "true"}}}
            out += sync_gateway(doc, {}, {CLUSTER_ROLES: {role: allowed}}, now())["children"]
        elif doc.get("kind") == "JupyterNotebook":
            related = {GATEWAYS: {}}
            for rule in customize_notebook(doc)["relatedResources"]:
                key = f"{rule['namespace']}/{rule['names'][0]}"
                name = rule["names"][0]
                gateway = {
                    "apiVersion": API_VERSION,
                    "kind": "JupyterGateway",
                    "metadata": {"name": name, "namespace": rule["namespace"]},
                    "spec": {},
                }
                related[GATEWAYS][key] = gateways.get(key, gateway)
            result = sync_notebook(doc, {}, related, now(), "<generated-at-first-sync>")
            out += result["children"]
            conditions = [c for c in result["status"].get("conditions", []) if c["type"] == "Ready"]
            if conditions and conditions[0]["reason"] == "InvalidSpec":
                print(f"# {doc['metadata']['name']}: {conditions[0]['message']}", file=sys.stderr)
    for child in out:
        if child["kind"] == "Secret":
            child["data"] = {key: "<redacted>" for key in child["data"]}
    return out


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
            "hooks.app:app", host=args.host, port=args.port, workers=args.workers, log_level="info", access_log=False
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


def dump_crd(crd: dict) -> str:
    header = "# Generated from hooks/models.py by `python -m hooks crds`; do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


if __name__ == "__main__":
    raise SystemExit(main())
