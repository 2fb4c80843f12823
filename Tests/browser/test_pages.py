"""Two people in two browsers: live delivery over each transport, threads, new conversations, closing, no-JS,
escaping, fallback, accessibility and screenshots."""
import json
import time
import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from conftest import chromium, login, screenshot, wait


def api_token(server, username, tenant="acme"):
    r = httpx.post(server.base + "/api/auth/token", json={"tenant": tenant, "username": username, "password": "demo-password"})
    return {"Authorization": "Bearer " + r.json()["token"]}


def new_conversation(server, title, creator="alice", others=("bob",)):
    headers = api_token(server, creator)
    users = httpx.get(server.base + "/api/users", headers=headers).json()["users"]
    ids = [u["id"] for u in users if u["username"] in others]
    return httpx.post(server.base + "/api/chat/start", headers=headers, json={"title": title, "participantIds": ids}).json()["conversation"]["id"]


def open_chat(driver, server, conversation, transport=None, extra=""):
    query = f"?transport={transport}" if transport else ""
    if extra:
        query += ("&" if query else "?") + extra
    driver.get(f"{server.base}/chat/{conversation}{query}")


def wait_live(driver, transport, timeout=10):
    wait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, ".live-badge").get_attribute("data-transport") == transport)


def people_in(server, browsers, conversation, *usernames):
    """A browser per person, signed in, on the conversation, live over WebSocket."""
    drivers = []
    for username in usernames:
        driver = browsers()
        login(driver, server, username)
        open_chat(driver, server, conversation)
        drivers.append(driver)
    for driver in drivers:
        wait_live(driver, "ws")
    return drivers


def type_and_send(driver, text, selector="#content"):
    box = driver.find_element(By.CSS_SELECTOR, selector)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def message_with_text(driver, text, container="#messages"):
    for li in driver.find_elements(By.CSS_SELECTOR, f"{container} li.message[data-message-id]"):
        if li.find_element(By.CSS_SELECTOR, ".content").text == text:
            return li
    return None


def in_message(driver, text, selector, container="#messages"):
    """The element `selector` inside the message showing `text`, or None while either is not on the page
    (a wait keeps polling through a form's page load instead of failing on the half-loaded page)."""
    message = message_with_text(driver, text, container)
    found = message.find_elements(By.CSS_SELECTOR, selector) if message is not None else []
    return found[0] if found else None


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_message_typed_by_one_appears_for_the_other_without_reload(server, browsers, transport):
    conversation = new_conversation(server, f"live {transport}")
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    open_chat(alice, server, conversation, transport)
    open_chat(bob, server, conversation, transport)
    wait_live(alice, transport)
    wait_live(bob, transport)
    text = f"hello over {transport} {uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    type_and_send(alice, text)
    wait(bob, 2).until(lambda d: message_with_text(d, text))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    li = message_with_text(bob, text)
    assert li.get_attribute("data-seq").isdigit()
    # The sender sees it once (optimistic bubble reconciled with the ack), and so does the receiver.
    wait(alice, 5).until(lambda d: message_with_text(d, text) is not None)
    time.sleep(0.5)
    assert sum(1 for li in alice.find_elements(By.CSS_SELECTOR, "#messages li.message .content") if li.text == text) == 1
    assert sum(1 for li in bob.find_elements(By.CSS_SELECTOR, "#messages li.message .content") if li.text == text) == 1
    # The live region announced it to screen readers.
    assert text in bob.find_element(By.ID, "live-region").get_attribute("textContent")


def test_thread_reply_appears_in_thread_and_count_rises_live(server, browsers):
    conversation = new_conversation(server, "threads")
    headers = api_token(server, "alice")
    root = httpx.post(server.base + "/api/chat/send", headers=headers, json={"conversationId": conversation, "content": "thread root"}).json()["message"]["id"]
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    open_chat(alice, server, conversation)
    bob.get(f"{server.base}/chat/{conversation}/thread/{root}")
    wait_live(alice, "ws")
    wait_live(bob, "ws")
    thread_count = lambda d: d.find_element(By.CSS_SELECTOR, "#thread-panel .thread-count").text
    assert thread_count(bob) == "No replies yet"
    type_and_send(bob, "a reply in the thread", "#reply-content")
    wait(bob, 3).until(lambda d: message_with_text(d, "a reply in the thread", "#thread-replies"))
    wait(bob, 3).until(lambda d: thread_count(d) == "1 reply")
    link = lambda d: d.find_element(By.CSS_SELECTOR, f'#messages [data-message-id="{root}"] .thread-link').text
    wait(alice, 3).until(lambda d: link(d) == "1 reply")
    type_and_send(bob, "and another", "#reply-content")
    wait(bob, 3).until(lambda d: thread_count(d) == "2 replies")
    wait(alice, 3).until(lambda d: link(d) == "2 replies")
    # Escape closes the thread panel.
    bob.find_element(By.CSS_SELECTOR, "#reply-content").send_keys(Keys.ESCAPE)
    wait(bob, 5).until(lambda d: not d.find_elements(By.ID, "thread-panel"))


def test_conversation_started_in_the_ui_appears_in_the_others_list(server, browsers):
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    bob.get(server.base + "/chat")
    wait_live(bob, "ws")
    title = f"Planning {uuid.uuid4().hex[:6]}"
    alice.get(server.base + "/chat")
    alice.find_element(By.ID, "title").send_keys(title)
    bob_box = next(el for el in alice.find_elements(By.CSS_SELECTOR, ".people-picker label") if "Bob" in el.text)
    bob_box.find_element(By.CSS_SELECTOR, "input").click()
    alice.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    wait(alice, 5).until(EC.url_matches(r"/chat/cnv_"))
    wait(bob, 3).until(lambda d: any(title in el.text for el in d.find_elements(By.CSS_SELECTOR, "#conversation-list .conv-title")))


def test_people_picker_finds_and_adds_with_the_keyboard(server, browsers):
    """The type-ahead: typing asks the directory, arrow keys and Enter tick the person, the form starts with them."""
    alice = browsers()
    login(alice, server, "alice")
    alice.get(server.base + "/chat")
    title = f"Picked {uuid.uuid4().hex[:6]}"
    alice.find_element(By.ID, "title").send_keys(title)
    search = alice.find_element(By.ID, "people-q")
    assert search.get_attribute("role") == "combobox"
    search.send_keys("CAR")
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "people-options").is_displayed())
    assert search.get_attribute("aria-expanded") == "true"
    options = alice.find_elements(By.CSS_SELECTOR, "#people-options [role=option]")
    assert [o.text for o in options] == ["Carol Chen @carol"] or all("carol" in o.text.lower() for o in options)
    search.send_keys(Keys.ARROW_DOWN, Keys.ARROW_UP, Keys.ENTER)
    carol = next(el for el in alice.find_elements(By.CSS_SELECTOR, ".people-picker label") if "@carol" in el.text)
    assert carol.find_element(By.TAG_NAME, "input").is_selected()
    assert not alice.find_element(By.ID, "people-options").is_displayed()
    alice.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    wait(alice, 5).until(EC.url_matches(r"/chat/cnv_"))
    conversation = alice.current_url.rsplit("/", 1)[1]
    carols = httpx.get(server.base + "/api/chat/conversations", headers=api_token(server, "carol")).json()["conversations"]
    assert any(c["id"] == conversation and c["title"] == title for c in carols)


def test_people_search_works_without_javascript(server, browsers):
    alice = browsers(javascript=False)
    login(alice, server, "alice")
    alice.get(server.base + "/chat")
    alice.find_element(By.ID, "people-q").send_keys("bo")
    alice.find_element(By.CSS_SELECTOR, ".people-search button[type=submit]").click()
    wait(alice, 5).until(EC.url_contains("q=bo"))
    labels = [el.text for el in alice.find_elements(By.CSS_SELECTOR, ".people-picker label")]
    assert labels == ["Bob Brown @bob"] or (len(labels) == 1 and "@bob" in labels[0])
    alice.find_element(By.CSS_SELECTOR, ".people-picker input").click()
    alice.find_element(By.ID, "title").send_keys("found without JS")
    alice.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    wait(alice, 5).until(EC.url_matches(r"/chat/cnv_"))
    alice.get(server.base + "/chat?q=nobody-like-this")
    assert "Nobody matches" in alice.find_element(By.CSS_SELECTOR, ".people-picker").text


def test_a_long_conversation_list_pages_and_a_late_one_comes_to_the_top(server, browsers):
    """Erin (globex) is in 60 conversations: the list shows 50 and a "More" link; scrolling loads the rest, and a
    message in a conversation that was not loaded brings it to the top live. Without JavaScript the link pages."""
    headers = api_token(server, "erin", tenant="globex")
    ids = [httpx.post(server.base + "/api/chat/start", headers=headers, json={"title": f"erin {i:02d}", "participantIds": []}).json()["conversation"]["id"]
           for i in range(60)]
    erin = browsers()
    login(erin, server, "erin", tenant="globex")
    erin.get(server.base + "/chat")
    wait_live(erin, "ws")
    items = lambda d: d.find_elements(By.CSS_SELECTOR, "#conversation-list .conversation")
    assert len(items(erin)) >= 50
    more = erin.find_element(By.ID, "more-conversations")
    erin.execute_script("arguments[0].scrollIntoView()", more)
    wait(erin, 5).until(lambda d: len(items(d)) >= 61 and not d.find_elements(By.ID, "more-conversations"))
    titles = [el.text for el in erin.find_elements(By.CSS_SELECTOR, "#conversation-list .conv-title")]
    assert len(titles) == len(set(titles))
    # The oldest one gets a message: it moves to the top of the list without a reload.
    httpx.post(server.base + "/api/chat/send", headers=headers, json={"conversationId": ids[0], "content": "back on top"})
    wait(erin, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, "#conversation-list .conversation .conv-title").text == "erin 00")
    plain = browsers(javascript=False)
    login(plain, server, "erin", tenant="globex")
    plain.get(server.base + "/chat")
    first_page = {el.text for el in plain.find_elements(By.CSS_SELECTOR, "#conversation-list .conv-title")}
    plain.find_element(By.ID, "more-conversations").click()
    second_page = {el.text for el in plain.find_elements(By.CSS_SELECTOR, "#conversation-list .conv-title")}
    assert len(first_page) == 50 and second_page and not (first_page & second_page)


def test_members_page_and_the_others_count(server, browsers):
    conversation = new_conversation(server, "Members view", others=("bob", "carol"))
    alice = browsers()
    login(alice, server, "alice")
    open_chat(alice, server, conversation)
    people = alice.find_element(By.CSS_SELECTOR, ".chat-header .people a")
    # In the order they joined; people who joined together (here, at the start) come in id order.
    header = people.text.split(", ")
    assert sorted(header) == ["Alice Anders", "Bob Brown", "Carol Chen"]
    people.click()
    wait(alice, 5).until(EC.url_contains("/members"))
    names = [el.text for el in alice.find_elements(By.CSS_SELECTOR, ".member-list .member-name")]
    assert names == header, "the members page lists them in the header's order"
    assert "3 people" in alice.find_element(By.CSS_SELECTOR, ".members-card").text


def test_members_are_renamed_added_and_removed_from_the_page_and_a_removed_browser_stops_at_once(server, browsers):
    conversation = new_conversation(server, "Membership", others=("bob",))
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    open_chat(bob, server, conversation)
    wait_live(bob, "ws")
    # Without JavaScript: rename, find Carol and add her.
    plain = browsers(javascript=False)
    login(plain, server, "alice")
    plain.get(f"{server.base}/chat/{conversation}/members")
    name = plain.find_element(By.CSS_SELECTOR, 'input[name="title"]')
    name.clear()
    name.send_keys("Membership <b>renamed</b>")
    plain.find_element(By.CSS_SELECTOR, ".rename-form button").click()
    wait(plain, 5).until(lambda d: "renamed" in d.find_element(By.ID, "members-title").text)
    assert plain.find_element(By.ID, "members-title").text == "Members of Membership <b>renamed</b>"
    # Bob's open page hears of the new name live, as text.
    wait(bob, 10).until(lambda d: d.find_element(By.ID, "chat-title").text == "Membership <b>renamed</b>")
    search = plain.find_element(By.CSS_SELECTOR, '.people-search input[name="q"]')
    search.send_keys("car")
    search.send_keys(Keys.ENTER)
    wait(plain, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, '.add-form input[name="userIds"]'))
    labels = [" ".join(el.text.split()) for el in plain.find_elements(By.CSS_SELECTOR, ".add-form label")]
    assert labels == ["Carol Chen @carol"]
    plain.find_element(By.CSS_SELECTOR, '.add-form input[name="userIds"]').click()
    plain.find_element(By.CSS_SELECTOR, ".add-form button").click()
    wait(plain, 5).until(lambda d: "3 people" in d.find_element(By.CSS_SELECTOR, ".members-card").text)
    wait(bob, 10).until(lambda d: "Carol Chen" in d.find_element(By.CSS_SELECTOR, ".chat-header .people a").text)
    screenshot(plain, "members-desktop")
    # The creator removes Bob: his open page says so at once and takes no more messages.
    remove = [b for b in plain.find_elements(By.CSS_SELECTOR, ".member-list button") if b.get_attribute("aria-label") == "Remove Bob Brown"]
    assert len(remove) == 1 and not [b for b in plain.find_elements(By.CSS_SELECTOR, ".member-list button") if "Alice" in (b.get_attribute("aria-label") or "")]
    remove[0].click()
    wait(plain, 5).until(lambda d: "2 people" in d.find_element(By.CSS_SELECTOR, ".members-card").text)
    wait(bob, 10).until(lambda d: d.find_element(By.ID, "removed-banner").is_displayed())
    assert not bob.find_element(By.ID, "content").is_enabled()
    assert not bob.find_elements(By.CSS_SELECTOR, f'.conversation-list [data-conversation-id="{conversation}"]')
    httpx.post(server.base + "/api/chat/send", headers=api_token(server, "alice"), json={"conversationId": conversation, "content": "not for bob"})
    time.sleep(1)
    assert message_with_text(bob, "not for bob") is None
    bob.get(f"{server.base}/chat/{conversation}")
    assert "not found" in bob.page_source.lower() or "does not exist" in bob.page_source.lower()
    # Leaving (with JavaScript) goes back to the list, without the conversation.
    alice.get(f"{server.base}/chat/{conversation}/members")
    alice.find_element(By.CSS_SELECTOR, ".leave-form button").click()
    wait(alice, 5).until(lambda d: d.current_url.rstrip("/").endswith("/chat"))
    assert not alice.find_elements(By.CSS_SELECTOR, f'[data-conversation-id="{conversation}"]')


def test_mentions_complete_with_the_keyboard_mark_the_person_and_count_in_their_list(server, browsers):
    conversation = new_conversation(server, "Mentions", others=("bob", "carol"))
    elsewhere = new_conversation(server, "Elsewhere", creator="carol", others=("alice",))
    bob, carol = browsers(), browsers()
    login(bob, server, "bob")
    login(carol, server, "carol")
    open_chat(bob, server, conversation)
    open_chat(carol, server, elsewhere)
    wait_live(bob, "ws")
    wait_live(carol, "ws")
    box = bob.find_element(By.ID, "content")
    box.send_keys("Ask @ca")
    option = wait(bob, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, ".mention-list:not([hidden]) [role=option]"))
    assert "Carol Chen" in option.text and box.get_attribute("aria-activedescendant") == option.get_attribute("id")
    box.send_keys(Keys.ENTER)  # chooses, does not send
    assert box.get_attribute("value") == "Ask @carol "
    box.send_keys("about <b>it</b>")
    box.send_keys(Keys.ENTER)
    sent = wait(bob, 10).until(lambda d: message_with_text(d, "Ask @carol about <b>it</b>"))
    assert sent.find_element(By.CSS_SELECTOR, ".mention").text == "@carol"
    # Carol, elsewhere: a mention count on the conversation in her list, then the marked message when she opens it.
    count = wait(carol, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, f'[data-conversation-id="{conversation}"] .mention-count:not([hidden])'))
    assert count.text.replace(" ", "").endswith("@1")
    carol.find_element(By.CSS_SELECTOR, f'[data-conversation-id="{conversation}"] a').click()
    mine = wait(carol, 10).until(lambda d: message_with_text(d, "Ask @carol about <b>it</b>"))
    assert "mentions-me" in mine.get_attribute("class")
    assert mine.find_element(By.CSS_SELECTOR, ".mention.me").text == "@carol"
    assert not carol.find_elements(By.CSS_SELECTOR, ".content b")
    screenshot(carol, "mentions-desktop")
    # Without JavaScript, the server marks it the same way.
    plain = browsers(javascript=False)
    login(plain, server, "carol")
    open_chat(plain, server, conversation)
    assert message_with_text(plain, "Ask @carol about <b>it</b>").find_element(By.CSS_SELECTOR, ".mention.me").text == "@carol"


def test_presence_shows_in_the_header_and_the_list_and_follows_the_other_browser(server, browsers):
    pair = new_conversation(server, "", creator="carol", others=("bob",))
    carol = browsers()
    login(carol, server, "carol")
    open_chat(carol, server, pair)
    wait_live(carol, "ws")
    bob = browsers()
    login(bob, server, "bob")
    open_chat(bob, server, pair)
    wait_live(bob, "ws")
    wait(carol, 10).until(lambda d: d.find_element(By.ID, "presence-line").text == "Bob Brown is online")
    dot = carol.find_element(By.CSS_SELECTOR, f'[data-conversation-id="{pair}"] .presence-dot')
    assert dot.get_attribute("data-status") == "online" and dot.get_attribute("aria-label") == "Bob Brown is online"
    screenshot(carol, "presence-desktop")
    # Bob closes his browser: after the grace (a reload is not "offline"), Carol sees him go.
    bob.quit()
    wait(carol, 25).until(lambda d: d.find_element(By.ID, "presence-line").text == "Bob Brown is offline")
    assert carol.find_element(By.CSS_SELECTOR, f'[data-conversation-id="{pair}"] .presence-dot').get_attribute("data-status") == "offline"
    # A page rendered now shows the same, without JavaScript.
    plain = browsers(javascript=False)
    login(plain, server, "carol")
    open_chat(plain, server, pair)
    assert plain.find_element(By.ID, "presence-line").text == "Bob Brown is offline"


def test_files_attach_show_as_previews_and_links_and_work_without_javascript(server, browsers, tmp_path):
    conversation = new_conversation(server, "Files", others=("bob",))
    png = tmp_path / "chart.png"
    # A valid 1x1 PNG.
    png.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005000201"
        "e22bd5ad0000000049454e44ae426082"))
    notes = tmp_path / "notes.txt"
    notes.write_text("agenda: ship it\n")
    alice, bob = people_in(server, browsers, conversation, "alice", "bob")
    alice.find_element(By.ID, "attach-files").send_keys(str(png))
    alice.find_element(By.ID, "content").send_keys("The chart")
    alice.find_element(By.CSS_SELECTOR, "#composer button[type=submit]").click()
    image = wait(bob, 10).until(lambda d: in_message(d, "The chart", ".attachments img"))
    assert image.get_attribute("alt") == "chart.png"
    wait(bob, 10).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth === 1", image))
    screenshot(bob, "files-desktop")
    # Without JavaScript: the same composer form, a text file becomes a download link.
    plain = browsers(javascript=False)
    login(plain, server, "bob")
    open_chat(plain, server, conversation)
    plain.find_element(By.ID, "attach-files").send_keys(str(notes))
    plain.find_element(By.CSS_SELECTOR, "#composer button[type=submit]").click()
    link = wait(plain, 10).until(lambda d: in_message(d, "notes.txt", ".attachment-file"))
    assert link.text == "notes.txt" and link.get_attribute("download") is not None
    got = httpx.get(link.get_attribute("href"), headers=api_token(server, "alice"))
    assert got.text == "agenda: ship it\n" and got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    # Someone outside the conversation cannot fetch it.
    assert httpx.get(link.get_attribute("href"), headers=api_token(server, "carol")).status_code == 404


def test_summary_panel_opens_from_the_chat_and_the_page_works_without_javascript(server, browsers):
    conversation = new_conversation(server, "Launch plan", others=("bob",))
    for who, text in (("alice", "The launch checklist is ready for review in the wiki."),
                      ("bob", "I reviewed the launch checklist, two items are still open."),
                      ("alice", "Who books the launch retro?")):
        httpx.post(server.base + "/api/chat/send", headers=api_token(server, who), json={"conversationId": conversation, "content": text})
    alice = browsers()
    login(alice, server, "alice")
    open_chat(alice, server, conversation)
    link = alice.find_element(By.ID, "summary-link")
    assert link.get_attribute("aria-expanded") == "false"
    link.send_keys(Keys.ENTER)
    panel = alice.find_element(By.ID, "summary-panel")
    wait(alice, 10).until(lambda d: "Open questions" in panel.text)
    assert link.get_attribute("aria-expanded") == "true"
    assert "Who books the launch retro?" in panel.text and "Extractive digest" in panel.text
    assert alice.switch_to.active_element == panel
    screenshot(alice, "summary-panel-desktop")
    panel.send_keys(Keys.ESCAPE)
    wait(alice, 5).until(lambda d: not panel.is_displayed())
    assert alice.switch_to.active_element == link

    plain = browsers(javascript=False)
    login(plain, server, "alice")
    open_chat(plain, server, conversation)
    plain.find_element(By.ID, "summary-link").click()
    wait(plain, 5).until(EC.url_contains("/summary"))
    card = plain.find_element(By.CSS_SELECTOR, ".summary-card")
    assert "Key points" in card.text and "Who books the launch retro?" in card.text
    assert [el.text for el in card.find_elements(By.CSS_SELECTOR, ".member-list .member-name")] == ["Alice Anders", "Bob Brown"]
    screenshot(plain, "summary-page-desktop")


def test_an_agents_reply_grows_on_the_page_then_becomes_a_bot_message(server, browsers):
    import subprocess
    from fake_model import FakeModel
    from harness import BINARY, ROOT
    with FakeModel(reply="The launch is on Friday at ten, in the big room, with cake.", pieces=6, delay=0.4) as fake:
        created = subprocess.run([BINARY, "create-agent", "--database", server.database, "--tenant", "acme", "--name", "helper",
                                  "--display-name", "Helper", "--backend", "openai", "--base-url", fake.base_url, "--model", "fake-model"],
                                 capture_output=True, text=True, cwd=ROOT)
        assert created.returncode == 0, created.stderr
        headers = api_token(server, "alice")
        helper = [u["id"] for u in httpx.get(server.base + "/api/users?q=helper", headers=headers).json()["users"]][0]
        conversation = httpx.post(server.base + "/api/chat/start", headers=headers,
                                  json={"title": "Ask Helper", "participantIds": [helper]}).json()["conversation"]["id"]
        alice = browsers()
        login(alice, server, "alice")
        open_chat(alice, server, conversation)
        wait_live(alice, "ws")
        type_and_send(alice, "When is the launch?")
        preview = wait(alice, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "#messages .agent-preview"))
        assert preview.get_attribute("aria-busy") == "true"
        wait(alice, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "#messages .agent-preview .content").text.startswith("The launch"))
        partial = alice.find_element(By.CSS_SELECTOR, "#messages .agent-preview .content").text
        assert partial != "The launch is on Friday at ten, in the big room, with cake."
        assert "Helper is writing a reply" in alice.find_element(By.ID, "live-region").get_attribute("textContent")
        screenshot(alice, "agent-streaming-desktop")
        final = "The launch is on Friday at ten, in the big room, with cake."
        wait(alice, 15).until(lambda d: message_with_text(d, final) is not None and not d.find_elements(By.CSS_SELECTOR, "#messages .agent-preview"))
        bubble = message_with_text(alice, final)
        assert bubble.find_element(By.CSS_SELECTOR, ".bot-badge").is_displayed()
        assert len([li for li in alice.find_elements(By.CSS_SELECTOR, "#messages li.message") if li.find_element(By.CSS_SELECTOR, ".content").text == final]) == 1
        # The model was shown the conversation as quoted data.
        assert any("When is the launch?" in json.dumps(r) for r in fake.requests)
        # Reloaded, the stored reply carries its bot badge from the server.
        alice.refresh()
        assert message_with_text(alice, final).find_element(By.CSS_SELECTOR, ".bot-badge").text.lower() == "bot"
        screenshot(alice, "agent-reply-desktop")


def test_edit_and_delete_in_place_reach_the_other_browser_and_work_without_javascript(server, browsers):
    conversation = new_conversation(server, "Edits", others=("bob",))
    alice, bob = people_in(server, browsers, conversation, "alice", "bob")
    type_and_send(alice, "Lunch at noon")
    wait(bob, 10).until(lambda d: message_with_text(d, "Lunch at noon") is not None)
    mine = wait(alice, 10).until(lambda d: message_with_text(d, "Lunch at noon"))
    # Bob sees no Edit or Delete on Alice's message.
    assert not message_with_text(bob, "Lunch at noon").find_elements(By.CSS_SELECTOR, ".message-actions")
    mine.find_element(By.CSS_SELECTOR, ".edit-link").send_keys(Keys.ENTER)
    box = wait(alice, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, ".edit-box textarea"))
    assert alice.switch_to.active_element == box
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Lunch at one")
    box.send_keys(Keys.ENTER)
    edited = wait(bob, 10).until(lambda d: message_with_text(d, "Lunch at one"))
    assert edited.find_element(By.CSS_SELECTOR, ".edited").is_displayed()
    assert message_with_text(alice, "Lunch at one").find_element(By.CSS_SELECTOR, ".edited").is_displayed()
    preview = f'[data-conversation-id="{conversation}"] .conv-last'
    wait(bob, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, preview).text == "Alice Anders: Lunch at one")
    screenshot(bob, "edited-desktop")
    message_with_text(alice, "Lunch at one").find_element(By.CSS_SELECTOR, ".delete-form button").click()
    alice.switch_to.alert.accept()
    wait(bob, 10).until(lambda d: message_with_text(d, "message deleted") is not None)
    tomb = message_with_text(bob, "message deleted")
    assert "deleted" in tomb.get_attribute("class") and "Lunch" not in tomb.text
    # The list's preview follows the edit and the delete, live.
    wait(bob, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, preview).text == "Alice Anders: message deleted")

    # Without JavaScript: the Edit link opens a form, Delete is a form.
    plain = browsers(javascript=False)
    login(plain, server, "alice")
    headers = api_token(server, "alice")
    httpx.post(server.base + "/api/chat/send", headers=headers, json={"conversationId": conversation, "content": "typo hree"})
    open_chat(plain, server, conversation)
    message_with_text(plain, "typo hree").find_element(By.CSS_SELECTOR, ".edit-link").click()
    area = wait(plain, 5).until(lambda d: d.find_element(By.ID, "edit-content"))
    area.clear()
    area.send_keys("typo here")
    plain.find_element(By.CSS_SELECTOR, ".edit-card button[type=submit]").click()
    fixed = wait(plain, 5).until(lambda d: message_with_text(d, "typo here"))
    assert fixed.find_element(By.CSS_SELECTOR, ".edited").is_displayed()
    fixed.find_element(By.CSS_SELECTOR, ".delete-form button").click()
    # Waits for the page after the delete: the message gone and both deleted ones shown (a half-loaded page has neither).
    wait(plain, 5).until(lambda d: message_with_text(d, "typo here") is None
                         and len(d.find_elements(By.CSS_SELECTOR, "#messages li.message.deleted")) == 2)


def test_reactions_from_the_picker_reach_the_other_browser_and_work_without_javascript(server, browsers):
    conversation = new_conversation(server, "Reactions", others=("bob",))
    httpx.post(server.base + "/api/chat/send", headers=api_token(server, "alice"), json={"conversationId": conversation, "content": "We shipped it"})
    alice, bob = people_in(server, browsers, conversation, "alice", "bob")
    bubble = message_with_text(bob, "We shipped it")
    bubble.find_element(By.CSS_SELECTOR, ".react-link").send_keys(Keys.ENTER)
    picker = wait(bob, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, ".reaction-picker"))
    assert bob.switch_to.active_element.get_attribute("data-code") == "thumbsup"
    bob.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    bob.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert bob.switch_to.active_element.get_attribute("data-code") == "joy"
    bob.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    bob.switch_to.active_element.send_keys(Keys.ENTER)  # tada
    chip = wait(alice, 10).until(lambda d: in_message(d, "We shipped it", '.reaction[data-code="tada"]'))
    assert chip.text.replace(" ", "").endswith("1") and chip.get_attribute("aria-pressed") == "false"
    chip.click()
    wait(bob, 10).until(lambda d: getattr(in_message(d, "We shipped it", '.reaction[data-code="tada"] .count'), "text", None) == "2")
    assert message_with_text(alice, "We shipped it").find_element(By.CSS_SELECTOR, '.reaction[data-code="tada"]').get_attribute("aria-pressed") == "true"
    screenshot(bob, "reactions-desktop")

    plain = browsers(javascript=False)
    login(plain, server, "alice")
    open_chat(plain, server, conversation)
    message_with_text(plain, "We shipped it").find_element(By.CSS_SELECTOR, ".react-link").click()
    wait(plain, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, ".reaction-choices"))
    plain.find_element(By.CSS_SELECTOR, '.reaction-choices button[value="rocket"]').click()
    rocket = wait(plain, 5).until(lambda d: in_message(d, "We shipped it", '.reaction[data-code="rocket"]'))
    assert rocket.get_attribute("aria-pressed") == "true"
    # Pressing her own chip takes the reaction back.
    message_with_text(plain, "We shipped it").find_element(By.CSS_SELECTOR, '.reaction[data-code="tada"]').click()
    wait(plain, 5).until(lambda d: getattr(in_message(d, "We shipped it", '.reaction[data-code="tada"] .count'), "text", None) == "1")


def test_the_search_box_finds_messages_with_highlights_and_works_without_javascript(server, browsers):
    conversation = new_conversation(server, "Search me", others=("bob",))
    httpx.post(server.base + "/api/chat/send", headers=api_token(server, "bob"),
               json={"conversationId": conversation, "content": "The quarterly <b>forecast</b> is ready for review"})
    for javascript in (True, False):
        alice = browsers(javascript=javascript)
        login(alice, server, "alice")
        box = alice.find_element(By.ID, "search-q")
        box.send_keys("quarter forec")
        box.send_keys(Keys.ENTER)
        wait(alice, 5).until(EC.url_contains("/search?q="))
        results = alice.find_elements(By.CSS_SELECTOR, ".search-results li")
        assert len(results) == 1, [r.text for r in results]
        marks = [m.text for m in results[0].find_elements(By.CSS_SELECTOR, "mark")]
        assert [m.lower() for m in marks] == ["quarterly", "forecast"], marks
        assert "<b>forecast</b>" in results[0].find_element(By.CSS_SELECTOR, ".excerpt").text  # shown as text, never markup
        results[0].find_element(By.CSS_SELECTOR, "a").click()
        wait(alice, 5).until(EC.url_contains(f"/chat/{conversation}"))
    # Another tenant finds nothing of it.
    dave = browsers(javascript=False)
    login(dave, server, "dave", tenant="globex")
    dave.get(server.base + "/search?q=quarterly")
    assert "No messages match." in dave.find_element(By.CSS_SELECTOR, ".search-card").text


def test_closing_disables_the_composer_for_both(server, browsers):
    conversation = new_conversation(server, "to close")
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    open_chat(alice, server, conversation)
    open_chat(bob, server, conversation)
    wait_live(bob, "ws")
    alice.find_element(By.CSS_SELECTOR, ".close-form button").click()
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is not None)
    wait(bob, 3).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is not None)
    assert bob.find_element(By.ID, "closed-banner").is_displayed()


def test_blocked_websocket_falls_back_and_still_delivers(server, browsers):
    conversation = new_conversation(server, "fallback")
    bob = browsers()
    login(bob, server, "bob")
    open_chat(bob, server, conversation, extra="wsurl=ws://127.0.0.1:9/blocked")
    wait_live(bob, "sse", timeout=15)
    headers = api_token(server, "alice")
    httpx.post(server.base + "/api/chat/send", headers=headers, json={"conversationId": conversation, "content": "after fallback"})
    wait(bob, 3).until(lambda d: message_with_text(d, "after fallback"))


def test_markup_in_messages_renders_as_text(server, browsers):
    conversation = new_conversation(server, "escaping")
    payload = "<img src=x onerror=alert(1)>"
    headers = api_token(server, "alice")
    httpx.post(server.base + "/api/chat/send", headers=headers, json={"conversationId": conversation, "content": payload})
    alice, bob = browsers(), browsers()
    login(alice, server, "alice")
    login(bob, server, "bob")
    open_chat(bob, server, conversation)
    wait_live(bob, "ws")
    open_chat(alice, server, conversation)
    type_and_send(alice, payload + " live")
    wait(bob, 3).until(lambda d: message_with_text(d, payload + " live"))
    for driver in (alice, bob):
        assert message_with_text(driver, payload) is not None
        assert not driver.find_elements(By.CSS_SELECTOR, "#messages .content img")
        try:
            driver.switch_to.alert
            pytest.fail("a script from a message ran")
        except Exception:
            pass


def test_everything_works_with_javascript_off(server, browsers):
    alice = browsers(javascript=False)
    login(alice, server, "alice")
    title = f"No JS {uuid.uuid4().hex[:6]}"
    alice.get(server.base + "/chat")
    alice.find_element(By.ID, "title").send_keys(title)
    next(el for el in alice.find_elements(By.CSS_SELECTOR, ".people-picker label") if "Carol" in el.text).find_element(By.TAG_NAME, "input").click()
    alice.find_element(By.CSS_SELECTOR, ".start-form button[type=submit]").click()
    wait(alice, 5).until(EC.url_matches(r"/chat/cnv_"))
    assert alice.find_element(By.CSS_SELECTOR, ".live-badge").get_attribute("data-transport") == "off"
    alice.find_element(By.ID, "content").send_keys("sent without JavaScript")
    alice.find_element(By.CSS_SELECTOR, "#composer button[type=submit]").click()
    wait(alice, 5).until(lambda d: message_with_text(d, "sent without JavaScript"))
    root = message_with_text(alice, "sent without JavaScript")
    root_id = root.get_attribute("data-message-id")
    root.find_element(By.CSS_SELECTOR, ".thread-link").click()
    wait(alice, 5).until(EC.presence_of_element_located((By.ID, "reply-content")))
    alice.find_element(By.ID, "reply-content").send_keys("reply without JavaScript")
    alice.find_element(By.CSS_SELECTOR, "#thread-composer button[type=submit]").click()
    wait(alice, 5).until(lambda d: message_with_text(d, "reply without JavaScript", "#thread-replies"))
    assert alice.find_element(By.CSS_SELECTOR, f'#messages [data-message-id="{root_id}"] .reply-count').text == "1"
    alice.find_element(By.CSS_SELECTOR, ".close-form button").click()
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is not None)
    alice.find_element(By.CSS_SELECTOR, ".reopen-form button").click()
    wait(alice, 5).until(lambda d: d.find_element(By.ID, "content").get_attribute("disabled") is None)
    alice.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait(alice, 5).until(EC.url_contains("/login"))
    alice.get(server.base + "/chat")
    assert "/login" in alice.current_url


def main_pages(server):
    conversation = new_conversation(server, "Screens and checks", others=("bob", "carol"))
    headers = api_token(server, "alice")
    root = None
    for i, text in enumerate(["Morning! Shall we look at the launch checklist?", "Yes — the long URL https://example.com/" + "a" * 120 + " wraps fine.", "Let's do it."]):
        m = httpx.post(server.base + "/api/chat/send", headers=api_token(server, ("alice", "bob", "carol")[i]),
                       json={"conversationId": conversation, "content": text}).json()["message"]
        root = root or m["id"]
    httpx.post(f"{server.base}/api/chat/thread/{root}/reply", headers=api_token(server, "bob"), json={"content": "I'll take the first half."})
    return {"list": "/chat", "chat": f"/chat/{conversation}", "thread": f"/chat/{conversation}/thread/{root}",
            "summary": f"/chat/{conversation}/summary", "members": f"/chat/{conversation}/members"}


def test_main_pages_have_no_serious_accessibility_violations_and_are_photographed(server, browsers):
    from axe_selenium_python import Axe
    pages = main_pages(server)
    for width, height, label in ((1280, 860, "desktop"), (390, 844, "phone")):
        driver = browsers(width=width, height=height)
        login(driver, server, "alice")
        for name, path in pages.items():
            driver.get(server.base + path)
            if name not in ("summary", "members"):  # pages without live updates
                wait_live(driver, "ws")
            screenshot(driver, f"{name}-{label}")
            if label == "desktop":
                axe = Axe(driver)
                axe.inject()
                results = axe.run()
                bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
                assert not bad, f"{name}: " + "; ".join(f'{v["id"]}: {v["help"]} {[(n["target"], n.get("failureSummary")) for n in v["nodes"]]}' for v in bad)
    login_driver = browsers()
    login_driver.get(server.base + "/login")
    screenshot(login_driver, "login-desktop")


def test_pages_send_security_headers(server):
    r = httpx.get(server.base + "/login")
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]
    js = httpx.get(server.base + "/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and "max-age" in js.headers["cache-control"] and js.headers["etag"]
    again = httpx.get(server.base + "/static/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
