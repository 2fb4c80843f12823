"""Logs a pipeline can parse and that never hold a secret: with --log-format json at trace level, every line is one
JSON object, a request's lines carry its request id (a trusted proxy's X-Request-Id, else a generated one, returned
in the answer), and no password, token, session cookie or CSRF token appears anywhere in the output."""
import json
import re
import subprocess
import sys

import httpx
import websockets.sync.client as ws_client

from harness import BINARY, Server, report

PASSWORD = "correct-horse-battery-staple-7"

failures = []
server = Server(extra=["--trusted-proxy", "127.0.0.1", "--log-format", "json"])
subprocess.run([BINARY, "create-tenant", "--slug", "initech", "--name", "Initech", "--database", server.database], check=True,
               capture_output=True)
subprocess.run([BINARY, "create-user", "--tenant", "initech", "--username", "peter", "--bcrypt-cost", "4", "--database", server.database],
               input=PASSWORD + "\n", text=True, check=True, capture_output=True)
server.extra += ["--log-level", "trace"]
server.start(demo=False)
secrets = [PASSWORD]
try:
    with httpx.Client(base_url=server.base) as client:
        client.post("/api/auth/login", json={"tenant": "initech", "username": "peter", "password": PASSWORD + "-wrong"})
        login = client.post("/api/auth/login", json={"tenant": "initech", "username": "peter", "password": PASSWORD},
                            headers={"X-Request-Id": "edge-42", "X-Forwarded-For": "203.0.113.5"})
        if login.headers.get("x-request-id") != "edge-42":
            failures.append("a trusted proxy's X-Request-Id was not returned")
        cookie, csrf = login.cookies["chat_session"], login.json()["csrfToken"]
        secrets += [cookie, csrf]
        token = client.post("/api/auth/token", json={"tenant": "initech", "username": "peter", "password": PASSWORD}).json()["token"]
        secrets.append(token)
        bearer = {"Authorization": "Bearer " + token}
        client.get("/api/users", headers=bearer)
        conversation = client.post("/api/chat/start", headers={"X-CSRF-Token": csrf}, json={"title": "logs", "participantIds": []}).json()["conversation"]["id"]
        generated = client.post("/api/chat/send", headers=bearer, json={"conversationId": conversation, "content": "hello"})
        if not generated.headers.get("x-request-id"):
            failures.append("an answer carries no X-Request-Id")
        client.get("/api/chat/nothing-here", headers=bearer)
        client.get("/api/chat/poll?cursor=0&timeout=0", headers=bearer)
        with ws_client.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=bearer) as ws:
            ws.send(json.dumps({"type": "join_room", "conversationId": conversation}))
            ws.recv(timeout=5)
        client.post("/api/auth/logout", headers=bearer)
finally:
    server.terminate()
with open(server.log.name, encoding="utf-8", errors="replace") as f:
    output = f.read()
lines = [line for line in output.splitlines() if line.strip()]
parsed = []
for line in lines:
    try:
        parsed.append(json.loads(line))
    except json.JSONDecodeError:
        failures.append(f"a log line is not JSON: {line[:120]}")
        break
request_lines = [p for p in parsed if "hb.request.id" in p]
if not request_lines:
    failures.append("no request was logged at trace level")
# The router's lines carry request_id; the WebSocket layer logs the upgrade before the router with Hummingbird's own
# hb.request.id, which is the same id unless a trusted proxy sent one.
if not any("request_id" in p for p in request_lines):
    failures.append("no request line carries request_id")
if any(p.get("request_id") not in (None, p["hb.request.id"], "edge-42") for p in request_lines):
    failures.append("a request line carries a request_id that is neither its own nor the proxy's")
if not any(p.get("request_id") == "edge-42" for p in parsed):
    failures.append("the trusted proxy's request id is not in the logs")
if not any(p.get("request_id") == "edge-42" and p.get("client_address") == "203.0.113.5" for p in parsed):
    failures.append("the client address a trusted proxy forwarded is not on the request's log lines")
for secret in secrets:
    if secret in output:
        failures.append(f"a secret ({len(secret)} characters) appears in the logs")

# The default text format: the same metadata on a request's lines, as `key=value` between the label and the source.
text_server = Server(database=server.database, extra=["--trusted-proxy", "127.0.0.1", "--log-level", "trace"])
text_server.start(demo=False)
try:
    with httpx.Client(base_url=text_server.base) as client:
        client.post("/api/auth/login", json={"tenant": "initech", "username": "peter", "password": PASSWORD},
                    headers={"X-Request-Id": "edge-43", "X-Forwarded-For": "203.0.113.6"})
finally:
    text_server.terminate()
with open(text_server.log.name, encoding="utf-8", errors="replace") as f:
    text_lines = [line for line in f.read().splitlines() if " [Hummingbird" in line or " [Chat" in line]
if not text_lines:
    failures.append("no request was logged at trace level in the text format")
if not any(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} (trace|debug|info) chat-server: .*\bclient_address=203\.0\.113\.6\b.*"
                    r"\brequest_id=edge-43\b.* \[\w+\] \S", line) for line in text_lines):
    failures.append(f"no text line carries the request's metadata in swift-log's layout: {text_lines[:3]}")
if PASSWORD in "\n".join(text_lines):
    failures.append("the password appears in the text logs")

print(f"logs test: {len(parsed)} JSON lines, {len(request_lines)} of requests, {len(secrets)} secrets checked, "
      f"{len(text_lines)} text lines", flush=True)
sys.exit(report("logs_test", failures))
