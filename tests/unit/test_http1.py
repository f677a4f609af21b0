"""The order connection's HTTP/1.1 reader: lengths, chunks, split reads, interim answers,
Connection: close, and what it refuses (each refusal fails the request and closes)."""
import asyncio

import pytest

from engine.execution.http1 import OrderLink, OrderLinks, ProtocolError


class FakeTransport:
    def __init__(self):
        self.written, self.closed = [], False

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True


def link_with_request():
    """(link, future) after one request was written."""
    lost = []
    link = OrderLink(on_closed=lost.append)
    link.connection_made(FakeTransport())
    fut = link.request(b"POST /x HTTP/1.1\r\n\r\n")
    return link, fut


def run(coro_fn):
    return asyncio.run(coro_fn())


def test_content_length_in_pieces_then_idle_again():
    async def go():
        link, fut = link_with_request()
        assert not link.idle and link.transport.written == [b"POST /x HTTP/1.1\r\n\r\n"]
        raw = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 7\r\nContent-Length: 13\r\n\r\n{"orderId":5}'
        for i in range(0, len(raw), 5):                  # arrives in 5-byte pieces
            assert not fut.done()
            link.data_received(raw[i:i + 5])
        r = fut.result()
        assert (r.status, r.body, r.headers["x-mbx-used-weight-1m"]) == (200, b'{"orderId":5}', "7")
        assert link.idle                                   # ready for the next request
        fut2 = link.request(b"GET /y HTTP/1.1\r\n\r\n")
        link.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
        assert fut2.result().status == 204 and fut2.result().body == b""
    run(go)


def test_chunked_body_with_an_interim_answer_and_connection_close():
    async def go():
        link, fut = link_with_request()
        link.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
        link.data_received(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           b"8\r\n{\"code\":\r\n")
        assert not fut.done()
        link.data_received(b"c;ext=1\r\n-1102,\"x\":1}\r\n0\r\n\r\n")
        r = fut.result()
        assert r.status == 400 and r.body == b'{"code":-1102,"x":1}'
        assert link.closed and link.transport.closed and not link.idle
    run(go)


@pytest.mark.parametrize("raw,why", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", "out of range"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "without a length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1", "bytes after the response"),
])
def test_a_malformed_answer_fails_the_request_and_closes(raw, why):
    async def go():
        link, fut = link_with_request()
        link.data_received(raw)
        with pytest.raises(ProtocolError, match=why):
            fut.result()
        assert link.closed and link.transport.closed
    run(go)


def test_unsolicited_bytes_and_a_lost_connection():
    async def go():
        link = OrderLink()
        link.connection_made(FakeTransport())
        link.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")     # nothing was asked
        assert link.closed
        link, fut = link_with_request()
        link.data_received(b"HTTP/1.1 200 OK\r\nContent-Le")
        link.connection_lost(None)                                               # mid-answer
        with pytest.raises(ConnectionError, match="lost"):
            fut.result()
        with pytest.raises(RuntimeError, match="busy or closed"):
            link.request(b"x")
    run(go)


def test_links_need_an_http_url_and_report_no_idle_connection():
    with pytest.raises(ValueError, match="http"):
        OrderLinks("ws://127.0.0.1:1")
    links = OrderLinks("http://127.0.0.1:9/prefix")
    assert (links.port, links.prefix, links.request("GET", "/x", "")) == (9, "/prefix", None)


def test_a_refused_venue_is_retried_in_the_background():
    async def go():
        links = OrderLinks("http://127.0.0.1:9", size=2, connect_timeout_s=0.5)   # discard port: refused
        await links.open()
        assert links.links == [] and links.stats["open_failures"] >= 1
        await asyncio.sleep(0.2)
        assert links.stats["open_failures"] >= 2                                 # still trying
        await links.close()
    run(go)


def test_the_order_query_string_is_urlencode_byte_for_byte():
    import urllib.parse

    from engine.execution.gateway import query
    cases = [{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": "60000.00",
              "newClientOrderId": "cs-1f", "timeInForce": "GTX", "reduceOnly": "true", "n": 5, "b": True},
             {"symbol": "BTCUSDT", "origClientOrderId": "manual 1/2&x=y"},          # needs escaping
             {"a": "~._-", "ü": "1"}, {},
             {"a": "x\x00y"}, {"a\x00": "b"}, {"a": "\x00"}]                   # NUL is no separator here
    for p in cases:
        assert query(p) == urllib.parse.urlencode(p)
