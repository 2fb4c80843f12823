"""The admin commands: create a tenant and a user (password on stdin) on a fresh database, then sign in as that user.
Without --demo nothing else is seeded. A second server on the same database file refuses to start; an unreachable
PostgreSQL stops the server at start with a clear message."""
import subprocess
import sys

import httpx

from harness import BINARY, Server, report, token

failures = []
server = Server()
try:
    def admin(*args, stdin=None):
        return subprocess.run([BINARY, *args, "--database", server.database], input=stdin, capture_output=True, text=True, timeout=60)

    if admin("create-tenant", "--slug", "initech", "--name", "Initech").returncode != 0:
        failures.append("create-tenant failed")
    if admin("create-user", "--tenant", "initech", "--username", "peter", "--bcrypt-cost", "4", stdin="a-long-password\n").returncode != 0:
        failures.append("create-user failed")
    if admin("create-user", "--tenant", "initech", "--username", "short", stdin="abc\n").returncode == 0:
        failures.append("a too-short password was accepted")
    if admin("create-tenant", "--slug", "initech", "--name", "again").returncode == 0:
        failures.append("a duplicate tenant slug was accepted")
    server.start(demo=False)
    tok = token(server.base, "initech", "peter", password="a-long-password")
    me = httpx.get(server.base + "/api/auth/me", headers={"Authorization": "Bearer " + tok}).json()
    if me["user"]["username"] != "peter" or me["tenant"]["slug"] != "initech":
        failures.append(f"unexpected /me: {me}")
    # One server per database file: a second `serve` on it refuses to start, and the first keeps serving.
    second = subprocess.run([BINARY, "serve", "--database", server.database, "--port", "0"], capture_output=True, text=True, timeout=30)
    if second.returncode == 0 or "already serving" not in second.stderr:
        failures.append(f"a second server started on the same database: {second.returncode} {second.stderr[-200:]}")
    if httpx.get(server.base + "/health").status_code != 200:
        failures.append("the first server stopped answering")
    # Admin commands work while the server runs, and the server sees the new user at once.
    if admin("create-user", "--tenant", "initech", "--username", "milton", "--bcrypt-cost", "4", stdin="stapler-password\n").returncode != 0:
        failures.append("create-user failed while the server runs")
    else:
        token(server.base, "initech", "milton", password="stapler-password")
    # An unreachable PostgreSQL stops `serve` at start with a clear message (and no password in it).
    down = subprocess.run([BINARY, "serve", "--port", "0", "--database", "postgres://chat:s3cret@127.0.0.1:9/chat?connect_timeout=2"],
                          capture_output=True, text=True, timeout=60)
    if down.returncode == 0 or "cannot reach PostgreSQL at 127.0.0.1:9/chat" not in down.stderr or "s3cret" in down.stderr:
        failures.append(f"an unreachable database did not stop serve clearly: {down.returncode} {down.stderr[-300:]}")
    # No demo data without --demo.
    if httpx.post(server.base + "/api/auth/token", json={"tenant": "acme", "username": "alice", "password": "demo-password"}).status_code != 401:
        failures.append("demo data exists without --demo")
finally:
    server.stop()
sys.exit(report("admin_test", failures))
