"""A tiny JSON client for the local kube-apiserver (admin certificate), with a watch.

The kernel-pod tests read what Enterprise Gateway created (pods, quotas, claims) in polling
loops; kubectl would do, but a process per call is slow on a loaded 2-core machine.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any, what: str):
        self.status, self.body = status, body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{what}: {status} {message}")


class KubeApi:
    def __init__(self, server: str, context: ssl.SSLContext, timeout: float = 10):
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port
        self.context, self.timeout = context, timeout

    def _connection(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout or self.timeout)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        conn = self._connection()
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        parsed = json.loads(raw) if raw.startswith("{") else raw
        if resp.status >= 300:
            raise ApiError(resp.status, parsed, f"{method} {path}")
        return parsed

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str, grace_seconds: int | None = None) -> Any:
        body = None if grace_seconds is None else {"gracePeriodSeconds": grace_seconds}
        return self.request("DELETE", path, body)

    def pods(self, namespace: str | None = None, selector: str = "") -> list[dict]:
        base = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        query = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
        return self.get(base + query)["items"]
