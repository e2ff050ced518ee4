"""Jupyter Server configuration the JupyterNotebook hook mounts into every notebook (ConfigMap).

Not imported by the hooks: this file is the content of the notebook's ConfigMap, read by the
notebook's Jupyter Server from a directory on JUPYTER_CONFIG_PATH (``c`` is the config object).

Why: JupyterLab 4 opens a kernel websocket offering the subprotocol
``v1.kernel.websocket.jupyter.org``. In gateway mode Jupyter Server (since jupyter_server#1310)
selects none, because Enterprise Gateway 3.3 (jupyter_server 1.24) only speaks the JSON
("legacy") protocol. Chromium then fails the handshake; Lab retries at once without a
subprotocol, and the server's two upstream connections for the same session race on the
gateway ("Replacing stale connection"), which can leave the first cell at ``[*]``.

This connection class accepts v1 when the browser offers it and translates each message
between v1 (browser side) and JSON (gateway side), so the first handshake succeeds and no
second connection is made. A client that offers no subprotocol gets the plain proxy, as before.

It also makes the server present the notebook's identity to the gateway: the projected
ServiceAccount token named by JUPYTER_GATEWAY_TOKEN_FILE (audience: the gateway), sent as
``Authorization: Bearer`` and re-read before every request to the gateway, because the kubelet
replaces it before it expires (GatewayClient.gateway_token_renewer_class, Jupyter Server 2.0 or
later; the initial auth_token is set because 2.8 asks the renewer only when one is).
"""

import json
import os

from jupyter_client.jsonutil import json_default
from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from tornado.websocket import WebSocketClosedError
from traitlets import Unicode

V1 = "v1.kernel.websocket.jupyter.org"
PARTS = ("header", "parent_header", "metadata", "content")


def v1_to_gateway(frame: bytes) -> str | bytes:
    """A v1 frame from the browser as the gateway's JSON text (binary only if it has buffers)."""
    channel, parts = deserialize_msg_from_ws_v1(frame)
    msg = {key: json.loads(part) for key, part in zip(PARTS, parts[:4], strict=True)}
    msg["channel"] = channel
    msg["buffers"] = [bytes(b) for b in parts[4:]]
    return serialize_binary_message(msg) if msg["buffers"] else json.dumps(msg)


def gateway_to_v1(message: str | bytes) -> bytes:
    """A gateway message (JSON text, or the JSON-with-buffers binary form) as a v1 frame."""
    if isinstance(message, str) and message.startswith("{"):
        msg, buffers = json.loads(message), []
    else:  # the gateway client hands binary frames over utf-8 decoded
        msg = deserialize_binary_message(message.encode("utf-8") if isinstance(message, str) else message)
        buffers = msg["buffers"]
    parts = [json.dumps(msg.get(key) or {}, default=json_default).encode() for key in PARTS]
    return serialize_msg_to_ws_v1([*parts, *buffers], msg.get("channel") or "iopub")


class V1GatewayWebSocketConnection(GatewayWebSocketConnection):
    """The gateway proxy, speaking v1 to browsers that offer it and JSON to the gateway."""

    # None: the handler selects v1 if the client offers it, else no subprotocol (JSON).
    kernel_ws_protocol = Unicode(None, allow_none=True, config=True)

    @property
    def speaks_v1(self) -> bool:
        try:
            return self.websocket_handler.selected_subprotocol == V1
        except (AssertionError, AttributeError):  # tornado: the browser's side has closed
            return False

    def _write_message(self, message):
        """Send one browser message to the gateway (the base class calls this once the
        upstream connection is open); binary frames as binary, which the base class does not."""
        try:
            if self.speaks_v1:
                message = v1_to_gateway(message)
            if not self.disconnected and self.ws is not None:
                self.ws.write_message(message, binary=isinstance(message, bytes))
        except Exception as e:
            self.log.error(f"Exception writing message to websocket: {e}")

    def handle_outgoing_message(self, incoming_msg, *args):
        if not self.speaks_v1:
            return super().handle_outgoing_message(incoming_msg, *args)
        try:
            self.websocket_handler.write_message(gateway_to_v1(incoming_msg), binary=True)
        except WebSocketClosedError:
            self.log.debug("Notebook client closed websocket connection - message dropped")


def read_gateway_token():
    """The current projected token, or None when the file is missing or empty."""
    path = os.environ.get("JUPYTER_GATEWAY_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


c = get_config()  # noqa: F821 -- provided by Jupyter's config loader
c.ServerApp.kernel_websocket_connection_class = V1GatewayWebSocketConnection

if os.environ.get("JUPYTER_GATEWAY_TOKEN_FILE"):
    c.GatewayClient.auth_scheme = "Bearer"
    # The renewer is asked only when a token is set; the file may be empty at start in theory.
    c.GatewayClient.auth_token = read_gateway_token() or "-"
    try:
        from jupyter_server.gateway.gateway_client import GatewayTokenRenewerBase
    except ImportError:  # an older server sends the token it read at start
        GatewayTokenRenewerBase = None

    if GatewayTokenRenewerBase is not None:

        class ProjectedTokenRenewer(GatewayTokenRenewerBase):
            """The token file's current content, for each request to the gateway."""

            def get_token(self, auth_header_key, auth_scheme, auth_token, **kwargs):
                return read_gateway_token() or auth_token

        c.GatewayClient.gateway_token_renewer_class = ProjectedTokenRenewer
