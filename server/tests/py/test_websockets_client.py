"""A client nobody here wrote: Python's `websockets` library against the real server.

It negotiates permessage-deflate by default; the test checks the negotiation, that what the
library decodes equals what an uncompressed connection receives, and that compressed
client requests work.  Run by `.ci/test.sh` (which installs `websockets` and `pytest`).
"""

import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import websockets

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("TICKWIRE_BIN", ROOT / "target" / "release" / "tickwire"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*extra):
    port = free_port()
    proc = subprocess.Popen(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{port}", "--feed", "synthetic", "--symbols", "4", *extra],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("server did not start")
    return proc, f"ws://127.0.0.1:{port}/ws"


@pytest.fixture()
def server():
    proc, url = start("--rate", "400")
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture()
def batching_server():
    proc, url = start("--rate", "4000", "--batch-window-us", "5000")
    yield url
    proc.kill()
    proc.wait()


async def collect(ws, seconds):
    out = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except asyncio.TimeoutError:
            break
    return out


SUB = {"op": "subscribe", "id": 1, "symbols": ["SYM0001"], "channels": ["quote", "trade", "book"]}


def test_compression_is_negotiated_and_transparent(server):
    """Both ways of compressing decode to what an uncompressed client reads: the library's
    default offer lets the server keep its context (the client shares a window with every
    client of the same stream); asking for server_no_context_takeover gets every message
    compressed on its own."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    async def run():
        no_context = [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]
        async with websockets.connect(server) as shared, websockets.connect(
            server, extensions=no_context
        ) as independent, websockets.connect(server, compression=None) as plain:
            ext = shared.response.headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext and "server_no_context_takeover" not in ext, ext
            ext = independent.response.headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext and "server_no_context_takeover" in ext, ext
            assert "Sec-WebSocket-Extensions" not in plain.response.headers
            for ws in (shared, independent, plain):
                await ws.send(json.dumps(SUB))
            return await asyncio.gather(
                collect(shared, 2.0), collect(independent, 2.0), collect(plain, 2.0)
            )

    a, c, b = asyncio.run(run())
    key = lambda m: (m.get("type"), m.get("symbol"), m.get("chan_seq"))
    plain = {key(m): m for m in b if "chan_seq" in m}
    for got in (a, c):
        assert got[0]["type"] == "subscribed"
        common = [m for m in got if key(m) in plain]
        assert len(common) > 100, len(common)
        for m in common:
            assert m == plain[key(m)]


def test_errors_and_pings_over_a_compressed_connection(server):
    async def run():
        async with websockets.connect(server) as ws:
            await ws.send('{"op":"subscribe","id":7,"symbols":["NOPE"],"channels":["quote"]}')
            err = json.loads(await ws.recv())
            await ws.send('{"op":"ping","id":8}')
            pong = json.loads(await ws.recv())
            return err, pong

    err, pong = asyncio.run(run())
    assert err["code"] == "unknown_symbol" and err["id"] == 7
    assert pong == {"type": "pong", "id": 8, "ts": pong["ts"]}


def test_compressed_batches_decode_with_zlib(batching_server):
    """Batches of compressed frames are spliced, not recompressed; zlib must accept them."""

    async def run():
        async with websockets.connect(
            batching_server, subprotocols=["tickwire.json.batch"]
        ) as ws:
            assert ws.subprotocol == "tickwire.json.batch"
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await ws.send(json.dumps({**SUB, "symbols": ["SYM0000", "SYM0001", "SYM0002", "SYM0003"]}))
            frames = []
            end = time.monotonic() + 2.0
            while (left := end - time.monotonic()) > 0:
                try:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
                except asyncio.TimeoutError:
                    break
            return frames

    frames = asyncio.run(run())
    arrays = [f for f in frames if isinstance(f, list)]
    assert len(arrays) > 20, f"{len(arrays)} batched frames of {len(frames)}"
    msgs = [m for f in frames for m in (f if isinstance(f, list) else [f])]
    trades = {}
    for m in msgs:
        if m.get("type") == "trade":
            prev = trades.get(m["symbol"])
            assert prev is None or m["chan_seq"] == prev + 1, "trade gap"
            trades[m["symbol"]] = m["chan_seq"]
    assert len(msgs) > 3000


def test_msgpack_carries_the_same_messages(batching_server):
    """`tickwire.msgpack(.batch)`: binary frames decoding (with the msgpack library) to exactly
    the messages JSON clients get, compressed or not, batched or not."""
    import msgpack

    async def run():
        subs = {**SUB, "symbols": ["SYM0000", "SYM0001"]}
        async with websockets.connect(batching_server, compression=None) as js, websockets.connect(
            batching_server, subprotocols=["tickwire.msgpack"]
        ) as mp, websockets.connect(
            batching_server, subprotocols=["tickwire.msgpack.batch"], compression=None
        ) as mpb:
            assert mp.subprotocol == "tickwire.msgpack"
            assert mpb.subprotocol == "tickwire.msgpack.batch"
            for ws in (js, mp, mpb):
                await ws.send(json.dumps(subs))

            async def frames(ws):
                out = []
                end = time.monotonic() + 2.0
                while (left := end - time.monotonic()) > 0:
                    try:
                        out.append(await asyncio.wait_for(ws.recv(), left))
                    except asyncio.TimeoutError:
                        break
                return out

            return await asyncio.gather(frames(js), frames(mp), frames(mpb))

    js, mp, mpb = asyncio.run(run())
    assert all(isinstance(f, bytes) for f in mp + mpb), "binary frames only"
    json_msgs = [json.loads(f) for f in js]
    single = [msgpack.unpackb(f) for f in mp]
    assert all(isinstance(m, dict) for m in single)
    batched = []
    arrays = 0
    for f in mpb:
        v = msgpack.unpackb(f)
        arrays += isinstance(v, list)
        batched.extend(v if isinstance(v, list) else [v])
    assert arrays > 10, "batches were sent"
    key = lambda m: (m.get("type"), m.get("symbol"), m.get("chan_seq"))
    by_key = {key(m): m for m in json_msgs if "chan_seq" in m}
    for decoded in (single, batched):
        common = [m for m in decoded if key(m) in by_key]
        assert len(common) > 300, len(common)
        for m in common:
            assert m == by_key[key(m)]
    assert single[0]["type"] == "subscribed" and single[0]["channels"] == ["quote", "trade", "book"]
