"""Graceful shutdown as a load balancer sees it: on SIGTERM `/ready` answers 503 at once while `/health` still
answers; new realtime connections (WebSocket, SSE, long-poll) are refused with 503; the open WebSocket keeps
receiving during the drain period and then gets 1001; an in-flight long-poll finishes; the process exits 0."""
import asyncio
import json
import sys
import time

import httpx
import websockets

from harness import Server, auth, report, token

DRAIN = 2


async def run():
    failures = []
    server = Server(drain_seconds=DRAIN).start(demo=True)
    try:
        tok = token(server.base, "acme", "alice")
        conversation = httpx.get(server.base + "/api/chat/conversations", headers=auth(tok)).json()["conversations"][0]["id"]
        if httpx.get(server.base + "/ready").json() != {"status": "ready"}:
            failures.append("/ready did not say ready before the shutdown")
        cursor = httpx.get(server.base + "/api/chat/poll", headers=auth(tok)).json()["cursor"]
        async with httpx.AsyncClient(timeout=30) as client, \
                websockets.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=auth(tok)) as ws:
            await ws.send(json.dumps({"type": "join_room", "conversationId": conversation}))
            while json.loads(await ws.recv())["type"] != "joined":
                pass
            held = asyncio.create_task(client.get(f"{server.base}/api/chat/poll?cursor={cursor}&timeout=1", headers=auth(tok)))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            server.process.send_signal(15)
            await asyncio.sleep(0.3)
            ready = await client.get(server.base + "/ready")
            if ready.status_code != 503:
                failures.append(f"/ready answered {ready.status_code} during the drain, not 503")
            if (await client.get(server.base + "/health")).status_code != 200:
                failures.append("/health stopped answering during the drain")
            poll = await client.get(f"{server.base}/api/chat/poll?cursor={cursor}&timeout=0", headers=auth(tok))
            if poll.status_code != 503 or poll.headers.get("retry-after") is None:
                failures.append(f"a new long-poll during the drain answered {poll.status_code}, not 503 with Retry-After")
            sse = await client.get(server.base + "/api/chat/events", headers=auth(tok))
            if sse.status_code != 503:
                failures.append(f"a new SSE stream during the drain answered {sse.status_code}, not 503")
            try:
                async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=auth(tok)):
                    failures.append("a new WebSocket was accepted during the drain")
            except (websockets.InvalidStatus, websockets.InvalidHandshake, OSError):
                pass
            if (await held).status_code != 200:
                failures.append("a long-poll in flight at SIGTERM did not finish")
            # The open socket still works during the drain: a message sent now reaches it.
            sent = (await client.post(server.base + "/api/chat/send", headers=auth(tok),
                                      json={"conversationId": conversation, "content": "during the drain"})).json()["message"]
            got = False
            code = None
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "new_message" and frame["data"]["id"] == sent["id"]:
                        got = True
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            elapsed = time.monotonic() - started
            if not got:
                failures.append("the open WebSocket missed a message sent during the drain")
            if code != 1001:
                failures.append(f"the open WebSocket was closed with {code}, not 1001")
            elif elapsed < DRAIN - 0.2:
                failures.append(f"the WebSocket was closed after {elapsed:.1f} s, before the {DRAIN} s drain period")
        exit_code = server.process.wait(timeout=30)
        if exit_code != 0:
            failures.append(f"the server exited with {exit_code} after SIGTERM, not 0")
        print(f"drain test: closed with 1001 after the {DRAIN} s drain, exit {exit_code}", flush=True)
    finally:
        server.stop()
    return failures


if __name__ == "__main__":
    sys.exit(report("drain_test", asyncio.run(run())))
