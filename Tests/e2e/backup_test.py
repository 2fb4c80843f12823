"""`chat-server backup` while the server runs and writes: the copy passes PRAGMA integrity_check and holds every
message acknowledged before the backup began; a server started on the copy (the documented restore) serves them."""
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

import httpx

from harness import BINARY, Server, all_messages, auth, report, token

SENDERS = 6


async def sender(index, base, tok, conversation, acked, stop):
    n = 0
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            n += 1
            r = await client.post(base + "/api/chat/send", headers=auth(tok),
                                  json={"conversationId": conversation, "content": f"backup load {index}-{n}", "clientMessageId": f"b{index}-{n}"})
            if r.status_code in (200, 201):
                acked.append((time.monotonic(), r.json()["message"]["id"]))


async def run():
    failures = []
    server = Server().start(demo=True)
    copy = os.path.join(tempfile.mkdtemp(prefix="chat-backup-"), "copy.sqlite")
    try:
        tok = token(server.base, "acme", "alice")
        conversation = httpx.get(server.base + "/api/chat/conversations", headers=auth(tok)).json()["conversations"][0]["id"]
        acked, stop = [], asyncio.Event()
        tasks = [asyncio.create_task(sender(i, server.base, tok, conversation, acked, stop)) for i in range(SENDERS)]
        await asyncio.sleep(1.5)
        began = time.monotonic()
        before = {mid for at, mid in acked if at < began}
        result = await asyncio.to_thread(subprocess.run, [BINARY, "backup", "--database", server.database, "--to", copy],
                                         capture_output=True, text=True, timeout=120)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
        print(result.stdout.strip(), flush=True)
        if result.returncode != 0:
            failures.append(f"backup failed: {result.stderr.strip()}")
            return failures
        with sqlite3.connect(copy) as db:
            if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                failures.append("the copy fails PRAGMA integrity_check")
            stored = {row[0] for row in db.execute("SELECT id FROM messages")}
        missing = before - stored
        if missing:
            failures.append(f"{len(missing)} messages acknowledged before the backup began are not in the copy")
        if len(acked) <= len(before):
            failures.append("nothing was written while the backup ran: the test did not load the server")
        if subprocess.run([BINARY, "backup", "--database", server.database, "--to", copy], capture_output=True).returncode == 0:
            failures.append("backup overwrote an existing file")
        print(f"backup test: {len(before)} acknowledged before the backup, {len(acked)} in all, {len(stored)} messages in the copy", flush=True)
    finally:
        server.stop()
    # Restore as documented: a server on the copy serves what it holds.
    restored = Server(database=copy).start(demo=False)
    try:
        tok = token(restored.base, "acme", "alice")
        served = {m["id"] for m in all_messages(restored.base, tok, conversation)}
        if not before <= served:
            failures.append("a server started on the copy does not serve every message acknowledged before the backup")
    finally:
        restored.stop()
    return failures


if __name__ == "__main__":
    sys.exit(report("backup_test", asyncio.run(run())))
