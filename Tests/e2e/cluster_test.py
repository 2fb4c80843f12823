"""Two chat-server nodes on one PostgreSQL, as behind a round-robin load balancer with no sticky sessions:
- a message sent on node A reaches WebSocket, SSE and long-poll clients on node B within a second;
- a cursor handed out by one node resumes exactly on the other, with each transport;
- logout on one node closes the credential's WebSocket on the other;
- senders on both nodes writing one conversation get gapless seq, and listeners on both nodes get every event once
  and in order;
- node A is SIGKILLed several times under load while its clients fail over to B and retry by clientMessageId: every
  acknowledged message is stored once, seq stays gapless, and replays from the start cursor equal the stored list on
  both nodes.
Needs CHAT_TEST_POSTGRES_URL (a server where it may create a database); scripts/test.sh starts one."""
import asyncio
import json
import os
import random
import subprocess
import sys
import time

import httpx
import websockets

from harness import Server, all_messages, auth, fresh_postgres_database, poll_all, report, require_postgres, token

KILLS = 4
SENDERS = 6
RATE_PER_SENDER = 30


async def ws_collect(url, tok, frames, joined, since=None, conversation=None):
    """A WebSocket client that joins one room (or all, with `join_all`) and appends every event frame."""
    async with websockets.connect(url, additional_headers=auth(tok), max_size=2 ** 22) as ws:
        message = {"type": "join_room", "conversationId": conversation} if conversation else {"type": "join_all"}
        if since is not None:
            message["since"] = since
        await ws.send(json.dumps(message))
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "joined":
                joined.set()
            elif frame.get("eventId"):
                frames.append(frame)


async def sse_collect(base, tok, events, ready, last_event_id=None):
    headers = {**auth(tok), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with httpx.AsyncClient(timeout=None) as client:
        async with client.stream("GET", base + "/api/chat/events", headers=headers) as response:
            ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    frame = json.loads(line[6:])
                    if frame.get("eventId"):
                        events.append(frame)


async def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def postgres(command, pg_dir):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "postgres.sh")
    port = os.environ.get("CHAT_TEST_POSTGRES_PORT", "25439")
    subprocess.run([script, command, pg_dir, port], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def outage(a, b, tokens, conversation, pg_dir, failures):
    frames, joined = [], asyncio.Event()
    listener = asyncio.create_task(ws_collect(f"ws://127.0.0.1:{b.port}/api/chat/ws", tokens["bob"], frames, joined, conversation=conversation))
    await asyncio.wait_for(joined.wait(), 10)
    postgres("stop", pg_dir)
    try:
        if httpx.get(a.base + "/health", timeout=5).status_code != 200:
            failures.append("a node stopped answering /health while the database was down")
        started = time.monotonic()
        try:
            r = httpx.post(a.base + "/api/chat/send", headers=auth(tokens["alice"]), timeout=30,
                           json={"conversationId": conversation, "content": "during the outage", "clientMessageId": "outage-1"})
            if r.status_code != 503:
                failures.append(f"a send while the database was down answered {r.status_code}, not 503")
        except httpx.TimeoutException:
            failures.append("a send while the database was down hung for 30 s")
        print(f"outage: a send was refused after {time.monotonic() - started:.1f} s", flush=True)
    finally:
        postgres("start", pg_dir)
    recovered_at = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and recovered_at is None:
        try:
            ok = [httpx.post(node.base + "/api/chat/send", headers=auth(tokens["alice"]), timeout=10,
                             json={"conversationId": conversation, "content": f"after the outage {i}", "clientMessageId": f"outage-after-{i}"}).status_code
                  for i, node in enumerate((a, b))]
            if ok == [201, 201] or all(code in (200, 201) for code in ok):
                recovered_at = time.monotonic()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    if recovered_at is None:
        failures.append("the nodes did not recover within 30 s of the database coming back")
    else:
        sent = httpx.post(a.base + "/api/chat/send", headers=auth(tokens["alice"]),
                          json={"conversationId": conversation, "content": "live again", "clientMessageId": "outage-live"}).json()["message"]
        if not await wait_for(lambda: any(f["data"].get("id") == sent["id"] for f in frames), 5):
            failures.append("a WebSocket on B connected before the outage got nothing sent on A after it")
    listener.cancel()


async def run():
    url = fresh_postgres_database("chat_e2e")
    a = Server(database=url).start(demo=True)
    b = Server(database=url).start(demo=True)  # both seed-if-empty at once: one seeds
    failures = []
    try:
        tokens = {u: token(a.base, "acme", u) for u in ("alice", "bob", "carol")}
        users = httpx.get(b.base + "/api/users", headers=auth(tokens["alice"])).json()["users"]
        # Three people and the built-in assistant, once.
        if sorted(u["username"] for u in users) != ["alice", "assistant", "bob", "carol"]:
            failures.append(f"demo data seeded {[u['username'] for u in users]} in acme, not alice, assistant, bob and carol")
        ids = [u["id"] for u in users if u["username"] in ("bob", "carol")]
        conversation = httpx.post(a.base + "/api/chat/start", headers=auth(tokens["alice"]),
                                  json={"title": "cluster", "participantIds": ids}).json()["conversation"]["id"]
        start_cursor = httpx.get(a.base + "/api/chat/poll", headers=auth(tokens["bob"])).json()["cursor"]

        # 1. Sent on A, received on B over WebSocket, SSE and long-poll within a second.
        ws_frames, sse_events = [], []
        ws_joined, sse_ready = asyncio.Event(), asyncio.Event()
        ws_task = asyncio.create_task(ws_collect(f"ws://127.0.0.1:{b.port}/api/chat/ws", tokens["bob"], ws_frames, ws_joined,
                                                 conversation=conversation))
        sse_task = asyncio.create_task(sse_collect(b.base, tokens["carol"], sse_events, sse_ready))
        await asyncio.wait_for(ws_joined.wait(), 10)
        await asyncio.wait_for(sse_ready.wait(), 10)
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(timeout=30) as client:
            poll = asyncio.create_task(client.get(f"{b.base}/api/chat/poll?cursor={start_cursor}&conversationId={conversation}&timeout=10",
                                                  headers=auth(tokens["carol"])))
            await asyncio.sleep(0.3)
            sent_at = time.monotonic()
            sent = httpx.post(a.base + "/api/chat/send", headers=auth(tokens["alice"]),
                              json={"conversationId": conversation, "content": "across nodes", "clientMessageId": "x-1"}).json()["message"]
            got_ws = await wait_for(lambda: any(f["data"].get("id") == sent["id"] for f in ws_frames), 1.0)
            got_sse = await wait_for(lambda: any(e["data"].get("id") == sent["id"] for e in sse_events), 1.0)
            polled = (await poll).json()
            elapsed = time.monotonic() - sent_at
        if not got_ws:
            failures.append("WebSocket client on B did not get A's message within 1 s")
        if not got_sse:
            failures.append("SSE client on B did not get A's message within 1 s")
        if not any(e["data"].get("id") == sent["id"] for e in polled["events"]) or elapsed > 1.5:
            failures.append(f"long-poll on B did not get A's message promptly ({elapsed:.2f} s)")

        # 2. A cursor from one node resumes exactly on the other, on every transport.
        for i in range(5):
            httpx.post(b.base + "/api/chat/send", headers=auth(tokens["bob"]),
                       json={"conversationId": conversation, "content": f"resume {i}", "clientMessageId": f"r-{i}"})
        expected = [e["eventId"] for e in poll_all(b.base, auth(tokens["carol"]), start_cursor, conversation)[0]]
        from_a = [e["eventId"] for e in poll_all(a.base, auth(tokens["carol"]), start_cursor, conversation)[0]]
        if from_a != expected or len(expected) != 6:
            failures.append(f"long-poll from the same cursor differs between nodes: {len(from_a)} vs {len(expected)}")
        mid_cursor = expected[2]
        replay, joined = [], asyncio.Event()
        task = asyncio.create_task(ws_collect(f"ws://127.0.0.1:{a.port}/api/chat/ws", tokens["carol"], replay, joined,
                                              since=mid_cursor, conversation=conversation))
        await wait_for(lambda: len(replay) >= 3, 5)
        task.cancel()
        if [f["eventId"] for f in replay] != expected[3:]:
            failures.append(f"WebSocket resume on A from B's cursor: {[f['eventId'] for f in replay]} != {expected[3:]}")
        sse_replay, ready = [], asyncio.Event()
        task = asyncio.create_task(sse_collect(a.base, tokens["carol"], sse_replay, ready, last_event_id=mid_cursor))
        await wait_for(lambda: len([e for e in sse_replay if e["conversationId"] == conversation]) >= 3, 5)
        task.cancel()
        if [e["eventId"] for e in sse_replay if e["conversationId"] == conversation] != expected[3:]:
            failures.append("SSE resume on A from B's cursor differs")

        # 3. Logout on A closes the same credential's WebSocket on B.
        dave_token = token(a.base, "acme", "carol")
        closed = asyncio.get_running_loop().create_future()

        async def watch():
            try:
                async with websockets.connect(f"ws://127.0.0.1:{b.port}/api/chat/ws", additional_headers=auth(dave_token)) as ws:
                    await ws.send(json.dumps({"type": "join_all"}))
                    async for _ in ws:
                        pass
            except websockets.ConnectionClosed as e:
                closed.set_result(e.rcvd.code if e.rcvd else None)
                return
            closed.set_result("closed cleanly")
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        httpx.post(a.base + "/api/auth/logout", headers=auth(dave_token))
        try:
            code = await asyncio.wait_for(closed, 5)
            if code != 4001:
                failures.append(f"logout on A closed B's WebSocket with {code}, not 4001")
        except asyncio.TimeoutError:
            failures.append("logout on A did not close the WebSocket on B")
        watcher.cancel()
        if httpx.get(b.base + "/api/auth/me", headers=auth(dave_token)).status_code != 401:
            failures.append("a token logged out on A still works on B")

        # 4 and 5. Senders on both nodes while A is killed and restarted; clients fail over and retry.
        listen_a, listen_b = [], []
        ja, jb = asyncio.Event(), asyncio.Event()
        la = asyncio.create_task(ws_collect(f"ws://127.0.0.1:{b.port}/api/chat/ws", tokens["bob"], listen_b, jb, conversation=conversation))
        await asyncio.wait_for(jb.wait(), 10)
        load_cursor = httpx.get(b.base + "/api/chat/poll", headers=auth(tokens["bob"])).json()["cursor"]
        acked = {}
        stop = asyncio.Event()
        nodes = [a, b]

        async def sender(index):
            who = ("alice", "bob", "carol")[index % 3]
            n = 0
            async with httpx.AsyncClient(timeout=5) as client:
                while not stop.is_set():
                    n += 1
                    cid = f"load-{index}-{n}"
                    started = time.monotonic()
                    for attempt in range(20):  # retry the same clientMessageId on whichever node answers
                        node = nodes[(index + attempt) % 2]
                        try:
                            r = await client.post(node.base + "/api/chat/send", headers=auth(tokens[who]),
                                                  json={"conversationId": conversation, "content": f"load {cid}", "clientMessageId": cid})
                            if r.status_code in (200, 201):
                                acked[cid] = r.json()["message"]["id"]
                                break
                            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
                        except (httpx.TransportError, httpx.TimeoutException):
                            await asyncio.sleep(0.05)
                    await asyncio.sleep(max(0, 1 / RATE_PER_SENDER - (time.monotonic() - started)))

        tasks = [asyncio.create_task(sender(i)) for i in range(SENDERS)]
        for kill in range(KILLS):
            await asyncio.sleep(random.uniform(0.7, 1.5))
            a.kill()
            await asyncio.sleep(0.3)
            a.start(demo=False)
            print(f"kill {kill + 1}/{KILLS} of node A: {len(acked)} acknowledged so far", flush=True)
        jb2 = asyncio.Event()
        lb = asyncio.create_task(ws_collect(f"ws://127.0.0.1:{a.port}/api/chat/ws", tokens["carol"], listen_a, jb2,
                                            since=load_cursor, conversation=conversation))
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)

        messages = all_messages(b.base, tokens["bob"], conversation)
        stored = [m["id"] for m in messages]
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            failures.append("seq is not gapless across nodes")
        if len({m["clientMessageId"] for m in messages}) != len(messages):
            failures.append("a clientMessageId was stored twice")
        lost = [cid for cid, mid in acked.items() if mid not in set(stored)]
        if lost:
            failures.append(f"{len(lost)} acknowledged messages lost, e.g. {lost[:3]}")
        load_ids = [m["id"] for m in messages if m["content"].startswith("load ")]
        for name, node in (("A", a), ("B", b)):
            replay = [e["data"]["id"] for e in poll_all(node.base, auth(tokens["carol"]), start_cursor, conversation)[0]
                      if e["type"] == "new_message"]
            if replay != stored:
                failures.append(f"long-poll replay from the start cursor on node {name} differs from the stored list")
        await wait_for(lambda: len([f for f in listen_b if f["type"] == "new_message" and f["data"]["content"].startswith("load ")]) >= len(load_ids), 5)
        await wait_for(lambda: len([f for f in listen_a if f["type"] == "new_message" and f["data"]["content"].startswith("load ")]) >= len(load_ids), 5)
        for name, frames in (("B (live through the kills)", listen_b), ("A (resumed after the kills)", listen_a)):
            got = [f["data"]["id"] for f in frames if f["type"] == "new_message" and f["data"]["content"].startswith("load ")]
            if got != load_ids:
                failures.append(f"listener on {name} got {len(got)} load messages, {len(load_ids)} stored, "
                                f"in order and once: {got == sorted(got, key=load_ids.index) if set(got) <= set(load_ids) else False}")
        for task in (ws_task, sse_task, la, lb):
            task.cancel()

        # 6. The database goes away and comes back: the nodes keep answering what needs no database, refuse writes
        # with 503 instead of hanging, and recover by themselves (pool and listener reconnect).
        pg_dir = os.environ.get("CHAT_TEST_POSTGRES_DIR")
        if pg_dir:
            await outage(a, b, tokens, conversation, pg_dir, failures)
        print(f"cluster test: {KILLS} SIGKILLs of node A, {len(acked)} acknowledged, {len(stored)} stored, "
              f"{len(lost)} lost, seq 1..{seqs[-1] if seqs else 0}", flush=True)
    finally:
        a.stop()
        b.stop()
    return failures


if __name__ == "__main__":
    require_postgres("cluster_test")
    sys.exit(report("cluster_test", asyncio.run(run())))
