"""The admin transport: ipc with 0600, TCP only with CURVE, an unknown key gets no reply."""
import asyncio
import os
import stat

import pytest

from engine.ipc.admin import AdminError, AdminServer, generate_keys, request


def serve_and(make, fn):
    """Build the server inside the event loop (the CURVE authenticator needs one), serve,
    run ``fn`` in a thread, stop."""
    async def main():
        srv = make()
        t = asyncio.ensure_future(srv.serve())
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn)
        finally:
            t.cancel()
            srv.close()
    return asyncio.run(main())


def test_ipc_socket_is_0600_and_errors_are_answered(tmp_path):
    path = tmp_path / "a.sock"
    def make():
        srv = AdminServer({"status": lambda a: {"n": 1}, "halt": lambda a: 1 / 0}, f"ipc://{path}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        return srv

    def calls():
        return (request(f"ipc://{path}", "status"), request(f"ipc://{path}", "halt"),
                request(f"ipc://{path}", "flatten"))
    ok, boom, unknown = serve_and(make, calls)
    assert ok == {"ok": True, "result": {"n": 1}}
    assert boom["ok"] is False and "ZeroDivisionError" in boom["error"]
    assert unknown["ok"] is False and "unknown command 'flatten'" in unknown["error"]


def test_tcp_needs_curve_and_refuses_unknown_clients():
    with pytest.raises(AdminError, match="CURVE"):
        AdminServer({"status": lambda a: 1}, "tcp://127.0.0.1:0")
    spub, ssec = generate_keys()
    cpub, csec = generate_keys()
    opub, osec = generate_keys()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = f"tcp://127.0.0.1:{port}"
    def make():
        return AdminServer({"status": lambda a: {"ok": 1}}, ep, server_secret=ssec, server_public=spub,
                           authorized=[cpub])

    def calls():
        good = request(ep, "status", client_secret=csec, client_public=cpub, server_public=spub)
        try:
            request(ep, "status", timeout_s=1.0, client_secret=osec, client_public=opub, server_public=spub)
            other = "answered"
        except AdminError as e:
            other = str(e)
        try:
            request(ep, "status", timeout_s=1.0)
            plain = "answered"
        except AdminError as e:
            plain = str(e)
        return good, other, plain
    good, other, plain = serve_and(make, calls)
    assert good == {"ok": True, "result": {"ok": 1}}
    assert "no reply" in other
    assert "needs CURVE" in plain
