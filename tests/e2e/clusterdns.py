"""The node's cluster DNS: `<service>.<namespace>.svc.cluster.local` -> the Service's ClusterIP.

No CoreDNS image exists without a registry, and the rendered pods reach each other by Service
name (the notebook's gateway URL), so the node runs this instead: a UDP server on the bridge's
address (the kubelet's clusterDNS) answering A queries from the Services the API server has.
Every other name gets NXDOMAIN: pods have no way out, so there is nothing to forward to.

    python clusterdns.py --listen 10.244.0.1 --kubeconfig admin.kubeconfig
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import ssl
import struct
import time
import urllib.request
from pathlib import Path

DOMAIN = "svc.cluster.local"
TTL = 5
A, IN = 1, 1
NOERROR, FORMERR, NXDOMAIN = 0, 1, 3


class Services:
    """ClusterIPs by (name, namespace), read from the API server; read again on a miss (at most once a second)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        self.url = cluster["server"] + "/api/v1/services"
        self.ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        self.ips: dict[tuple[str, str], str] = {}
        self.read_at = 0.0

    def _read(self) -> None:
        with urllib.request.urlopen(self.url, context=self.ctx, timeout=5) as r:
            items = json.loads(r.read())["items"]
        self.ips = {
            (s["metadata"]["name"], s["metadata"]["namespace"]): s["spec"]["clusterIP"]
            for s in items
            if s["spec"].get("clusterIP", "None") != "None"
        }
        self.read_at = time.monotonic()

    def lookup(self, name: str, namespace: str) -> str | None:
        if (name, namespace) not in self.ips and time.monotonic() - self.read_at > 1:
            self._read()
        return self.ips.get((name, namespace))


def parse_question(packet: bytes) -> tuple[int, int, str, int, int, bytes]:
    """(id, flags, name, qtype, qclass, raw question) of a one-question query."""
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("one question only")
    labels, i = [], 12
    while packet[i]:
        labels.append(packet[i + 1 : i + 1 + packet[i]].decode("ascii").lower())
        i += 1 + packet[i]
    qtype, qclass = struct.unpack("!HH", packet[i + 1 : i + 5])
    return ident, flags, ".".join(labels), qtype, qclass, packet[12 : i + 5]


def answer(packet: bytes, services: Services) -> bytes:
    try:
        ident, flags, name, qtype, qclass, question = parse_question(packet)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        return packet[:2] + struct.pack("!HHHHH", 0x8180 | FORMERR, 0, 0, 0, 0) if len(packet) >= 2 else b""
    rd = flags & 0x0100
    ip = None
    parts = name.removesuffix("." + DOMAIN).split(".")
    if name.endswith("." + DOMAIN) and len(parts) == 2:
        ip = services.lookup(parts[0], parts[1])
    if ip is None:
        return struct.pack("!HHHHHH", ident, 0x8080 | rd | NXDOMAIN, 1, 0, 0, 0) + question
    records = b""
    if qtype == A and qclass == IN:  # the name exists: other types get no records, not NXDOMAIN
        records = struct.pack("!HHHIH", 0xC00C, A, IN, TTL, 4) + ipaddress.IPv4Address(ip).packed
    return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, 1 if records else 0, 0, 0) + question + records


def resolve(name: str, server: str, port: int = 53) -> str | None:
    """The A record ``server`` gives for ``name`` (None: no answer), asked the way a pod asks."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", A, IN)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query, (server, port))
        reply = sock.recv(512)
    answers = struct.unpack("!H", reply[6:8])[0]
    return str(ipaddress.IPv4Address(reply[-4:])) if answers else None


def serve(listen: str, kubeconfig: Path, port: int = 53) -> None:
    services = Services(kubeconfig)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((listen, port))
        print(f"clusterdns: serving *.{DOMAIN} on {listen}:{port}", flush=True)
        while True:
            packet, client = sock.recvfrom(512)
            try:
                reply = answer(packet, services)
            except OSError as exc:  # the API server away: SERVFAIL, try again later
                print(f"clusterdns: {exc}", flush=True)
                reply = packet[:2] + struct.pack("!HHHHH", 0x8182, 0, 0, 0, 0)
            if reply:
                sock.sendto(reply, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    serve(args.listen, args.kubeconfig, args.port)


if __name__ == "__main__":
    main()
