"""Chromium through a real nginx with the shortest configuration people write (`proxy_pass` and nothing else): nginx
sends the upstream's own address as `Host` and forwards no WebSocket upgrades. The pages must still sign in, send,
reply, close and reopen, and go live (falling back from WebSocket); a page of another origin must still be refused,
in the browser, for forms and WebSocket upgrades; and a forged `Origin` without `Sec-Fetch-Site` must be refused."""
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from conftest import wait
from harness import Server, free_port
from test_pages import api_token, message_with_text, new_conversation, type_and_send

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Another origin on the same host (a different port is the same *site*, so the browser sends the session cookie
# along: only the server's own check stands between this page and the account).
EVIL_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head><body>
<form id="attack" method="post" action="{target}/chat/start">
  <input name="title" value="{title}"><input name="_csrf" value="guessed">
</form>
<script>
  const mode = new URLSearchParams(location.search).get("mode");
  if (mode === "form") document.getElementById("attack").submit();
  if (mode === "ws") {{
    const socket = new WebSocket("{socket}");
    socket.onopen = () => {{ document.title = "ws-open"; }};
    socket.onerror = () => {{ if (document.title !== "ws-open") document.title = "ws-refused"; }};
  }}
</script></body></html>
"""


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Nginx:
    """nginx in the foreground with its own prefix folder: a bare proxy to the server and a static 'other site', or
    (with `shipped=True`) deploy/nginx.conf as an operator would install it."""

    def __init__(self, upstream_port, evil_title, shipped=False):
        self.dir = tempfile.mkdtemp(prefix="chat-nginx-")
        self.port, self.evil_port = free_port(), free_port()
        os.makedirs(os.path.join(self.dir, "evil"))
        os.makedirs(os.path.join(self.dir, "logs"))
        with open(os.path.join(self.dir, "evil", "index.html"), "w") as f:
            f.write(EVIL_PAGE.format(
                target=f"http://127.0.0.1:{self.port}", title=evil_title,
                socket=f"ws://127.0.0.1:{upstream_port}/api/chat/ws"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        site = f"""    server {{
        listen 127.0.0.1:{self.port};
        location / {{ proxy_pass http://127.0.0.1:{upstream_port}; }}
    }}"""
        if shipped:
            # The shipped site, pointed at this test's server and port.
            with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
                site = f.read().replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};") \
                    .replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(f"""{user}worker_processes 1;
error_log {self.dir}/logs/error.log;
pid {self.dir}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/client_body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
{site}
    server {{
        listen 127.0.0.1:{self.evil_port};
        root {self.dir}/evil;
    }}
}}
""")
        self.process = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.evil_port}/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + self.process.stderr.read().decode(errors="replace"))

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


EVIL_TITLE = f"cross-site {uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def proxy(server):
    nginx = Nginx(server.port, EVIL_TITLE)
    yield nginx
    nginx.stop()


def login_via(driver, base, username):
    driver.get(base + "/login")
    driver.find_element(By.NAME, "tenant").send_keys("acme")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys("demo-password")
    driver.find_element(By.CSS_SELECTOR, "form.login-card button[type=submit]").click()
    wait(driver, 10).until(EC.url_contains("/chat"))


def live_transport(driver):
    return driver.find_element(By.CSS_SELECTOR, ".live-badge").get_attribute("data-transport")


def test_pages_work_and_go_live_through_a_bare_proxy_pass(server, proxy, browsers):
    conversation = new_conversation(server, "through nginx")
    alice, bob = browsers(), browsers()
    login_via(alice, proxy.base, "alice")
    login_via(bob, proxy.base, "bob")
    alice.get(f"{proxy.base}/chat/{conversation}")
    bob.get(f"{proxy.base}/chat/{conversation}")
    # nginx forwards no upgrade here: the pages fall back to SSE (or long-poll) and still go live.
    for driver in (alice, bob):
        wait(driver, 20).until(lambda d: live_transport(d) in ("sse", "poll"))

    text = f"via nginx {uuid.uuid4().hex[:6]}"
    type_and_send(alice, text)
    wait(alice, 5).until(lambda d: (li := message_with_text(d, text)) is not None and "failed" not in (li.get_attribute("class") or ""))
    wait(bob, 5).until(lambda d: message_with_text(d, text))
    li = message_with_text(alice, text)
    assert li.get_attribute("data-seq").isdigit(), "the send was not acknowledged"

    # A thread reply from the ThreadedView.
    root = li.get_attribute("data-message-id")
    alice.get(f"{proxy.base}/chat/{conversation}/thread/{root}")
    wait(alice, 20).until(lambda d: live_transport(d) in ("sse", "poll"))
    type_and_send(alice, "reply via nginx", "#reply-content")
    wait(alice, 5).until(lambda d: (li := message_with_text(d, "reply via nginx", "#thread-replies")) is not None
                         and (li.get_attribute("data-seq") or "").isdigit())
    wait(bob, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, f'#messages [data-message-id="{root}"] .thread-link').text == "1 reply")

    # Close and reopen through the forms.
    alice.get(f"{proxy.base}/chat/{conversation}")
    alice.find_element(By.CSS_SELECTOR, ".close-form button").click()
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is not None)
    wait(bob, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is not None)
    alice.find_element(By.CSS_SELECTOR, ".reopen-form button").click()
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is None)


def test_another_origin_cannot_post_a_form_or_open_a_socket_with_the_cookie(server, proxy, browsers):
    alice = browsers()
    login_via(alice, proxy.base, "alice")
    # A form on another origin posts to the chat in the background of the victim's browser: from a sibling port
    # (same site: the browser sends the session cookie, Sec-Fetch-Site says same-site) and from another site.
    headers = api_token(server, "alice")
    for host in ("127.0.0.1", "localhost"):
        alice.get(f"http://{host}:{proxy.evil_port}/?mode=form")
        wait(alice, 10).until(lambda d: "Forbidden" in d.title or "/chat/cnv_" in d.current_url or "/login" in d.current_url)
        assert "/chat/cnv_" not in alice.current_url, host
        titles = [c["title"] for c in httpx.get(server.base + "/api/chat/conversations", headers=headers).json()["conversations"]]
        assert EVIL_TITLE not in titles, host
    alice.get(f"http://127.0.0.1:{proxy.evil_port}/?mode=form")
    wait(alice, 10).until(lambda d: "Forbidden" in d.title)
    # A WebSocket from that page to the server, cookie attached by the browser: refused.
    alice.get(f"http://127.0.0.1:{proxy.evil_port}/?mode=ws")
    wait(alice, 10).until(lambda d: d.title in ("ws-open", "ws-refused"))
    assert alice.title == "ws-refused"


def test_an_sse_client_gets_events_promptly_through_a_bare_proxy(server, proxy):
    """nginx buffers responses by default; the server's X-Accel-Buffering: no must turn it off for the stream."""
    conversation = new_conversation(server, "sse through nginx")
    headers = api_token(server, "bob")
    received = []

    def listen():
        with httpx.Client(timeout=10) as client:
            with client.stream("GET", f"{proxy.base}/api/chat/events?conversationId={conversation}", headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and "promptly" in line:
                        received.append(time.monotonic())
                        return
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.5)
    sent = time.monotonic()
    httpx.post(server.base + "/api/chat/send", headers=api_token(server, "alice"), json={"conversationId": conversation, "content": "promptly"})
    thread.join(5)
    assert received and received[0] - sent < 1.0, "the SSE event did not come through nginx within a second"


def test_a_forged_origin_without_fetch_metadata_is_refused(server, proxy):
    with httpx.Client(base_url=proxy.base) as client:
        login = client.post("/api/auth/login", json={"tenant": "acme", "username": "alice", "password": "demo-password"})
        assert login.status_code == 200
        csrf = login.json()["csrfToken"]
        users = client.get("/api/users").json()["users"]
        bob = next(u["id"] for u in users if u["username"] == "bob")
        body = {"title": "forged", "participantIds": [bob]}
        forged = client.post("/api/chat/start", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "origin_rejected"
        # Without any Origin (a non-browser client) the CSRF token alone decides.
        assert client.post("/api/chat/start", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


@pytest.fixture(scope="module")
def trusted_server():
    s = Server(extra=["--trusted-proxy", "127.0.0.1"]).start(demo=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shipped(trusted_server):
    nginx = Nginx(trusted_server.port, EVIL_TITLE, shipped=True)
    yield nginx
    nginx.stop()


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_the_shipped_nginx_config_carries_every_transport(trusted_server, shipped, browsers, transport):
    conversation = new_conversation(trusted_server, f"shipped {transport}")
    alice, bob = browsers(), browsers()
    login_via(alice, shipped.base, "alice")
    login_via(bob, shipped.base, "bob")
    alice.get(f"{shipped.base}/chat/{conversation}?transport={transport}")
    bob.get(f"{shipped.base}/chat/{conversation}?transport={transport}")
    for driver in (alice, bob):
        wait(driver, 20).until(lambda d: live_transport(d) == transport)
    text = f"through the shipped config over {transport} {uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    type_and_send(alice, text)
    wait(bob, 3).until(lambda d: message_with_text(d, text))
    assert time.monotonic() - started < 3
    # The forwarded address and request id reach the server; the answer carries the id nginx made.
    r = httpx.get(shipped.base + "/health")
    assert r.status_code == 200 and r.headers.get("x-request-id")
