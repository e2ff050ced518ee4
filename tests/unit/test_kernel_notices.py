"""The front door's notices of why a kernel died (hooks/kernel_notices.py), as pure functions."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import kernel_notices as kn

KERNEL = "6f1c1f0e-7d4b-4a53-9f0c-2f1e2b8a9d10"
OOM = {"reason": "oom-killed", "message": "out of memory: the kernel used more than its limit of 512Mi", "at": 100.0}


def frame(channel: str, msg_type: str, content=None, msg_id: str = "m1", parent=None) -> str:
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": "s1", "username": "u", "version": "5.3"}
    return json.dumps(
        {"header": header, "parent_header": parent or {}, "metadata": {}, "content": content or {}, "channel": channel}
    )


def status(state: str) -> str:
    return frame("iopub", "status", {"execution_state": state}, msg_id="st")


def run_cell(msg_id: str) -> str:
    return frame("shell", "execute_request", {"code": "x = bytearray(10**10)"}, msg_id=msg_id)


def reply(to: str) -> str:
    return frame("shell", "execute_reply", {"status": "ok"}, msg_id="r-" + to, parent={"msg_id": to})


def test_a_kernel_that_dies_in_a_cell_tells_that_cell_why_before_the_restart():
    notices = kn.Notices()
    assert notices.client_frame(KERNEL, run_cell("cell-1")) is None
    assert notices.gateway_frame(KERNEL, status("busy")) is None
    assert notices.gateway_frame(KERNEL, status("restarting")) == "restarting"
    notice = json.loads(notices.died(KERNEL, "restarting", OOM, now=200.0))
    assert notice["channel"] == "iopub" and notice["header"]["msg_type"] == "stream"
    assert notice["parent_header"]["msg_id"] == "cell-1", "JupyterLab shows it in the running cell"
    assert notice["header"]["session"] == "s1"
    assert notice["content"] == {
        "name": "stderr",
        "text": "The kernel was restarted: out of memory: the kernel used more than its limit of 512Mi. "
        "Variables and imports from before are gone.\n",
    }
    # Told once: the next cell runs normally.
    assert notices.client_frame(KERNEL, run_cell("cell-2")) is None


def test_a_kernel_that_dies_idle_tells_the_next_cell_once_with_the_time():
    notices = kn.Notices()
    notices.client_frame(KERNEL, run_cell("cell-1"))
    notices.gateway_frame(KERNEL, reply("cell-1"))  # the cell is done
    preempted = {"reason": "preempted", "message": "preempted by the scheduler for higher-priority work", "at": 5}
    assert notices.died(KERNEL, "restarting", preempted, now=3723.0) is None
    shown = json.loads(notices.client_frame(KERNEL, run_cell("cell-2")))
    assert shown["parent_header"]["msg_id"] == "cell-2"
    assert shown["content"]["text"] == (
        "The kernel was restarted at 01:02:03 UTC: preempted by the scheduler for higher-priority work. "
        "Variables and imports from before are gone.\n"
    )
    assert notices.client_frame(KERNEL, run_cell("cell-3")) is None


def test_no_reason_or_an_old_one_tells_nothing():
    notices = kn.Notices()
    notices.client_frame(KERNEL, run_cell("cell-1"))
    assert notices.died(KERNEL, "restarting", None, now=1.0) is None
    assert notices.died(KERNEL, "restarting", {"reason": "x", "message": ""}, now=1.0) is None
    notices.client_frame(KERNEL, run_cell("cell-2"))
    assert notices.died(KERNEL, "restarting", OOM, now=200.0) is not None
    notices.client_frame(KERNEL, run_cell("cell-3"))
    assert notices.died(KERNEL, "restarting", OOM, now=300.0) is None, "the same end is not told twice"
    assert notices.client_frame(KERNEL, run_cell("cell-4")) is None


def test_a_failed_restart_says_so():
    notices = kn.Notices()
    notices.client_frame(KERNEL, run_cell("c"))
    text = json.loads(notices.died(KERNEL, "dead", OOM, now=1.0))["content"]["text"]
    assert text.startswith("The kernel died and could not be restarted: out of memory")


def test_kernels_are_kept_apart_and_forgotten_on_delete():
    notices = kn.Notices()
    notices.client_frame("k1", run_cell("a"))
    assert notices.died("k2", "restarting", OOM, now=1.0) is None  # k2 ran nothing: waits
    assert json.loads(notices.died("k1", "restarting", OOM, now=1.0))["parent_header"]["msg_id"] == "a"
    notices.forget("k2")
    assert notices.client_frame("k2", run_cell("b")) is None


def test_only_iopub_status_frames_of_a_death_count():
    assert kn.died_state(status("restarting")) == "restarting"
    assert kn.died_state(status("dead")) == "dead"
    assert kn.died_state(status("idle")) is None
    assert kn.died_state(frame("shell", "status", {"execution_state": "dead"})) is None
    assert kn.died_state(b"\x00binary") is None
    assert kn.execute_request(frame("control", "execute_request")) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.text(max_size=8),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
CONTENT = st.dictionaries(st.sampled_from(["execution_state", "code"]), st.sampled_from(["restarting", "dead", 1]))
PARENT = st.fixed_dictionaries({"msg_id": st.one_of(st.text(max_size=6), st.integers())})
FRAMES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.builds(json.dumps, JSON),
    st.builds(
        frame,
        st.sampled_from(["shell", "iopub", "control", "stdin", 3]),
        st.sampled_from(["execute_request", "execute_reply", "status", "stream"]),
        st.one_of(st.none(), CONTENT),
        st.text(max_size=6),
        st.one_of(st.none(), PARENT),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["client", "gateway", "died"]), FRAMES, st.sampled_from(["k1", "k2"]))))
def test_any_frames_never_crash_and_notices_are_well_formed(steps):
    notices = kn.Notices()
    at = 0.0
    for side, data, kernel in steps:
        at += 1
        if side == "client":
            out = notices.client_frame(kernel, data)
        elif side == "gateway":
            state = notices.gateway_frame(kernel, data)
            assert state in (None, "restarting", "dead")
            out = None
        else:
            out = notices.died(kernel, "restarting", {**OOM, "at": at}, now=at)
        if out is not None:
            message = json.loads(out)
            assert message["header"]["msg_type"] == "stream" and message["channel"] == "iopub"
            assert "out of memory" in message["content"]["text"]
