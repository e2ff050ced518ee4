"""The notebook's Jupyter Server configuration that holds no secret: a ConfigMap.

It carries ``jupyter_server_config.py`` of this package verbatim (a kernel websocket
connection class that lets JupyterLab's first handshake through a gateway succeed; see
that file) and is rendered only for a notebook that uses a gateway: without one, kernels
are local and the server's own connection class is the right one.
"""

from __future__ import annotations

from importlib.resources import files

from . import children as ch

CONFIG_DIR = "/etc/jupyter-notebook/server"
VOLUME = "jupyter-notebook-config"
FILE = "jupyter_server_config.py"
SOURCE = files(__package__).joinpath(FILE).read_text()
CONFIG_PATH = "JUPYTER_CONFIG_PATH"


def config_map_name(name: str) -> str:
    return f"{name}-notebook-config"


def config_map(name: str, namespace: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(name), "namespace": namespace, "labels": ch.labels("notebook", name)},
        "data": {FILE: SOURCE},
    }


def volume_and_mount(name: str) -> tuple[dict, dict]:
    volume = {"name": VOLUME, "configMap": {"name": config_map_name(name), "defaultMode": 0o444}}
    return volume, {"name": VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}


def with_config_dir(env: list[dict]) -> list[dict]:
    """``env`` with CONFIG_DIR first on JUPYTER_CONFIG_PATH (its other directories kept after it)."""
    others = [e["value"] for e in env if e["name"] == CONFIG_PATH]
    value = ":".join([CONFIG_DIR, *others])
    return [e for e in env if e["name"] != CONFIG_PATH] + [{"name": CONFIG_PATH, "value": value}]
