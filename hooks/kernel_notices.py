"""Why a kernel died, told in the notebook: the front door's notices on a kernel's websocket.

When a kernel pod ends for a reason other than its user (OOMKilled, preempted, evicted, exited),
Enterprise Gateway's restarter restarts the kernel and sends an iopub ``status`` message whose
``execution_state`` is ``restarting`` (``dead`` when the restart fails). JupyterLab then shows
its fixed "Kernel Restarting" dialog and drops whatever the running cell was waiting for. Our
process proxy has recorded why the pod ended (kernel_proxy, ``last_end`` in EG's kernel model).

The front door, relaying the websocket, puts a ``stream`` message (stderr) before that status:

- if a cell was running, its parent is that cell's ``execute_request``: JupyterLab shows the
  reason in the cell's output, before it forgets the request on the status that follows;
- otherwise (the kernel died idle, e.g. preempted) the notice waits and is shown at the top of
  the next cell the user runs, with the time the kernel was restarted.

A kernel the gateway culled is gone, not restarted (kernel_ends): the front door tells its owner
at the top of the first cell of their next kernel (``culled_text``).

Messages follow the Jupyter messaging protocol 5.3 as Enterprise Gateway 3.3 relays it: one JSON
text frame per message with a ``channel`` key. Pure functions; standard library only (the file
is shipped beside front_door.py in the gateway's front-door ConfigMap).
"""

from __future__ import annotations

import json
import time
import uuid

PROTOCOL_VERSION = "5.3"
DIED_STATES = ("restarting", "dead")


def _message(frame) -> dict | None:
    if not isinstance(frame, str):
        return None  # a binary frame: buffers, never a status or a request
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _header(message: dict) -> dict:
    header = message.get("header")
    return header if isinstance(header, dict) else {}


def died_state(frame) -> str | None:
    """``restarting`` or ``dead`` when ``frame`` (from the gateway) says the kernel died, else None."""
    if not isinstance(frame, str) or ('"restarting"' not in frame and '"dead"' not in frame):
        return None  # most frames: not parsed (outputs can be megabytes)
    message = _message(frame)
    if message is None or message.get("channel") != "iopub" or _header(message).get("msg_type") != "status":
        return None
    content = message.get("content")
    state = content.get("execution_state") if isinstance(content, dict) else None
    return state if state in DIED_STATES else None


def execute_request(frame) -> dict | None:
    """The header of a client's ``execute_request`` (the cell being run), else None."""
    if not isinstance(frame, str) or '"execute_request"' not in frame:
        return None
    message = _message(frame)
    if message is None or message.get("channel") != "shell":
        return None
    header = _header(message)
    if header.get("msg_type") != "execute_request" or not isinstance(header.get("msg_id"), str):
        return None
    return header


def execute_reply_to(frame) -> str | None:
    """The msg_id of the request a gateway's ``execute_reply`` answers (the cell is done), else None."""
    if not isinstance(frame, str) or '"execute_reply"' not in frame:
        return None
    message = _message(frame)
    if message is None or message.get("channel") != "shell" or _header(message).get("msg_type") != "execute_reply":
        return None
    parent = message.get("parent_header")
    msg_id = parent.get("msg_id") if isinstance(parent, dict) else None
    return msg_id if isinstance(msg_id, str) else None


def reason_text(last_end, state: str, restarted_at: float | None = None) -> str | None:
    """What the user reads, from EG's ``last_end`` ({reason, message, at}); None without a reason
    (the kernel died for no reason our process proxy saw: the user gets JupyterLab's dialog only)."""
    if not isinstance(last_end, dict) or not isinstance(last_end.get("message"), str) or not last_end["message"]:
        return None
    why = last_end["message"]
    if state == "dead":
        return f"The kernel died and could not be restarted: {why}.\n"
    when = ""
    if restarted_at is not None:
        when = " at " + time.strftime("%H:%M:%S UTC", time.gmtime(restarted_at))
    return f"The kernel was restarted{when}: {why}. Variables and imports from before are gone.\n"


def culled_text(records: list[dict], limit: int = 5) -> str | None:
    """What the user reads in their next kernel about kernels of theirs the gateway culled
    (kernel_ends records), or None when there are none."""
    if not records:
        return None
    lines = []
    for record in records[-limit:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record["at"]))
        lines.append(
            f"The gateway culled your kernel {record['profile']} at {when} after {record['idle_seconds']} "
            "idle seconds, giving its resources back: variables and imports from that kernel are gone.\n"
        )
    if len(records) > limit:
        lines.insert(0, f"The gateway culled {len(records)} of your kernels; the last {limit}:\n")
    return "".join(lines)


def stream_frame(text: str, parent: dict | None, session: str = "front-door") -> str:
    """An iopub ``stream`` message on stderr, child of ``parent`` (an execute_request header)."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "stream",
        "username": "front-door",
        "session": session,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "version": PROTOCOL_VERSION,
    }
    return json.dumps(
        {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": "stream",
            "parent_header": dict(parent or {}),
            "metadata": {},
            "content": {"name": "stderr", "text": text},
            "buffers": [],
            "channel": "iopub",
        }
    )


class Notices:
    """What the front door remembers per kernel: the cells it runs and the notice not yet shown.

    Kept across websocket connections (JupyterLab reconnects after a restart): a notice for a
    kernel that died idle is shown with the next cell, on whichever connection runs it."""

    def __init__(self, limit: int = 10000):
        self.limit = limit
        self.running: dict[str, dict[str, dict]] = {}  # kernel id -> msg_id -> execute_request header
        self.waiting: dict[str, str] = {}  # kernel id -> text not shown yet
        self.told: dict[str, float] = {}  # kernel id -> the ``at`` of the last end told

    def _bounded(self, table: dict) -> None:
        if len(table) >= self.limit:
            table.clear()  # only notices are lost, never a kernel

    def client_frame(self, kernel_id: str, frame) -> str | None:
        """A frame from the client: remember its cell; returns a notice frame to send the client
        first (the notice of a kernel that died idle, for this cell), or None."""
        header = execute_request(frame)
        if header is None:
            return None
        self._bounded(self.running)
        self.running.setdefault(kernel_id, {})[header["msg_id"]] = header
        text = self.waiting.pop(kernel_id, None)
        return stream_frame(text, header, header.get("session") or "front-door") if text else None

    def gateway_frame(self, kernel_id: str, frame) -> str | None:
        """A frame from the gateway: forget a cell that is done; returns the died state or None."""
        done = execute_reply_to(frame)
        if done is not None:
            self.running.get(kernel_id, {}).pop(done, None)
        return died_state(frame)

    def died(self, kernel_id: str, state: str, last_end, now: float) -> str | None:
        """The kernel died (``state``) for ``last_end``: the notice frame for its running cell,
        or None (no reason; or no cell running, and the notice waits for the next one)."""
        cells = self.running.pop(kernel_id, {})
        at = last_end.get("at") if isinstance(last_end, dict) else None
        if not isinstance(at, (int, float)) or at <= self.told.get(kernel_id, float("-inf")):
            return None  # no reason recorded for this death (an old one is not this one's)
        self._bounded(self.told)
        self.told[kernel_id] = at
        if not cells:
            text = reason_text(last_end, state, now)
            if text:
                self._bounded(self.waiting)
                self.waiting[kernel_id] = text
            return None
        text = reason_text(last_end, state)
        if not text:
            return None
        parent = list(cells.values())[-1]  # the cell running; later ones wait behind it
        return stream_frame(text, parent, parent.get("session") or "front-door")

    def wait(self, kernel_id: str, text: str) -> None:
        """Show ``text`` at the top of the next cell run on ``kernel_id`` (after what already waits)."""
        self._bounded(self.waiting)
        self.waiting[kernel_id] = self.waiting.get(kernel_id, "") + text

    def forget(self, kernel_id: str) -> None:
        for table in (self.running, self.waiting, self.told):
            table.pop(kernel_id, None)
