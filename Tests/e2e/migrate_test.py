"""Moving up from SQLite: a database with conversations, threads, receipts, a closed conversation and live sessions
is copied into PostgreSQL with `chat-server migrate-data`, then served by a PostgreSQL node: the same listings, the
same threads, cursors from before resume to the same events, the same cookie and token still sign in, and new event
ids continue above the old ones. A second copy into the now non-empty database is refused.
Needs CHAT_TEST_POSTGRES_URL (scripts/test.sh starts PostgreSQL)."""
import subprocess
import sys

import httpx

from harness import BINARY, ROOT, Server, auth, fresh_postgres_database, poll_all, report, require_postgres, token


def state(base, alice, bob_cookie, conversation, root, cursor):
    """Everything a client could see, through the public API."""
    bob = {"Cookie": f"chat_session={bob_cookie}"}
    return {
        "alice conversations": httpx.get(base + "/api/chat/conversations", headers=auth(alice)).json(),
        "bob conversations": httpx.get(base + "/api/chat/conversations", headers=bob).json(),
        "history": httpx.get(f"{base}/api/chat/{conversation}/messages?limit=3", headers=auth(alice)).json(),
        "thread": httpx.get(f"{base}/api/chat/thread/{root}", headers=bob).json(),
        "me (cookie)": httpx.get(base + "/api/auth/me", headers=bob).json(),
        # The directory's search terms move too (PostgreSQL fills their sort key after the copy).
        "directory search": [httpx.get(f"{base}/api/users?q={q}", headers=auth(alice)).json() for q in ("b", "car", "ALI")],
        "events after cursor": poll_all(base, auth(alice), cursor)[0],
    }


def main():
    failures = []
    sqlite = Server().start(demo=True)
    try:
        alice = token(sqlite.base, "acme", "alice")
        login = httpx.post(sqlite.base + "/api/auth/login", json={"tenant": "acme", "username": "bob", "password": "demo-password"})
        bob_cookie, bob_csrf = login.cookies["chat_session"], login.json()["csrfToken"]
        bob_headers = {"Cookie": f"chat_session={bob_cookie}", "X-CSRF-Token": bob_csrf}
        users = httpx.get(sqlite.base + "/api/users", headers=auth(alice)).json()["users"]
        ids = [u["id"] for u in users if u["username"] in ("bob", "carol")]
        conversation = httpx.post(sqlite.base + "/api/chat/start", headers=auth(alice),
                                  json={"title": "moving", "participantIds": ids}).json()["conversation"]["id"]
        cursor = httpx.get(sqlite.base + "/api/chat/poll", headers=auth(alice)).json()["cursor"]
        root = None
        for i in range(7):
            message = httpx.post(sqlite.base + "/api/chat/send", headers=auth(alice),
                                 json={"conversationId": conversation, "content": f"before the move {i}", "clientMessageId": f"m-{i}"}).json()["message"]
            root = root or message["id"]
        for i in range(3):
            httpx.post(f"{sqlite.base}/api/chat/thread/{root}/reply", headers=bob_headers, json={"content": f"reply {i}"})
        httpx.post(f"{sqlite.base}/api/chat/{conversation}/read", headers=bob_headers, json={"messageId": root})
        other = httpx.get(sqlite.base + "/api/chat/conversations", headers=auth(alice)).json()["conversations"][-1]["id"]
        httpx.post(f"{sqlite.base}/api/chat/{other}/close", headers=auth(alice))
        before = state(sqlite.base, alice, bob_cookie, conversation, root, cursor)
        _, latest = poll_all(sqlite.base, auth(alice), cursor)
        if sqlite.terminate() != 0:
            failures.append("the SQLite server did not stop cleanly")

        url = fresh_postgres_database("chat_migrate")
        copy = subprocess.run([BINARY, "migrate-data", "--from", sqlite.database, "--to", url], capture_output=True, text=True, cwd=ROOT)
        print(copy.stdout.strip())
        if copy.returncode != 0:
            failures.append(f"migrate-data failed: {copy.stderr.strip()}")
            return failures

        node = Server(database=url).start(demo=False)
        try:
            after = state(node.base, alice, bob_cookie, conversation, root, cursor)
            for key in before:
                if before[key] != after[key]:
                    failures.append(f"{key} differs after the move")
            # New ids continue above every cursor handed out before the move.
            httpx.post(node.base + "/api/chat/send", headers=auth(alice), json={"conversationId": conversation, "content": "after the move"})
            new, _ = poll_all(node.base, auth(alice), latest)
            if [e["data"].get("content") for e in new] != ["after the move"]:
                failures.append(f"polling from the last cursor before the move gave {len(new)} events, not the one new message")
            elif int(new[0]["eventId"]) <= int(latest):
                failures.append("a new event id is not above the old cursors")
            # The cookie also works for a state change with its CSRF token.
            r = httpx.post(node.base + "/api/chat/send", headers=bob_headers, json={"conversationId": conversation, "content": "bob, moved"})
            if r.status_code != 201:
                failures.append(f"the old session cannot send after the move: {r.status_code}")
        finally:
            node.stop()

        again = subprocess.run([BINARY, "migrate-data", "--from", sqlite.database, "--to", url], capture_output=True, text=True, cwd=ROOT)
        if again.returncode == 0 or "empty" not in again.stderr:
            failures.append(f"a second copy into a non-empty database was not refused: {again.returncode} {again.stderr.strip()}")
    finally:
        sqlite.stop()
    return failures


if __name__ == "__main__":
    require_postgres("migrate_test")
    sys.exit(report("migrate_test", main()))
