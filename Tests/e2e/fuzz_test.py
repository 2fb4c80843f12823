"""Fuzzes every JSON endpoint from the OpenAPI document with schemathesis and every check it has (`--checks all`:
no 5xx, status codes, content types and bodies as documented, schema-valid requests accepted, schema-invalid ones
refused, 405 with Allow for undocumented methods, auth enforced), coverage, fuzzing and stateful phases, bounded.
Any failure fails the test."""
import subprocess
import sys

from harness import Server, token

# Through the interpreter, so it works wherever pip put the `st` script.
SCHEMATHESIS = [sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"]


def run(server, tok, *options, timeout):
    command = SCHEMATHESIS + [
        "run", server.base + "/api/openapi.json", "-H", f"Authorization: Bearer {tok}", "--checks", "all", "--seed", "1",
        "--no-color", *options,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    lines = result.stdout.splitlines()
    if result.returncode != 0:
        print("\n".join(lines[-80:]))
    else:
        print("\n".join(lines[-6:]))
    return result.returncode == 0


server = Server().start(demo=True)
try:
    tok = token(server.base, "acme", "alice")
    results = [
        # Every operation but the streams (SSE and the WebSocket upgrade never end), long-poll (below) and logout
        # (it would end the token the rest of the run uses).
        run(server, tok, "--max-examples", "30", "--exclude-path", "/api/chat/poll", "--exclude-path", "/api/auth/logout",
            "--exclude-path", "/api/chat/ws", "--exclude-path", "/api/chat/events",
            "--exclude-operation-id", "sendMessageWithFiles", timeout=600),
        # The upload: multipart fields are text on the wire, so schemathesis's "type" mutations (a number or a boolean
        # where the schema says string) arrive as valid text and are rightly accepted. Every other check applies;
        # refusals of bad files, sizes and fields are asserted in FileAPITests.
        run(server, tok, "--max-examples", "30", "--include-operation-id", "sendMessageWithFiles",
            "--include-operation-id", "startConversation", "--include-operation-id", "downloadFile",
            "--exclude-checks", "negative_data_rejection", timeout=600),
        # Long-poll holds up to `timeout` seconds by design: a few examples, without the stateful phase (it has no links).
        run(server, tok, "--max-examples", "4", "--include-path", "/api/chat/poll", "--phases", "coverage,fuzzing",
            "--request-timeout", "70", timeout=600),
    ]
    ok = all(results)
finally:
    server.stop()
print(f"fuzz_test: {1 if ok else 0} passed, {0 if ok else 1} failed")
sys.exit(0 if ok else 1)
