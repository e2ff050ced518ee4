"""Reference (b): the style of Metacontroller's example hooks (examples/*/sync.py): a
single-threaded http.server, json.loads, the same pure function, json.dumps."""

import json
import secrets
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from hooks.app import now
from hooks.gateway import sync_gateway
from hooks.notebook import sync_notebook


class Controller(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        parent, children, related = request["parent"], request["children"], request.get("related", {})
        if self.path == "/sync/jupyternotebook":
            result = sync_notebook(parent, children, related, now(), secrets.token_hex(24))
        else:
            result = sync_gateway(parent, children, related, now(), secrets.token_hex(24))
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Controller).serve_forever()
