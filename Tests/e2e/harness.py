"""Starts and stops a chat-server binary on a loopback port for end-to-end tests."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("CHAT_SERVER_BINARY", os.path.join(ROOT, ".build", "debug", "chat-server"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on a fixed database file; can be killed and restarted on it."""

    def __init__(self, database=None, extra=(), drain_seconds=0):
        self.dir = tempfile.mkdtemp(prefix="chat-e2e-")
        self.database = database or os.path.join(self.dir, "chat.sqlite")
        self.port = free_port()
        self.extra = list(extra)
        self.drain_seconds = drain_seconds
        self.process = None
        self.log = open(os.path.join(self.dir, "server.log"), "ab")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, demo=True, timeout=30):
        args = [BINARY, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--database", self.database,
                "--bcrypt-cost", "4", "--log-level", "warning", "--drain-seconds", str(self.drain_seconds)] + self.extra
        if demo:
            args.append("--demo")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log, cwd=ROOT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self):
        """SIGKILL: no shutdown code runs, like a power cut for the process."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout=30):
        """SIGTERM: graceful shutdown."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.process and self.process.poll() is None:
            self.kill()


def token(base, tenant, username, password="demo-password"):
    r = httpx.post(base + "/api/auth/token", json={"tenant": tenant, "username": username, "password": password}, timeout=10)
    r.raise_for_status()
    return r.json()["token"]


def auth(tok):
    return {"Authorization": "Bearer " + tok}


def report(name, failures):
    """Prints the failures and the closing line CI reads; returns the exit code."""
    for failure in failures:
        print("FAIL:", failure)
    print(f"{name}: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


def all_messages(base, tok, conversation):
    """Every top-level message of a conversation, oldest first, through the history pages."""
    messages, before = [], None
    while True:
        url = f"{base}/api/chat/{conversation}/messages?limit=200" + (f"&before={before}" if before else "")
        page = httpx.get(url, headers=auth(tok), timeout=10).json()
        messages = page["messages"] + messages
        before = page["nextCursor"]
        if not before:
            return messages


def poll_all(base, headers, cursor, conversation=None):
    """Long-polls from `cursor` until the log is exhausted; returns the durable events and the last cursor."""
    events = []
    while True:
        url = f"{base}/api/chat/poll?cursor={cursor}&timeout=0" + (f"&conversationId={conversation}" if conversation else "")
        answer = httpx.get(url, headers=headers, timeout=30).json()
        durable = [e for e in answer["events"] if e.get("eventId")]
        events += durable
        if not durable:
            return events, answer["cursor"]
        cursor = answer["cursor"]


def fresh_postgres_database(prefix):
    """A new database on the test PostgreSQL (CHAT_TEST_POSTGRES_URL); returns its URL."""
    import os
    import subprocess
    import uuid
    from urllib.parse import urlsplit, urlunsplit
    admin = os.environ["CHAT_TEST_POSTGRES_URL"]
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(admin)
    subprocess.run(["psql", urlunsplit(parts._replace(query="")), "-qc", f"CREATE DATABASE {name}"], check=True)
    return urlunsplit(parts._replace(path="/" + name))


def require_postgres(name):
    """Exits with a failing closing line when the test command did not start PostgreSQL."""
    import os
    import sys
    if not os.environ.get("CHAT_TEST_POSTGRES_URL"):
        print(f"{name}: CHAT_TEST_POSTGRES_URL is not set (scripts/test.sh starts PostgreSQL)")
        print(f"{name}: 0 passed, 1 failed")
        sys.exit(1)
