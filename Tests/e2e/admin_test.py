"""The admin commands: create a tenant and a user (password on stdin) on a fresh database, then sign in as that user.
Without --demo nothing else is seeded. A second server on the same database file refuses to start; an unreachable
PostgreSQL stops the server at start with a clear message. The server runs from any working directory and from an
install layout, takes every option from the environment, and --help names them all."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import httpx

from harness import BINARY, ROOT, Server, free_port, report, token


def serves_pages(binary, cwd, env, extra=()):
    """Starts `binary serve` from `cwd` with options from `env` only; True when pages and static files answer."""
    port = free_port()
    process = subprocess.Popen([binary, "serve", *extra], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **env, "CHAT_PORT": str(port)})
    try:
        deadline = time.time() + 30
        while time.time() < deadline and process.poll() is None:
            try:
                login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
                script = httpx.get(f"http://127.0.0.1:{port}/static/app.js", timeout=1)
                return login.status_code == 200 and 'name="password"' in login.text and script.status_code == 200
            except httpx.HTTPError:
                time.sleep(0.05)
        return False
    finally:
        process.kill()
        process.wait()

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
    # Agents: created, listed and changed while the server runs, never showing the key (only where it is read from);
    # an agent cannot sign in; deleting one stops it but keeps its user.
    prompt = os.path.join(server.dir, "prompt.txt")
    with open(prompt, "w") as f:
        f.write("You are Initech's helper. Be brief.")
    made = admin("create-agent", "--tenant", "initech", "--name", "helper", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                 "--model", "tiny", "--api-key-env", "INITECH_MODEL_KEY", "--system-prompt-file", prompt, "--daily-token-budget", "5000",
                 "--requests-per-minute", "6")
    if made.returncode != 0 or "key from $INITECH_MODEL_KEY" not in made.stdout:
        failures.append(f"create-agent failed: {made.stdout} {made.stderr}")
    if admin("create-agent", "--tenant", "initech", "--name", "bad", "--backend", "openai").returncode == 0:
        failures.append("an openai agent without --base-url was accepted")
    if admin("create-agent", "--tenant", "initech", "--name", "bad", "--api-key-env", "sk-live-123").returncode == 0:
        failures.append("a key given where its variable's name belongs was accepted")
    updated = admin("update-agent", "--tenant", "initech", "--name", "helper", "--requests-per-minute", "2")
    listed = admin("list-agents", "--tenant", "initech").stdout
    if updated.returncode != 0 or "2 calls a minute" not in listed or "5000 tokens a day" not in listed or "tiny" not in listed:
        failures.append(f"update-agent or list-agents: {updated.stderr} {listed}")
    agents = httpx.get(server.base + "/api/agents", headers={"Authorization": "Bearer " + tok})
    body = agents.text
    if agents.status_code != 200 or [a["username"] for a in agents.json()["agents"]] != ["helper"] or "127.0.0.1:9" in body or "INITECH" in body:
        failures.append(f"GET /api/agents: {agents.status_code} {body}")
    if httpx.post(server.base + "/api/auth/token", json={"tenant": "initech", "username": "helper", "password": "!"}).status_code != 401:
        failures.append("an agent could sign in")
    if admin("delete-agent", "--tenant", "initech", "--name", "helper").returncode != 0 or "no agents" not in admin("list-agents", "--tenant", "initech").stdout:
        failures.append("delete-agent did not remove the agent")
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
    # Runs from anywhere: from / with every option from the environment, and from an install layout
    # (<prefix>/bin/chat-server, <prefix>/share/chat-server/{templates,Public}) with no checkout around it.
    folder = tempfile.mkdtemp(prefix="chat-anywhere-")
    env = {"CHAT_DATABASE": os.path.join(folder, "env.sqlite"), "CHAT_DEMO": "1", "CHAT_BCRYPT_COST": "4", "CHAT_LOG_LEVEL": "warning"}
    if not serves_pages(BINARY, "/", env):
        failures.append("the server started from / did not find its templates and static files")
    prefix = os.path.join(folder, "install")
    os.makedirs(os.path.join(prefix, "bin"))
    shutil.copy(BINARY, os.path.join(prefix, "bin", "chat-server"))
    for name in ("templates", "Public"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(prefix, "share", "chat-server", name))
    env["CHAT_DATABASE"] = os.path.join(folder, "installed.sqlite")
    if not serves_pages(os.path.join(prefix, "bin", "chat-server"), folder, env):
        failures.append("an installed server did not find share/chat-server beside its binary")
    broken = subprocess.run([BINARY, "serve", "--port", "0", "--database", os.path.join(folder, "x.sqlite"), "--resources", folder],
                            capture_output=True, text=True, timeout=30, cwd="/")
    if broken.returncode == 0 or "must contain templates/ and Public/" not in broken.stderr:
        failures.append(f"a folder without resources did not stop start-up clearly: {broken.stderr[-200:]}")
    help_text = subprocess.run([BINARY, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    for variable in ("CHAT_HOST", "CHAT_PORT", "CHAT_DATABASE", "CHAT_DEMO", "CHAT_BCRYPT_COST", "CHAT_ALLOWED_ORIGIN",
                     "CHAT_TRUSTED_PROXY", "CHAT_SECURE_COOKIES", "CHAT_EVENT_RETENTION_DAYS", "CHAT_RESOURCES", "CHAT_LOG_LEVEL"):
        if variable not in help_text:
            failures.append(f"serve --help does not name {variable}")
    top_help = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=30).stdout
    for command in ("serve", "create-tenant", "create-user", "migrate-data", "backup"):
        if command not in top_help:
            failures.append(f"chat-server --help does not list {command}")
    # No demo data without --demo.
    if httpx.post(server.base + "/api/auth/token", json={"tenant": "acme", "username": "alice", "password": "demo-password"}).status_code != 401:
        failures.append("demo data exists without --demo")
finally:
    server.stop()
sys.exit(report("admin_test", failures))
