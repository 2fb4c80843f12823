"""Crash test: several clients send a few hundred messages per second while the server is SIGKILLed at random
moments and restarted on the same database; meanwhile one client edits, reacts to and deletes its own acknowledged
messages. Every acknowledged message must be stored exactly once, with gapless seq, and be replayed to clients that
resume from a cursor (long-poll and WebSocket); every acknowledged edit, reaction and delete must hold. Ends with a
graceful SIGTERM that must close WebSockets with 1001 and lose nothing."""
import asyncio
import json
import random
import sys
import time
import uuid

import httpx
import websockets

from harness import Server, auth, report, token

KILLS = 6
SENDERS = 8
RATE_PER_SENDER = 40  # messages per second each: about 320/s offered in all


async def sender(name, base_ref, tok, conversation, acked, stop):
    """Sends at a fixed rate; records (clientMessageId -> message id) for every 200/201 it sees."""
    n = 0
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            n += 1
            cid = f"{name}-{n}"
            started = time.monotonic()
            try:
                r = await client.post(base_ref[0] + "/api/chat/send", headers=auth(tok),
                                      json={"conversationId": conversation, "content": f"crash test {cid}", "clientMessageId": cid})
                if r.status_code in (200, 201):
                    acked[cid] = r.json()["message"]["id"]
                elif r.status_code >= 400 and r.status_code != 503:
                    raise AssertionError(f"unexpected {r.status_code}: {r.text}")
            except (httpx.TransportError, httpx.TimeoutException):
                await asyncio.sleep(0.05)  # the server is down: try the next message once it is back
            await asyncio.sleep(max(0, 1 / RATE_PER_SENDER - (time.monotonic() - started)))


async def changer(base_ref, tok, acked, expected, uncertain, stop, conversation, uploads):
    """Edits, reacts to and deletes alice's acknowledged messages (senders s0, s3, s6 are alice), recording what each
    acknowledged change should leave behind; a change whose answer was lost is not checked."""
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            mine = [mid for cid, mid in list(acked.items()) if cid.split("-")[0] in ("s0", "s3", "s6") and mid not in uncertain
                    and expected.get(mid, {}).get("deleted") is not True]
            if not mine:
                await asyncio.sleep(0.05)
                continue
            mid = random.choice(mine)
            action = random.choice(["edit", "edit", "react", "delete", "upload"])
            try:
                if action == "edit":
                    content = f"edited {random.randrange(10 ** 6)}"
                    r = await client.patch(f"{base_ref[0]}/api/chat/messages/{mid}", headers=auth(tok), json={"content": content})
                    if r.status_code == 200:
                        expected.setdefault(mid, {})["content"] = content
                elif action == "react":
                    r = await client.put(f"{base_ref[0]}/api/chat/messages/{mid}/reactions/tada", headers=auth(tok))
                    if r.status_code == 200:
                        expected.setdefault(mid, {})["reacted"] = True
                elif action == "upload":
                    text = f"file {random.randrange(10 ** 6)} for @bob\n"
                    r = await client.post(f"{base_ref[0]}/api/chat/{conversation}/messages", headers=auth(tok),
                                          data={"content": "attached for @bob", "clientMessageId": f"up-{uuid.uuid4()}"},
                                          files={"file": ("note.txt", text.encode())})
                    if r.status_code in (200, 201):
                        uploads[r.json()["message"]["attachments"][0]["id"]] = text
                else:
                    r = await client.delete(f"{base_ref[0]}/api/chat/messages/{mid}", headers=auth(tok))
                    if r.status_code == 200:
                        expected[mid] = {"deleted": True}
                if r.status_code >= 400 and r.status_code != 503:
                    raise AssertionError(f"unexpected {r.status_code} for {action}: {r.text}")
            except (httpx.TransportError, httpx.TimeoutException):
                uncertain.add(mid)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)


async def organizer(base_ref, tok, conversation, carol_id, state, stop):
    """Renames a side conversation and adds and removes carol in it; each change sets an absolute state, so the last
    acknowledged one must hold unless a later request's answer was lost (then `state["uncertain"]`)."""
    n = 0
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            n += 1
            base = f"{base_ref[0]}/api/chat/{conversation}"
            action = random.choice(["rename", "add", "remove"])
            try:
                if action == "rename":
                    r = await client.patch(base, headers=auth(tok), json={"title": f"side {n}"})
                elif action == "add":
                    r = await client.post(base + "/members", headers=auth(tok), json={"userIds": [carol_id]})
                else:
                    r = await client.delete(f"{base}/members/{carol_id}", headers=auth(tok))
                if r.status_code in (200, 204):
                    state["uncertain"] = False
                    if action == "rename":
                        state["title"] = f"side {n}"
                    else:
                        state["carol"] = action == "add"
                    state["acked"] += 1
                elif r.status_code != 503:
                    raise AssertionError(f"unexpected {r.status_code} for {action}: {r.text}")
            except (httpx.TransportError, httpx.TimeoutException):
                state["uncertain"] = True
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.03)


async def run():
    server = Server().start(demo=True)
    failures = []
    try:
        tokens = {u: token(server.base, "acme", u) for u in ("alice", "bob", "carol")}
        users = httpx.get(server.base + "/api/users", headers=auth(tokens["alice"])).json()["users"]
        ids = [u["id"] for u in users if u["username"] in ("bob", "carol")]
        conversation = httpx.post(server.base + "/api/chat/start", headers=auth(tokens["alice"]),
                                  json={"title": "crash", "participantIds": ids}).json()["conversation"]["id"]
        start_cursor = httpx.get(server.base + "/api/chat/poll", headers=auth(tokens["bob"])).json()["cursor"]

        acked = {}
        base_ref = [server.base]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(sender(f"s{i}", base_ref, tokens[("alice", "bob", "carol")[i % 3]], conversation, acked, stop))
                 for i in range(SENDERS)]
        expected, uncertain = {}, set()
        uploads = {}
        tasks.append(asyncio.create_task(changer(base_ref, tokens["alice"], acked, expected, uncertain, stop, conversation, uploads)))
        side = httpx.post(server.base + "/api/chat/start", headers=auth(tokens["alice"]),
                          json={"title": "side 0", "participantIds": ids[:1]}).json()["conversation"]["id"]
        carol_id = next(u["id"] for u in users if u["username"] == "carol")
        members = {"title": "side 0", "carol": False, "uncertain": False, "acked": 0}
        tasks.append(asyncio.create_task(organizer(base_ref, tokens["alice"], side, carol_id, members, stop)))
        for kill in range(KILLS):
            await asyncio.sleep(random.uniform(0.7, 2.0))
            before = len(acked)
            server.kill()
            await asyncio.sleep(0.2)
            server.start(demo=False)
            print(f"kill {kill + 1}/{KILLS}: {before} acknowledged so far", flush=True)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)

        # Everything acknowledged is stored once, seq is gapless.
        messages = []
        cursor = None
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                url = f"{server.base}/api/chat/{conversation}/messages?limit=200" + (f"&before={cursor}" if cursor else "")
                page = (await client.get(url, headers=auth(tokens["bob"]))).json()
                messages = page["messages"] + messages
                cursor = page["nextCursor"]
                if not cursor:
                    break
        stored_ids = [m["id"] for m in messages]
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            failures.append(f"seq not gapless: {len(seqs)} messages, first gap near {next((i for i, s in enumerate(seqs, 1) if s != i), None)}")
        if len(set(stored_ids)) != len(stored_ids):
            failures.append("duplicate message ids")
        client_ids = [m["clientMessageId"] for m in messages]
        if len(set(client_ids)) != len(client_ids):
            failures.append("a clientMessageId was stored twice")
        lost = [cid for cid, mid in acked.items() if mid not in set(stored_ids)]
        if lost:
            failures.append(f"{len(lost)} acknowledged messages lost, e.g. {lost[:3]}")
        # Every acknowledged edit, reaction and delete holds.
        by_id = {m["id"]: m for m in messages}
        wrong = []
        for mid, want in expected.items():
            got = by_id.get(mid)
            if mid in uncertain or got is None:
                continue
            if want.get("deleted"):
                if got["deletedAt"] is None or got["content"] != "" or got["reactions"]:
                    wrong.append((mid, "not deleted"))
                continue
            if "content" in want and got["content"] != want["content"]:
                wrong.append((mid, f"content {got['content']!r}, not {want['content']!r}"))
            if want.get("reacted") and not any(r["emoji"] == "tada" for r in got["reactions"]):
                wrong.append((mid, "reaction lost"))
        if wrong:
            failures.append(f"{len(wrong)} acknowledged changes did not hold, e.g. {wrong[:3]}")
        changes = len([m for m in expected if m not in uncertain])
        # Every acknowledged upload is served, byte for byte, and its message mentions bob.
        bad_files = [fid for fid, text in uploads.items()
                     if httpx.get(f"{server.base}/api/chat/files/{fid}", headers=auth(tokens["bob"])).text != text]
        if bad_files:
            failures.append(f"{len(bad_files)} acknowledged files not served as uploaded, e.g. {bad_files[:3]}")
        bob_id = next(u["id"] for u in users if u["username"] == "bob")
        with_files = [m for m in messages if m["attachments"]]
        if len(with_files) < len(uploads) or any(bob_id not in m["mentions"] for m in with_files):
            failures.append(f"uploads: {len(with_files)} messages with files for {len(uploads)} acknowledged, or a mention lost")
        # The last acknowledged rename and membership change of the side conversation hold.
        side_now = httpx.get(f"{server.base}/api/chat/{side}/members", headers=auth(tokens["alice"])).json()["members"]
        carol_in = any(m["id"] == carol_id for m in side_now)
        side_title = next((c["title"] for c in httpx.get(server.base + "/api/chat/conversations", headers=auth(tokens["alice"])).json()["conversations"]
                           if c["id"] == side), None)
        if not members["uncertain"] and (carol_in != members["carol"] or side_title != members["title"]):
            failures.append(f"acknowledged membership changes did not hold: carol {carol_in}, title {side_title!r}, expected {members}")
        carol_sees = any(c["id"] == side for c in httpx.get(server.base + "/api/chat/conversations", headers=auth(tokens["carol"])).json()["conversations"])
        if carol_sees != carol_in:
            failures.append("carol's conversation list disagrees with the members")

        # A resuming long-poll client receives every message, once, in order.
        polled = []
        poll_cursor = start_cursor
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                r = (await client.get(f"{server.base}/api/chat/poll?cursor={poll_cursor}&conversationId={conversation}&timeout=0",
                                      headers={**auth(tokens["carol"]), "Accept-Encoding": "gzip"})).json()
                polled += [e["data"]["id"] for e in r["events"] if e["type"] == "new_message"]
                if not r["events"]:
                    break
                poll_cursor = r["cursor"]
        if polled != stored_ids:
            failures.append(f"long-poll replay differs: {len(polled)} events for {len(stored_ids)} messages")

        # So does a WebSocket client joining with `since`.
        replayed = []
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=auth(tokens["carol"]),
                                      max_size=2 ** 22) as ws:
            await ws.send(json.dumps({"type": "join_room", "conversationId": conversation, "since": start_cursor}))
            while len(replayed) < len(stored_ids):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "new_message":
                    replayed.append(frame["data"]["id"])
            # Graceful shutdown tells the socket 1001.
            server.terminate()
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code != 1001:
                    failures.append(f"graceful shutdown closed the WebSocket with {code}, not 1001")
        if replayed != stored_ids:
            failures.append(f"WebSocket replay differs: {len(replayed)} events for {len(stored_ids)} messages")

        # After the graceful stop, everything is still there.
        server.start(demo=False)
        count = len(httpx.get(f"{server.base}/api/chat/{conversation}/messages?limit=200", headers=auth(tokens["bob"])).json()["messages"])
        if count == 0:
            failures.append("no messages after graceful restart")
        print(f"crash test: {KILLS} SIGKILLs, {len(acked)} acknowledged, {len(stored_ids)} stored, "
              f"{len(lost)} lost, seq 1..{seqs[-1] if seqs else 0}; {changes} messages changed and checked; {members['acked']} membership changes and {len(uploads)} uploads acknowledged", flush=True)
    finally:
        server.stop()
    return failures


if __name__ == "__main__":
    sys.exit(report("crash_test", asyncio.run(run())))
