"""The gateway's journal of the kernels it culled, read by the front door.

Enterprise Gateway forgets a kernel it culls: its REST API then answers 404 and nothing says why
the kernel is gone. With the default ``cullConnected: false`` only a kernel no notebook tab is
connected to is culled, so there is no cell to print into at that moment; the user learns it when
they come back, in the first cell of their next kernel (kernel_notices, front_door).

kernel_metrics.MeteredKernelManager (in Enterprise Gateway) appends one JSON line per culled
kernel to a file in an emptyDir both containers of the gateway pod mount, Enterprise Gateway's
writable and the front door's read-only; the front door reads it when a kernel's owner starts
their next kernel. The file holds kernel ids, profiles and times only, and stays small: past
``MAX_BYTES`` it is rewritten with its last ``KEEP`` lines (of every notebook's kernels: a notice
not told by then is lost).

Standard library only: shipped beside kernel_metrics.py on the gateway's PYTHONPATH and beside
front_door.py in its ConfigMap.
"""

from __future__ import annotations

import json
import math
import os

FILE_NAME = "culled.jsonl"
MAX_BYTES = 256 * 1024
KEEP = 1000


def culled_line(kernel_id: str, profile: str, idle_seconds: float, at: float) -> str:
    """The journal's line for a kernel culled at ``at`` (epoch seconds) after ``idle_seconds``."""
    record = {"kernel_id": kernel_id, "profile": profile, "idle_seconds": round(idle_seconds), "at": at}
    return json.dumps(record, sort_keys=True)


def append(path: str, line: str, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
    """Append ``line``; past ``max_bytes``, keep the last ``keep`` lines (an atomic rename)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    if os.path.getsize(path) <= max_bytes:
        return
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()[-keep:]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("".join(f"{kept}\n" for kept in lines))
    os.replace(path + ".tmp", path)


def _seconds(value) -> bool:
    """A count of seconds the notice can print: not a bool, finite, from 0 to about year 5000."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1e11
    )


def parse(text: str) -> list[dict]:
    """The journal's records, in order; a line that is not one (torn, foreign) is skipped."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line nested too deep
            continue
        if (
            isinstance(record, dict)
            and isinstance(record.get("kernel_id"), str)
            and isinstance(record.get("profile"), str)
            and _seconds(record.get("idle_seconds"))
            and _seconds(record.get("at"))
        ):
            records.append(record)
    return records


class Journal:
    """The front door's view of the journal, re-read only when the file changed."""

    def __init__(self, path: str | None):
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._records: list[dict] = []

    def records(self) -> list[dict]:
        if not self.path:
            return []
        try:
            stat = os.stat(self.path)
            if (stat.st_mtime_ns, stat.st_size) != self._seen:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    self._records = parse(f.read(MAX_BYTES * 2))
                self._seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._seen, self._records = None, []
        return self._records


def culled_of(records: list[dict], owners: dict, me: tuple[str, str], new_kernel: str = "") -> list[dict]:
    """The records of kernels ``owners`` says were ``me``'s (but ``new_kernel``, the one just
    started), the last record per kernel, in order."""
    mine = {
        record["kernel_id"]: record
        for record in records
        if owners.get(record["kernel_id"]) == me and record["kernel_id"] != new_kernel
    }
    return sorted(mine.values(), key=lambda record: record["at"])
