"""HTTPS and WSS served by chat-server itself: a self-signed certificate made with openssl, then a login (Secure
cookie, HSTS), a WebSocket over wss:// and an SSE stream over https:// that both receive a message sent meanwhile.
A certificate file that cannot be read stops start-up with a message saying which."""
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile

import httpx
import websockets

from harness import BINARY, Server, report


def make_certificate(folder):
    certificate, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate],
                   check=True, capture_output=True)
    return certificate, key


class TLSServer(Server):
    @property
    def base(self):
        return f"https://127.0.0.1:{self.port}"


async def run():
    failures = []
    folder = tempfile.mkdtemp(prefix="chat-tls-")
    certificate, key = make_certificate(folder)
    server = TLSServer(extra=["--tls-certificate", certificate, "--tls-key", key])
    # The harness polls /health over plain HTTP; start it by hand over HTTPS instead.
    server.process = subprocess.Popen(
        [BINARY, "serve", "--host", "127.0.0.1", "--port", str(server.port), "--database", server.database, "--bcrypt-cost", "4",
         "--log-level", "warning", "--demo", "--drain-seconds", "0", "--tls-certificate", certificate, "--tls-key", key],
        stdout=server.log, stderr=server.log)
    context = ssl.create_default_context(cafile=certificate)
    try:
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            for _ in range(200):
                try:
                    if (await client.get(server.base + "/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
            login = await client.post(server.base + "/api/auth/login", json={"tenant": "acme", "username": "alice", "password": "demo-password"})
            cookie = login.headers.get("set-cookie", "")
            if login.status_code != 200 or "Secure" not in cookie:
                failures.append(f"login over HTTPS: {login.status_code}, cookie {cookie!r} is not Secure")
            if "max-age=" not in login.headers.get("strict-transport-security", ""):
                failures.append("no Strict-Transport-Security over HTTPS")
            token = (await client.post(server.base + "/api/auth/token",
                                       json={"tenant": "acme", "username": "alice", "password": "demo-password"})).json()["token"]
            headers = {"Authorization": "Bearer " + token}
            conversation = (await client.get(server.base + "/api/chat/conversations", headers=headers)).json()["conversations"][0]["id"]

            sse_events = []

            async def sse():
                async with client.stream("GET", server.base + f"/api/chat/events?conversationId={conversation}", headers=headers,
                                         timeout=None) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            sse_events.append(json.loads(line[6:]))
            stream = asyncio.create_task(sse())
            async with websockets.connect(f"wss://127.0.0.1:{server.port}/api/chat/ws", ssl=context, additional_headers=headers) as ws:
                await ws.send(json.dumps({"type": "join_room", "conversationId": conversation}))
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "joined":
                    pass
                await asyncio.sleep(0.3)
                sent = (await client.post(server.base + "/api/chat/send", headers=headers,
                                          json={"conversationId": conversation, "content": "over TLS"})).json()["message"]
                got = False
                while not got:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    got = frame["type"] == "new_message" and frame["data"]["id"] == sent["id"]
            for _ in range(100):
                if any(e.get("data", {}).get("id") == sent["id"] for e in sse_events):
                    break
                await asyncio.sleep(0.05)
            else:
                failures.append("the SSE stream over HTTPS did not get the message")
            stream.cancel()
    except Exception as error:  # noqa: BLE001 — any failure of the TLS path is the test's failure
        failures.append(f"TLS path failed: {error!r}")
    finally:
        server.stop()
    broken = subprocess.run([BINARY, "serve", "--port", "0", "--database", os.path.join(folder, "x.sqlite"),
                             "--tls-certificate", os.path.join(folder, "missing.pem"), "--tls-key", key],
                            capture_output=True, text=True, timeout=30)
    if broken.returncode == 0 or "missing.pem" not in broken.stderr:
        failures.append(f"an unreadable certificate did not stop start-up clearly: {broken.stderr[-200:]}")
    return failures


if __name__ == "__main__":
    sys.exit(report("tls_test", asyncio.run(run())))
