"""The documented deployment, into a temporary root: scripts/install.sh lays out the binary, resources and docs;
the systemd unit passes `systemd-analyze verify` and rates well in `systemd-analyze security`; the shipped
environment file starts the installed server (found its resources by itself), admin commands work with it, and /ready
and the metrics listener answer."""
import os
import subprocess
import sys
import tempfile
import time

import httpx

from harness import BINARY, ROOT, free_port, report

failures = []
root = tempfile.mkdtemp(prefix="chat-deploy-")
prefix = os.path.join(root, "usr", "local")
subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), prefix, BINARY], check=True, capture_output=True)
installed = os.path.join(prefix, "bin", "chat-server")
for path in ("bin/chat-server", "share/chat-server/templates/login.mustache", "share/chat-server/Public/app.js",
             "share/doc/chat-server/DEPLOY.md", "share/doc/chat-server/chat-server.service"):
    if not os.path.exists(os.path.join(prefix, path)):
        failures.append(f"install.sh did not install {path}")

# The unit, pointed at the temporary root.
etc = os.path.join(root, "etc", "chat-server")
os.makedirs(etc)
with open(os.path.join(ROOT, "deploy", "chat-server.env")) as f:
    env_text = f.read()
with open(os.path.join(etc, "chat-server.env"), "w") as f:
    f.write(env_text)
with open(os.path.join(ROOT, "deploy", "chat-server.service")) as f:
    unit = f.read().replace("/usr/local/bin/chat-server", installed).replace("/etc/chat-server/chat-server.env", os.path.join(etc, "chat-server.env"))
unit_path = os.path.join(root, "chat-server.service")
with open(unit_path, "w") as f:
    f.write(unit)
verify = subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True, text=True)
if verify.returncode != 0 or verify.stderr.strip():
    failures.append(f"systemd-analyze verify: {verify.stderr.strip()[:300]}")
security = subprocess.run(["systemd-analyze", "security", "--offline=true", unit_path], capture_output=True, text=True)
exposure = next((line for line in security.stdout.splitlines() if "Overall exposure level" in line), "")
try:
    score = float(exposure.split(":")[1].split()[0])
    if score > 2.0:
        failures.append(f"the unit's exposure is {score}, over 2.0")
except (IndexError, ValueError):
    failures.append(f"no exposure score from systemd-analyze security: {security.stdout[-200:]}")

# The environment file as the unit would pass it, with this test's ports and folder.
env = dict(os.environ)
for line in env_text.splitlines():
    if line and not line.startswith("#") and "=" in line:
        key, value = line.split("=", 1)
        env[key] = value
port, metrics_port = free_port(), free_port()
env.update({"CHAT_PORT": str(port), "CHAT_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "CHAT_DATABASE": os.path.join(root, "var", "chat.sqlite"), "CHAT_BCRYPT_COST": "4"})
subprocess.run([installed, "create-tenant", "--slug", "acme", "--name", "Acme"], env=env, cwd="/", check=True, capture_output=True)
subprocess.run([installed, "create-user", "--tenant", "acme", "--username", "alice", "--bcrypt-cost", "4"], env=env, cwd="/",
               input="a long password\n", text=True, check=True, capture_output=True)
server = subprocess.Popen([installed, "serve"], env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
try:
    deadline = time.time() + 30
    ready = None
    while time.time() < deadline and server.poll() is None:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    if ready is None or ready.status_code != 200:
        failures.append(f"the installed server is not ready: {ready.status_code if ready else server.poll()}")
    else:
        login = httpx.post(f"http://127.0.0.1:{port}/api/auth/token", json={"tenant": "acme", "username": "alice", "password": "a long password"})
        if login.status_code != 200:
            failures.append(f"signing in on the installed server: {login.status_code}")
        if "chat_live_connections" not in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text:
            failures.append("the metrics listener from the environment file does not answer")
        if httpx.get(f"http://127.0.0.1:{port}/login").status_code != 200:
            failures.append("the installed server does not render pages")
finally:
    server.terminate()
    code = server.wait(timeout=30)
    if code != 0:
        failures.append(f"the installed server exited with {code} on SIGTERM")
print(f"deploy test: {exposure.strip()}", flush=True)
sys.exit(report("deploy_test", failures))
