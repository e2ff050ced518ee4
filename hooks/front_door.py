"""The gateway's front door: Kubernetes identity in front of one shared Enterprise Gateway.

Enterprise Gateway 3.3 knows one token and no users: whoever holds it lists, attaches to,
interrupts and deletes every kernel. This process listens on the gateway's Service port and
is the only way in; Enterprise Gateway listens on 127.0.0.1 behind it, with a random token
only this process sends. For every request it:

1. authenticates the caller: ``Authorization: Bearer <token>``, a projected ServiceAccount
   token of the notebook's pod whose audience is this gateway, checked with a TokenReview
   (cached ``review_cache_seconds`` by the token's SHA-256, never by the token). The identity is
   the ServiceAccount's ``system:serviceaccount:<namespace>:<notebook>-notebook``. No token, a
   forged one, an expired one or one of another audience: 401;
2. authorizes it: the namespace must be in the allowed-namespaces file (re-read when it changes,
   so a gateway owner's revocation applies on the caller's next request), and the ServiceAccount
   must be a notebook's: 403 otherwise;
3. confines it to its own kernels: a kernel start is stamped with the caller's namespace and
   notebook (``KERNEL_NAMESPACE``, ``KERNEL_NOTEBOOK``, ``KERNEL_USERNAME``; a client's
   ``KERNEL_ID`` is dropped), the kernel list is filtered to the caller's kernels, and any
   other kernel's URL (REST or the ``/channels`` websocket) is a 404, as for a kernel that does
   not exist. Kernelspecs are open to every allowed caller; everything else (sessions, ...) 404.

Ownership is what this process recorded when it started the kernel. After a restart of this
process (not of Enterprise Gateway) it is read back from the kernel pod: the pod of kernel
``<id>`` in the caller's namespace labelled with this gateway and the caller's notebook (the
kernel pod template copies ``KERNEL_NOTEBOOK`` into a label).

    python front_door.py CONFIG.json

Standard library and tornado (Enterprise Gateway's own dependency) only: it runs in the gateway
image's interpreter. The hook ships this file's text, kernel_notices.py's (why a kernel died,
told on its websocket) and kernel_ends.py's (the kernels the gateway culled, told in their owner's
next kernel), in the gateway's front-door ConfigMap. The functions
above ``FrontDoor`` are pure and unit-tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import sys
import time
import urllib.parse

try:
    from . import kernel_ends, kernel_notices  # imported from the hooks package (its unit tests)
except ImportError:
    import kernel_ends  # run as a script in the gateway pod: the files beside this one
    import kernel_notices

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
NOTEBOOK_SUFFIX = "-notebook"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
NOTEBOOK_LABEL = "kubeflow.tkestack.io/notebook"
# Variables the front door decides for every kernel start; a client's value (in any case) is
# replaced. KERNEL_ID would let a client choose the new kernel's id.
OWNER_VARS = ("KERNEL_NAMESPACE", "KERNEL_NOTEBOOK", "KERNEL_USERNAME")
DROPPED_VARS = ("KERNEL_ID",)
IN_CLUSTER = "/var/run/secrets/kubernetes.io/serviceaccount"
HEALTH_PATH = "/healthz"
MAX_BODY = 1 << 20

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KERNEL_PATH = re.compile(r"^/api/kernels/([^/]+)(/.*)?$")
_OPEN_PATHS = re.compile(r"^/api/?$|^/api/kernelspecs(/.*)?$|^/kernelspecs/.+$")

log = logging.getLogger("front_door")


class Denied(Exception):
    """A request the front door refuses; ``code`` is the HTTP status."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; Denied(401) otherwise."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 16384:
        raise Denied(401, "a Bearer token of this gateway's audience is required")
    return token


def token_key(token: str) -> str:
    """What the review cache is keyed by: the token itself is never kept or logged."""
    return hashlib.sha256(token.encode()).hexdigest()


def identity(review_status: dict, audience: str) -> tuple[str, str, str]:
    """(namespace, notebook, pod name) from a TokenReview's status; Denied if the token is not
    a valid token of this audience (401) or not a notebook's ServiceAccount (403)."""
    status = review_status if isinstance(review_status, dict) else {}
    audiences = status.get("audiences")
    if status.get("authenticated") is not True or not isinstance(audiences, list) or audience not in audiences:
        raise Denied(401, "the token is not a valid ServiceAccount token for this gateway")
    user = status.get("user") if isinstance(status.get("user"), dict) else {}
    username = user.get("username") if isinstance(user.get("username"), str) else ""
    parts = username[len(SERVICE_ACCOUNT_PREFIX) :].split(":") if username.startswith(SERVICE_ACCOUNT_PREFIX) else []
    if len(parts) != 2 or not parts[1].endswith(NOTEBOOK_SUFFIX):
        raise Denied(403, f"{username or 'this identity'} is not a notebook's ServiceAccount (<notebook>-notebook)")
    namespace, notebook = parts[0], parts[1][: -len(NOTEBOOK_SUFFIX)]
    if not (_DNS_LABEL.match(namespace) and _DNS_LABEL.match(notebook)):
        raise Denied(403, f"{username} is not a notebook's ServiceAccount (<notebook>-notebook)")
    extra = user.get("extra") if isinstance(user.get("extra"), dict) else {}
    pods = extra.get(POD_NAME_EXTRA)
    pod = pods[0] if isinstance(pods, list) and pods and isinstance(pods[0], str) else ""
    return namespace, notebook, pod


def parse_allowed(text: str) -> frozenset[str]:
    """The allowed-namespaces file: a JSON list of namespaces, ``"*"`` for all."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError("the allowed-namespaces file must be a JSON list of names")
    return frozenset(value)


def allowed(namespace: str, namespaces: frozenset[str]) -> bool:
    return "*" in namespaces or namespace in namespaces


def stamped_body(body: bytes, namespace: str, notebook: str) -> bytes:
    """A kernel start's body with the owner's variables set, whatever the client sent."""
    try:
        model = json.loads(body or b"{}")
    except ValueError:
        raise Denied(400, "the kernel start's body is not JSON") from None
    if not isinstance(model, dict):
        raise Denied(400, "the kernel start's body must be a JSON object")
    env = model.get("env", {})
    if not isinstance(env, dict):
        raise Denied(400, "env must be a JSON object")
    decided = {n.upper() for n in OWNER_VARS + DROPPED_VARS}
    env = {k: v for k, v in env.items() if not (isinstance(k, str) and k.upper() in decided)}
    env.update({"KERNEL_NAMESPACE": namespace, "KERNEL_NOTEBOOK": notebook, "KERNEL_USERNAME": notebook})
    return json.dumps({**model, "env": env}).encode()


def kernel_id_of(path: str) -> str | None:
    """The kernel a path is about (``/api/kernels/<id>[/...]``), or None."""
    match = _KERNEL_PATH.match(path)
    return urllib.parse.unquote(match.group(1)) if match else None


def route(method: str, path: str) -> str:
    """What a request is: ``list``, ``start``, ``kernel`` (one kernel's URL), ``open`` (the API's
    root and kernelspecs) or ``hidden`` (everything else, answered 404)."""
    if path in ("/api/kernels", "/api/kernels/"):
        return {"GET": "list", "POST": "start"}.get(method, "hidden")
    if kernel_id_of(path) is not None:
        return "kernel"
    if method == "GET" and _OPEN_PATHS.match(path):
        return "open"
    return "hidden"


def own_kernels(kernels, owners: dict, me: tuple[str, str]) -> list:
    """The entries of Enterprise Gateway's kernel list that ``me`` owns."""
    if not isinstance(kernels, list):
        return []
    return [k for k in kernels if isinstance(k, dict) and owners.get(k.get("id")) == me]


def owners_from_pods(pods: list, gateway_labels: dict) -> dict[str, tuple[str, str]]:
    """Kernel id -> owner, read from kernel pods: only pods carrying this gateway's labels count,
    and an id carried by more than one of them has no owner (someone copied the label)."""
    found: dict[str, list] = {}
    for pod in pods if isinstance(pods, list) else []:
        meta = pod.get("metadata") if isinstance(pod, dict) else None
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(labels, dict) or any(labels.get(k) != v for k, v in gateway_labels.items()):
            continue
        kernel_id, notebook, namespace = labels.get("kernel_id"), labels.get(NOTEBOOK_LABEL), meta.get("namespace")
        if isinstance(kernel_id, str) and isinstance(notebook, str) and notebook and isinstance(namespace, str):
            found.setdefault(kernel_id, []).append((namespace, notebook))
    return {kernel_id: owners[0] for kernel_id, owners in found.items() if len(owners) == 1}


def owner_from_pods(pods: list, gateway_labels: dict) -> tuple[str, str] | None:
    """The owner of one kernel from its pods (a pod list for label kernel_id=<id>)."""
    owners = owners_from_pods(pods, gateway_labels)
    return next(iter(owners.values())) if len(owners) == 1 else None


class ReviewCache:
    """TokenReview outcomes (an identity or a Denied) for ``ttl`` seconds, by token hash."""

    def __init__(self, ttl: float, clock=time.monotonic, limit: int = 10000):
        self.ttl, self.clock, self.limit = ttl, clock, limit
        self._entries: dict[str, tuple[float, object]] = {}

    def get(self, key: str):
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, value) -> None:
        if len(self._entries) >= self.limit:
            now = self.clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self.limit:
                self._entries.clear()
        self._entries[key] = (self.clock() + self.ttl, value)


class AllowedFile:
    """The allowed-namespaces file, re-read when its modification time or inode changes (a
    ConfigMap volume replaces it by swapping a symlink). An unreadable file allows nothing."""

    def __init__(self, path: str):
        self.path = path
        self._stamp = None
        self._value: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    self._value = parse_allowed(f.read())
                self._stamp = stamp
        except (OSError, ValueError) as exc:
            log.error("allowed namespaces unreadable (%s): allowing none", exc)
            self._stamp, self._value = None, frozenset()
        return self._value


def _server(config: dict):  # pragma: no cover - exercised by the integration tests
    """The tornado application; imported here so the pure part needs no tornado."""
    from tornado import httpclient, web, websocket

    # Enterprise Gateway listens on the pod's loopback only (the containers share it).
    upstream = f"http://127.0.0.1:{int(config['upstream_port'])}"
    audience = config["audience"]
    sa_dir = config.get("service_account_dir", IN_CLUSTER)
    api_server = config.get("api_server") or (
        f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
    )
    allowed_file = AllowedFile(config["allowed_namespaces_file"])
    cache = ReviewCache(float(config.get("review_cache_seconds", 30)))
    gateway_labels = dict(config["gateway_labels"])
    timeout = float(config.get("request_timeout", 120))
    owners: dict[str, tuple[str, str]] = {}
    notices = kernel_notices.Notices()
    journal = kernel_ends.Journal(config.get("kernel_ends_file"))
    http = httpclient.AsyncHTTPClient()
    ca = os.path.join(sa_dir, "ca.crt")

    def upstream_auth() -> dict:
        """Enterprise Gateway's own token (spec.auth), read per request so a new one needs no restart."""
        if not config.get("upstream_token_file"):
            return {}
        with open(config["upstream_token_file"], encoding="utf-8") as f:
            return {"Authorization": f"token {f.read().strip()}"}

    def api_headers() -> dict:
        with open(os.path.join(sa_dir, "token"), encoding="utf-8") as f:
            return {"Authorization": f"Bearer {f.read().strip()}", "Content-Type": "application/json"}

    async def api(method: str, path: str, body: dict | None = None) -> dict:
        res = await http.fetch(
            api_server + path,
            method=method,
            headers=api_headers(),
            body=json.dumps(body) if body is not None else None,
            ca_certs=ca,
            request_timeout=10,
        )
        return json.loads(res.body)

    async def review(token: str) -> tuple[str, str, str]:
        key = token_key(token)
        outcome = cache.get(key)
        if outcome is None:
            review = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token, "audiences": [audience]},
            }
            try:
                result = await api("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
                outcome = identity(result.get("status") or {}, audience)
            except Denied as exc:
                outcome = exc
            except Exception as exc:  # the API server: not cached, the caller may retry
                log.error("TokenReview failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                raise Denied(503, "cannot check the token now") from None
            cache.put(key, outcome)
        if isinstance(outcome, Denied):
            raise outcome
        return outcome

    looked_up: dict[tuple[str, str], float] = {}

    async def learn_owners(me: tuple[str, str]) -> None:
        """After a restart of this process: the caller's kernels, from its kernel pods (at most every 5 s)."""
        if time.monotonic() - looked_up.get(me, -10.0) < 5:
            return
        looked_up[me] = time.monotonic()
        labels = {**gateway_labels, NOTEBOOK_LABEL: me[1]}
        query = urllib.parse.urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))})
        try:
            pods = (await api("GET", f"/api/v1/namespaces/{me[0]}/pods?{query}")).get("items") or []
        except Exception as exc:
            log.error("kernels of %s/%s: cannot read their pods: %s", *me, str(exc).splitlines()[0])
            return
        for kernel_id, found in owners_from_pods(pods, gateway_labels).items():
            owners.setdefault(kernel_id, found)

    async def owner(kernel_id: str, me: tuple[str, str]) -> tuple[str, str] | None:
        if kernel_id in owners:
            return owners[kernel_id]
        if not _DNS_LABEL.match(kernel_id):
            return None
        selector = ",".join([f"kernel_id={kernel_id}", *(f"{k}={v}" for k, v in sorted(gateway_labels.items()))])
        query = urllib.parse.urlencode({"labelSelector": selector})
        try:
            pods = (await api("GET", f"/api/v1/namespaces/{me[0]}/pods?{query}")).get("items") or []
        except Exception as exc:
            log.error("kernel %s: cannot read its pod: %s", kernel_id, str(exc).splitlines()[0])
            return None
        found = owner_from_pods(pods, gateway_labels)
        if found is not None:
            owners[kernel_id] = found
        return found

    def tell_culled(kernel_id: str, me: tuple[str, str]) -> None:
        """The first cell of ``me``'s new kernel says which of their kernels the gateway culled."""
        try:
            culled = kernel_ends.culled_of(journal.records(), owners, me, kernel_id)
        except Exception as exc:  # the kernel started all the same; only the notice is lost
            log.error("the journal of culled kernels cannot be read: %s", exc)
            return
        for record in culled:
            owners.pop(record["kernel_id"], None)  # told once; the gateway has forgotten it too
            notices.forget(record["kernel_id"])
        text = kernel_notices.culled_text(culled)
        if text:
            notices.wait(kernel_id, text)
            log.info("kernel %s: its first cell tells %s/%s of %d culled kernels", kernel_id, *me, len(culled))

    class Health(web.RequestHandler):
        """The probes' endpoint (no identity): 200 when Enterprise Gateway answers behind the door."""

        async def get(self):
            res = await http.fetch(upstream + "/api", headers=upstream_auth(), raise_error=False, request_timeout=5)
            self.set_status(200 if res.code == 200 else 503)
            self.finish({"gateway": res.code})

    class Base(web.RequestHandler):
        me: tuple[str, str]

        async def prepare(self):
            try:
                token = bearer_token(self.request.headers.get("Authorization"))
                namespace, notebook, pod = await review(token)
                if not allowed(namespace, allowed_file.current()):
                    raise Denied(403, f"namespace {namespace} may not use this gateway")
            except Denied as exc:
                log.info("%s %s refused %d: %s", self.request.method, self.request.path, exc.code, exc)
                self.set_status(exc.code)
                self.finish({"message": str(exc)})
                return
            self.me = (namespace, notebook)
            self.pod = pod
            kind = route(self.request.method, self.request.path)
            if kind == "kernel" and await owner(kernel_id_of(self.request.path), self.me) != self.me:
                kind = "hidden"
            if kind == "hidden":
                self.set_status(404)
                self.finish({"message": "Not Found"})

        def check_xsrf_cookie(self):  # API clients send a token, not cookies
            return None

    class Proxy(Base):
        SUPPORTED_METHODS = ("GET", "POST", "DELETE", "PATCH", "PUT")

        async def forward(self):
            body = self.request.body if self.request.method in ("POST", "PATCH", "PUT") else None
            started = route(self.request.method, self.request.path) == "start"
            if started:
                body = stamped_body(body, *self.me)
            headers = upstream_auth()
            if self.request.headers.get("Content-Type"):
                headers["Content-Type"] = self.request.headers["Content-Type"]
            res = await http.fetch(
                upstream + self.request.uri,
                method=self.request.method,
                headers=headers,
                body=body,
                raise_error=False,
                request_timeout=timeout,
                allow_nonstandard_methods=True,
            )
            payload = res.body or b""
            if res.code == 201 and started:
                kernel = json.loads(payload)
                owners[kernel["id"]] = self.me
                log.info("kernel %s started for %s/%s (pod %s)", kernel["id"], *self.me, self.pod or "-")
                tell_culled(kernel["id"], self.me)
            elif res.code == 200 and route(self.request.method, self.request.path) == "list":
                listed = json.loads(payload)
                if any(isinstance(k, dict) and k.get("id") not in owners for k in listed or []):
                    await learn_owners(self.me)
                payload = json.dumps(own_kernels(listed, owners, self.me)).encode()
            elif res.code in (200, 204) and self.request.method == "DELETE":
                owners.pop(kernel_id_of(self.request.path), None)
                notices.forget(kernel_id_of(self.request.path))
            if res.code == 599:  # tornado's "no response": Enterprise Gateway is down or too slow
                res.code, payload = 502, json.dumps({"message": "the gateway is not answering"}).encode()
            self.set_status(res.code)
            if res.headers.get("Content-Type"):
                self.set_header("Content-Type", res.headers["Content-Type"])
            if res.code != 204:
                self.write(payload)

        async def get(self):
            await self.forward()

        async def post(self):
            try:
                await self.forward()
            except Denied as exc:
                self.set_status(exc.code)
                self.write({"message": str(exc)})

        async def delete(self):
            await self.forward()

        patch = put = post

    class Channels(Base, websocket.WebSocketHandler):
        """A kernel's websocket, relayed frame by frame to Enterprise Gateway; when the kernel
        died, the user is told why first (kernel_notices)."""

        upstream_ws = None
        # Frames from the gateway held back: before the client's side is open, or while the
        # reason of a kernel's death is fetched (the notice goes before them, in order).
        pending: list | None = None
        telling = None  # the task fetching why the kernel died

        async def get(self, *args):
            self.pending = []
            self.kernel_id = kernel_id_of(self.request.path)
            url = upstream.replace("http", "ws", 1) + self.request.uri
            request = httpclient.HTTPRequest(url, headers=upstream_auth())
            try:
                self.upstream_ws = await websocket.websocket_connect(request, on_message_callback=self.from_gateway)
            except Exception as exc:
                self.set_status(502)
                self.finish({"message": f"the gateway refused the kernel connection: {exc}"})
                return
            await super().get(*args)

        def open(self, *args):
            self.release([])

        def release(self, first: list) -> None:
            held, self.pending = self.pending or [], None
            for message in first:
                self.relay(message)
            for message in held:
                self.from_gateway(message)

        def relay(self, message) -> None:
            with contextlib.suppress(websocket.WebSocketClosedError):
                self.write_message(message, binary=isinstance(message, bytes))

        def from_gateway(self, message):
            if self.pending is not None:
                self.pending.append(message)
                return
            if message is None:
                self.close()
                return
            state = notices.gateway_frame(self.kernel_id, message)
            if state is None:
                self.relay(message)
                return
            self.pending = []
            self.telling = asyncio.ensure_future(self.tell_why(state, message))

        async def tell_why(self, state: str, status_frame) -> None:
            """The notice of why the kernel died (EG's model has it as ``last_end``), then the status."""
            notice = None
            try:
                path = f"/api/kernels/{urllib.parse.quote(self.kernel_id, safe='')}"
                res = await http.fetch(upstream + path, headers=upstream_auth(), raise_error=False, request_timeout=5)
                model = json.loads(res.body) if res.code == 200 else {}
                notice = notices.died(self.kernel_id, state, model.get("last_end"), time.time())
            except Exception as exc:  # the user still gets JupyterLab's own dialog
                log.error("kernel %s: cannot read why it died: %s", self.kernel_id, exc)
            if notice:
                log.info("kernel %s %s: the user is told why", self.kernel_id, state)
            self.release([notice, status_frame] if notice else [status_frame])

        async def on_message(self, message):
            notice = notices.client_frame(self.kernel_id, message)
            if notice:
                self.relay(notice)
            if self.upstream_ws is not None:
                await self.upstream_ws.write_message(message, binary=isinstance(message, bytes))

        def on_close(self):
            if self.upstream_ws is not None:
                self.upstream_ws.close()

        def select_subprotocol(self, subprotocols):
            return None  # Enterprise Gateway 3.3 speaks the JSON protocol only

    return web.Application(
        [(HEALTH_PATH, Health), (r"/api/kernels/[^/]+/channels", Channels), (r".*", Proxy)],
        websocket_ping_interval=30,
    )


def main(argv: list) -> int:  # pragma: no cover - exercised by the integration tests
    if len(argv) != 2:
        print("usage: front_door.py CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[front_door %(levelname)s %(asctime)s] %(message)s")
    with open(argv[1], encoding="utf-8") as f:
        config = json.load(f)
    from tornado import ioloop

    app = _server(config)
    # A kernel start's body is a few KiB (a name and KERNEL_* variables); nothing larger is proxied.
    app.listen(int(config["port"]), address=config.get("address", "0.0.0.0"), xheaders=False, max_body_size=MAX_BODY)
    log.info("listening on %s, gateway on loopback port %s", config["port"], config["upstream_port"])
    loop = ioloop.IOLoop.current()
    # PID 1 of its container: without a handler the kernel drops SIGTERM, and every rollout
    # waited the whole grace period (30 s, seen on the real node) for the kubelet's SIGKILL.
    signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
    loop.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
