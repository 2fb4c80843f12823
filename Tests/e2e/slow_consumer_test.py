"""Slow consumers: WebSocket clients that join a busy room and never read must be disconnected once their send
queue bound is hit, while a client that reads gets everything, and the server's memory stays bounded."""
import asyncio
import json
import socket
import sys
import time

import httpx
import websockets

from harness import Server, auth, report, token

STALLED = 20
MESSAGES = 1500
CONTENT = "x" * 8000


def stalled_client(port, tok, conversation):
    """A raw socket that upgrades, joins, and then never reads (tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {tok}\r\n\r\n").encode())
    payload = json.dumps({"type": "join_room", "conversationId": conversation}).encode()
    mask = b"\x01\x02\x03\x04"
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return s


def closed_by_server(s, timeout=20):
    """Reads everything the server had buffered; True once it closed the connection."""
    s.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if not s.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


async def run():
    server = Server().start(demo=True)
    failures = []
    try:
        alice, bob, carol = (token(server.base, "acme", u) for u in ("alice", "bob", "carol"))
        conversation = next(c["id"] for c in httpx.get(server.base + "/api/chat/conversations", headers=auth(alice)).json()["conversations"]
                            if c["title"] == "General")
        stalled = [stalled_client(server.port, carol, conversation) for _ in range(STALLED)]
        await asyncio.sleep(0.5)
        rss_before = server.rss_kib()
        received = []
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=auth(bob), max_size=2 ** 20) as ws:
            await ws.send(json.dumps({"type": "join_room", "conversationId": conversation}))
            assert json.loads(await ws.recv())["type"] == "joined"

            async def read():
                while len(received) < MESSAGES:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if frame["type"] == "new_message":
                        received.append(frame["data"]["seq"])

            reader = asyncio.create_task(read())
            peak = rss_before
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(MESSAGES):
                    r = await client.post(server.base + "/api/chat/send", headers=auth(alice),
                                          json={"conversationId": conversation, "content": CONTENT})
                    assert r.status_code == 201, r.text
                    if i % 100 == 0:
                        peak = max(peak, server.rss_kib())
            await reader
        peak = max(peak, server.rss_kib())
        gaps = sum(1 for a, b in zip(received, received[1:]) if b != a + 1)
        if len(received) != MESSAGES or gaps:
            failures.append(f"the reading client got {len(received)}/{MESSAGES} with {gaps} gaps")
        still_open = sum(0 if closed_by_server(s) else 1 for s in stalled)
        if still_open:
            failures.append(f"{still_open} of {STALLED} stalled clients were never disconnected")
        growth_mib = (peak - rss_before) / 1024
        # Unbounded queues would hold MESSAGES x 8 KB for each stalled client (~12 MB each, ~240 MB in all). The
        # growth allowed covers SQLite's page cache and memory-mapped pages of the 12 MB written (64 MiB cache).
        if growth_mib > 120:
            failures.append(f"server RSS grew {growth_mib:.0f} MiB")
        print(f"slow consumers: {STALLED} stalled clients disconnected, reader got {len(received)} in order, "
              f"RSS {rss_before / 1024:.0f} -> peak {peak / 1024:.0f} MiB", flush=True)
    finally:
        server.stop()
    return failures


if __name__ == "__main__":
    sys.exit(report("slow_consumer_test", asyncio.run(run())))
