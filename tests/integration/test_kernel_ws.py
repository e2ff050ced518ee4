"""The tests' kernel websocket client keeps a connection a test is not reading, as a browser tab does.

Jupyter Server and Enterprise Gateway ping every kernel websocket and close one whose pongs stop
(after 90 s and, at the shortest ping interval, 30 s). The notebook's kernel in tests/kernels is used
at the start and at the end of its module; on CI the tests between took longer than that.
"""

from __future__ import annotations

import time

import localrun as lr
import pytest
from rendered import container_and_files, gateway_cr, render_gateway, secret_value

pytestmark = pytest.mark.integration

PONG_TIMEOUT_S = 30  # jupyter_server's floor: max(3 * ws_ping_interval, 30 s)


def test_a_kernel_websocket_nobody_reads_answers_pings_and_stays_open(tmp_path):
    children = render_gateway(gateway_cr("pinger", cullIdleTimeout=0, cullInterval=1))
    container, files = container_and_files(children)
    with lr.LocalStack(tmp_path) as stack:
        eg = stack.start_gateway(
            container, files, token=secret_value(children), extra_env={"EG_WS_PING_INTERVAL_SECS": "1"}
        )
        status, kernel = eg.api("POST", "/api/kernels", {"env": {"KERNEL_USERNAME": "tester"}})
        assert status == 201, kernel
        with lr.KernelWS(eg.url, kernel["id"], eg.headers["Authorization"].split()[-1]) as ws:
            assert ws.execute("1+1")["result"] == "2"
            # Nobody reads: wait until the client has answered pings for longer than the pong timeout.
            first = ws.pings_answered
            deadline = time.monotonic() + 3 * PONG_TIMEOUT_S
            while ws.pings_answered < first + PONG_TIMEOUT_S + 3:
                assert time.monotonic() < deadline, f"{ws.pings_answered - first} pings answered, want one a second"
                time.sleep(0.5)
            assert "WebSocket ping timeout" not in eg.log()
            assert ws.execute("6 * 7")["result"] == "42"
        assert eg.api("DELETE", f"/api/kernels/{kernel['id']}")[0] == 204
