"""Prometheus metrics on their own listener (--metrics-address), parsed with prometheus_client's parser: request counts
and durations by route and status, live connections, events published, commit batch sizes and durations,
rate-limit refusals, slow consumers, event-log lag, database calls. The public listener serves no /metrics."""
import json
import sys

import httpx
import websockets.sync.client as ws_client
from prometheus_client.parser import text_string_to_metric_families

from harness import Server, auth, free_port, report, token

failures = []
metrics_port = free_port()
server = Server(extra=["--metrics-address", f"127.0.0.1:{metrics_port}"]).start(demo=True)
try:
    tok = token(server.base, "acme", "alice")
    conversation = httpx.get(server.base + "/api/chat/conversations", headers=auth(tok)).json()["conversations"][0]["id"]
    for i in range(5):
        httpx.post(server.base + "/api/chat/send", headers=auth(tok), json={"conversationId": conversation, "content": f"m{i}"})
    for _ in range(11):  # the 11th failure for one account is refused with 429
        last = httpx.post(server.base + "/api/auth/token", json={"tenant": "acme", "username": "bob", "password": "wrong"})
    if last.status_code != 429:
        failures.append(f"the sign-in limit did not trip ({last.status_code})")
    def scrape():
        found = {}
        for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(sample)
        return found

    def value(name, **labels):
        return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))

    # An SSE stream is a request in progress until it ends: counted active while open, timed when it closes.
    with httpx.stream("GET", server.base + "/api/chat/events", headers=auth(tok), timeout=10) as stream:
        lines = stream.iter_lines()  # held: a dropped iterator closes the response
        next(lines)
        samples = scrape()
        if value("http_server_active_requests", http_request_method="GET") != 1:
            failures.append(f"an open SSE stream is not one active request: {value('http_server_active_requests', http_request_method='GET')}")
        if value("http_server_request_duration_count", http_route="/api/chat/events") != 0:
            failures.append("an SSE stream was timed before it ended")
    with ws_client.connect(f"ws://127.0.0.1:{server.port}/api/chat/ws", additional_headers=auth(tok)) as ws:
        ws.send(json.dumps({"type": "join_room", "conversationId": conversation}))
        ws.recv(timeout=5)
        samples = scrape()
    if value("http_server_active_requests") != 0:
        failures.append(f"requests that ended are still counted active: {value('http_server_active_requests')}")
    if value("http_server_request_duration_count", http_route="/api/chat/events") != 1:
        failures.append("the SSE stream's duration was not recorded when it ended")
    if value("http_server_request_duration_count", http_route="/api/chat/send", http_response_status_code="201") != 5:
        failures.append("the five sends are not timed by route and status")
    if value("hb_request_errors_total", http_route="/api/auth/token") < 10:
        failures.append(f"refused sign-ins are not counted as errors: {samples.get('hb_request_errors_total')}")

    if value("chat_live_connections") < 1:
        failures.append("chat_live_connections does not count the open WebSocket")
    if value("chat_events_published_total") < 5:
        failures.append("chat_events_published_total did not count the sends")
    if value("chat_commit_batch_size_count") < 5 or "chat_commit_duration_seconds_count" not in samples:
        failures.append("commit batch sizes and durations are missing")
    if value("chat_rate_limited_total", limit="sign_in") < 1:
        failures.append("the sign-in refusal is not counted in chat_rate_limited_total")
    for name in ("chat_slow_consumers_dropped_total", "chat_event_log_lag_events", "chat_database_calls_in_flight", "chat_commit_batches"):
        if name not in samples:
            failures.append(f"{name} is not exported")
    send_requests = [s for s in samples.get("hb_requests_total", []) if s.labels.get("http_route") == "/api/chat/send"]
    if not send_requests or not any(s.labels.get("http_response_status_code") == "201" for s in send_requests):
        failures.append(f"request counts by route and status are missing: {sorted(samples)[:12]}")
    if not any(name.startswith("http_server_request_duration") for name in samples):
        failures.append("request durations are missing")
    if httpx.get(server.base + "/metrics").status_code != 404:
        failures.append("the public listener serves /metrics")
    print(f"metrics test: {len(samples)} series families parsed", flush=True)
finally:
    server.stop()
sys.exit(report("metrics_test", failures))
