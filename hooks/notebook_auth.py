"""The notebook's secrets: its access token, its password hash and its gateway's token.

They reach the Jupyter server only as files from Secrets: the token file named by
JUPYTER_TOKEN_FILE, and a jupyter_server_config.json (password hash, the gateway's
token as GatewayClient.auth_token) in the directory named by JUPYTER_CONFIG_PATH.
Never argv, never environment: Jupyter Server logs its environment when it starts a
kernel through a gateway.
"""

from __future__ import annotations

import hashlib
import json
import re

from . import children as ch
from .models import JupyterNotebookSpec

AUTH_DIR = "/etc/jupyter-notebook/auth"  # the hook's Secret
TOKEN_DIR = "/etc/jupyter-notebook/token"  # the user's Secret (spec.auth.secretRef)
AUTH_VOLUME = "jupyter-notebook-auth"
TOKEN_VOLUME = "jupyter-notebook-token"
TOKEN_FILE = "token"
CONFIG_FILE = "jupyter_server_config.json"
_PASSWORD_HASH = re.compile(r"^(argon2:.+|(md5|sha1|sha224|sha256|sha384|sha512|blake2b|blake2s):[^:]*:[0-9a-f]+)$")


def secret_name(name: str) -> str:
    return f"{name}-notebook-auth"


def auth_secret(
    name: str,
    namespace: str,
    spec: JupyterNotebookSpec,
    observed: dict | None,
    new_token: str,
    uid: str,
    gateway_token: str | None,
    password: str | None,
) -> dict | None:
    """The Secret the hook owns: the token (unless the user names their own) and the config file.

    ``password`` is the text of the key spec.auth.passwordSecretRef names (the hook reads that
    Secret as a related object); only its hash reaches the config file.
    """
    auth = spec.auth
    data: dict[str, str] = {}
    if not (auth and auth.secret_ref):
        kept = (observed.get("data") if isinstance(observed, dict) else None) or {}
        if auth and auth.mode == "disable":
            data[TOKEN_FILE] = ""  # an empty token turns authentication off
        elif isinstance(kept, dict) and isinstance(kept.get(TOKEN_FILE), str) and kept[TOKEN_FILE]:
            data[TOKEN_FILE] = kept[TOKEN_FILE]  # generated once, then kept
        else:
            data[TOKEN_FILE] = ch.b64(new_token)
    config = {}
    if password:
        config["PasswordIdentityProvider"] = {"hashed_password": password_hash(password, uid)}
    if gateway_token:
        config["GatewayClient"] = {"auth_token": gateway_token}
    if config:
        data[CONFIG_FILE] = ch.b64(json.dumps(config, sort_keys=True))
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(name), "namespace": namespace, "labels": ch.labels("notebook", name)},
        "type": "Opaque",
        "data": data,
    }


def kept_secret(secret: dict, gateway_token: str | None) -> dict:
    """The hook's Secret as a keep path returns it: only the keys the hook writes, no stringData,
    and a gateway token in the config file only if it is ``gateway_token``, the one the notebook
    may hold now (None: none). A config file that is not a JSON object is dropped."""
    data = ch.as_dict(secret.get("data"))
    out = {TOKEN_FILE: data[TOKEN_FILE]} if isinstance(data.get(TOKEN_FILE), str) else {}
    try:
        config = json.loads(ch.decoded(data.get(CONFIG_FILE)) or "null")
    except ValueError:
        config = None
    if isinstance(config, dict):
        client = ch.as_dict(config.get("GatewayClient"))
        if "GatewayClient" in config and (gateway_token is None or client.get("auth_token") != gateway_token):
            config = {k: v for k, v in config.items() if k != "GatewayClient"}
            if config:
                out[CONFIG_FILE] = ch.b64(json.dumps(config, sort_keys=True))
        else:
            out[CONFIG_FILE] = data[CONFIG_FILE]
    body = {k: v for k, v in secret.items() if k != "stringData"}
    return body if body.get("data") == out else {**body, "data": out}


def password_secret_rule(parent: dict) -> list[dict]:
    """The customize rule for the Secret spec.auth.passwordSecretRef names (in the notebook's namespace)."""
    spec = parent.get("spec") if isinstance(parent.get("spec"), dict) else {}
    auth = spec.get("auth") if isinstance(spec.get("auth"), dict) else {}
    ref = auth.get("passwordSecretRef") if isinstance(auth.get("passwordSecretRef"), dict) else {}
    if not (isinstance(ref.get("name"), str) and ref["name"]):
        return []
    namespace = parent["metadata"].get("namespace") or "default"
    return [{"apiVersion": "v1", "resource": "secrets", "namespace": namespace, "names": [ref["name"]]}]


def password(spec: JupyterNotebookSpec, namespace: str, related: dict) -> tuple[str | None, str | None]:
    """(password, problem): the text of the key spec.auth.passwordSecretRef names, if any."""
    ref = spec.auth.password_secret_ref if spec.auth else None
    if ref is None:
        return None, None
    secret = (related.get(ch.SECRETS) or {}).get(f"{namespace}/{ref.name}")
    value = ch.secret_value(secret, ref.key)
    if not value:
        return (
            None,
            f"spec.auth.passwordSecretRef: Secret {namespace}/{ref.name} has no key {ref.key} holding a password",
        )
    return value, None


def password_hash(password: str, uid: str) -> str:
    """A Jupyter password hash; a salt derived from the parent keeps the hook pure and stable."""
    if _PASSWORD_HASH.match(password):
        return password
    salt = hashlib.sha256(f"salt:{uid}".encode()).hexdigest()[:12]
    return f"sha256:{salt}:{hashlib.sha256((password + salt).encode()).hexdigest()}"


def volumes_mounts_env(spec: JupyterNotebookSpec, secret: dict | None) -> tuple[list, list, list]:
    """The volumes, the notebook container's mounts and its (secret-free) variables."""
    volumes, mounts = [], []
    if secret is not None:
        volumes.append(
            {"name": AUTH_VOLUME, "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o440}}
        )
        mounts.append({"name": AUTH_VOLUME, "mountPath": AUTH_DIR, "readOnly": True})
    ref = spec.auth.secret_ref if spec.auth else None
    if ref:
        items = [{"key": ref.key, "path": TOKEN_FILE}]
        volumes.append({"name": TOKEN_VOLUME, "secret": {"secretName": ref.name, "defaultMode": 0o440, "items": items}})
        mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    env = [{"name": "JUPYTER_TOKEN_FILE", "value": f"{TOKEN_DIR if ref else AUTH_DIR}/{TOKEN_FILE}"}]
    if secret is not None and CONFIG_FILE in secret["data"]:
        env.append({"name": "JUPYTER_CONFIG_PATH", "value": AUTH_DIR})
    return volumes, mounts, env
