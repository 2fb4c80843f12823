// Live updates for the server-rendered pages. Plain ES module, no build step; every page also works without it.
const body = document.body;
const page = body.dataset.page;
const me = body.dataset.userId;
const myUsername = (body.dataset.username || '').toLowerCase();
const csrf = body.dataset.csrf;
const conversationId = body.dataset.conversationId || null;
const threadId = body.dataset.threadId || null;
const params = new URLSearchParams(location.search);
const forced = ['ws', 'sse', 'poll'].includes(params.get('transport')) ? params.get('transport') : null;
let cursor = body.dataset.cursor || '0';
const seenMessages = new Set(Array.from(document.querySelectorAll('[data-message-id]'), (el) => el.dataset.messageId));

// ---------- small helpers ----------
const $ = (selector, root = document) => root.querySelector(selector);
const badge = $('.live-badge');
const labels = { ws: 'live · WebSocket', sse: 'live · SSE', poll: 'live · polling', off: 'offline' };
function setTransport(kind) {
  if (!badge) return;
  badge.dataset.transport = kind;
  badge.textContent = labels[kind];
}
function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((part) => part[0].toUpperCase()).join('');
}
function relative(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.max(1, Math.floor(seconds / 60))} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 7 * 86400) return `${Math.floor(seconds / 86400)} d ago`;
  return iso.slice(0, 10);
}
function exact(iso) { return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`; }
function setTime(el, iso) {
  el.dateTime = iso;
  el.title = exact(iso);
  el.textContent = relative(iso);
}
function refreshTimes() {
  document.querySelectorAll('time[datetime]').forEach((el) => { el.textContent = relative(el.dateTime); });
}
function newer(a, b) { return Number(a) > Number(b); }
function replyLabel(count) { return count === 0 ? 'Reply' : count === 1 ? 'reply' : 'replies'; }
// The thread panel's count, worded as the server renders it (PageModels.replyCountText).
function replyCountText(count) { return count === 0 ? 'No replies yet' : count === 1 ? '1 reply' : `${count} replies`; }
async function api(method, path, payload) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  if (!response.ok && response.status !== 204) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error.message; } catch { /* keep the status */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

// ---------- messages ----------
const messageList = $('#messages');
const threadReplies = $('#thread-replies');
const liveRegion = $('#live-region');
const scroller = $('#scroller');

function renderMessage(message, { threadLinks, anchor }) {
  const li = $('#message-template').content.firstElementChild.cloneNode(true);
  li.dataset.messageId = message.id;
  li.dataset.seq = String(message.seq);
  li.dataset.senderId = message.senderId;
  knownUsers.set(message.sender.id, message.sender.username);
  if (anchor) li.id = `m-${message.id}`;
  if (message.senderId === me) li.classList.add('mine');
  $('.avatar', li).textContent = initials(message.sender.displayName);
  $('.sender', li).textContent = message.sender.displayName;
  $('.bot-badge', li).hidden = !message.sender.isBot;
  setTime($('time', li), message.createdAt);
  applyMessageState(li, message);
  renderReactions(li, message);
  const link = $('.thread-link', li);
  if (threadLinks && !message.threadParentId) {
    link.href = `/chat/${message.conversationId}/thread/${message.id}`;
    $('.reply-count', link).textContent = String(message.replyCount);
    $('.reply-count', link).hidden = message.replyCount === 0;
    $('.reply-label', link).textContent = replyLabel(message.replyCount);
  } else {
    link.remove();
  }
  return li;
}

// Content, the edited marker, the tombstone and the sender's own Edit/Delete, as the server renders them.
function applyMessageState(li, message) {
  const content = $('.content', li);
  const deleted = Boolean(message.deletedAt);
  li.classList.toggle('deleted', deleted);
  content.classList.toggle('tombstone', deleted);
  if (deleted) content.textContent = 'message deleted';
  else renderContent(content, message);
  renderAttachments(li, deleted ? [] : (message.attachments || []));
  const mentionsMe = !deleted && (message.mentions || []).includes(me);
  li.classList.toggle('mentions-me', mentionsMe);
  const mentionBadge = $('.mention-badge', li);
  if (mentionBadge) mentionBadge.hidden = !mentionsMe;
  const edited = $('.edited', li);
  if (edited) {
    edited.hidden = deleted || !message.editedAt;
    if (message.editedAt) {
      const time = $('time', edited);
      time.dateTime = message.editedAt;
      time.textContent = exact(message.editedAt);
    }
  }
  const actions = $('.message-actions', li);
  if (actions) {
    actions.hidden = deleted || message.senderId !== me;
    if (deleted || message.senderId !== me) { actions.remove(); return; }
    $('.edit-link', actions).href = `/chat/${message.conversationId}/messages/${message.id}/edit`;
    $('.delete-form', actions).action = `/chat/${message.conversationId}/messages/${message.id}/delete`;
    $('input[name="_csrf"]', actions).value = csrf;
  }
}

// Files: images as previews, anything else as a download link.
function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}
function renderAttachments(li, attachments) {
  let list = $('.attachments', li);
  if (!list) {
    if (!attachments.length) return;
    list = document.createElement('ul');
    list.className = 'attachments';
    list.setAttribute('aria-label', 'Attachments');
    $('.content', li).after(list);
  }
  list.textContent = '';
  list.hidden = attachments.length === 0;
  for (const file of attachments) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.href = `/api/chat/files/${encodeURIComponent(file.id)}`;
    if (file.contentType.startsWith('image/')) {
      link.className = 'attachment-image';
      const img = document.createElement('img');
      img.src = link.href;
      img.alt = file.name;
      img.loading = 'lazy';
      link.append(img);
      item.append(link);
    } else {
      link.className = 'attachment-file';
      link.download = '';
      link.textContent = file.name;
      const size = document.createElement('span');
      size.className = 'muted small';
      size.textContent = sizeText(file.size);
      item.append(link, ' ', size);
    }
    list.append(item);
  }
}

// ---------- mentions ----------
// id -> username of the people this page knows (the conversation's members, senders seen): what marks a mention.
const knownUsers = new Map();
if (me && myUsername) knownUsers.set(me, myUsername);

// The content as text, with each `@name` of a mentioned person in a span (as the server renders it; never markup).
function renderContent(el, message) {
  el.textContent = '';
  const names = new Set((message.mentions || []).map((id) => knownUsers.get(id)).filter(Boolean).map((n) => n.toLowerCase()));
  const text = message.content;
  if (!names.size) { el.textContent = text; return; }
  const pattern = /@([A-Za-z0-9_.-]+)/g;
  let last = 0;
  let match;
  while ((match = pattern.exec(text))) {
    const name = match[1].replace(/[.-]+$/, '');
    const before = match.index === 0 ? '' : text[match.index - 1];
    if (!name || (before && /[\p{L}0-9_.-]/u.test(before)) || !names.has(name.toLowerCase())) continue;
    el.append(text.slice(last, match.index));
    const span = document.createElement('span');
    span.className = name.toLowerCase() === myUsername ? 'mention me' : 'mention';
    span.textContent = `@${name}`;
    el.append(span);
    last = match.index + 1 + name.length;
    pattern.lastIndex = last;
  }
  el.append(text.slice(last));
}

// The conversation's members, loaded once: for @ completion and for marking mentions.
let membersLoaded = null;
function loadMembers() {
  if (!conversationId) return Promise.resolve([]);
  membersLoaded ??= api('GET', `/api/chat/${conversationId}/members?limit=500`).then((page) => {
    for (const user of page.members) knownUsers.set(user.id, user.username);
    return page.members;
  }).catch(() => { membersLoaded = null; return []; });
  return membersLoaded;
}

// `@` in a composer offers the conversation's members: arrows move, Enter or Tab inserts `@username `, Escape closes.
let mentionLists = 0;
function wireMentionCompletion(textarea) {
  if (!textarea) return;
  const list = document.createElement('ul');
  list.className = 'mention-list';
  list.id = `mention-list-${++mentionLists}`;
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'People to mention');
  list.hidden = true;
  textarea.closest('form').append(list);
  textarea.setAttribute('aria-autocomplete', 'list');
  textarea.setAttribute('aria-controls', list.id);
  let matches = [];
  let active = 0;
  let start = -1;
  const close = () => {
    list.hidden = true;
    matches = [];
    textarea.removeAttribute('aria-activedescendant');
  };
  const show = () => {
    list.textContent = '';
    matches.forEach((user, index) => {
      const li = document.createElement('li');
      li.id = `${list.id}-${index}`;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(index === active));
      const strong = document.createElement('strong');
      strong.textContent = user.displayName;
      const muted = document.createElement('span');
      muted.className = 'muted';
      muted.textContent = ` @${user.username}`;
      li.append(strong, muted);
      li.addEventListener('mousedown', (event) => { event.preventDefault(); active = index; choose(); });
      list.append(li);
    });
    list.hidden = matches.length === 0;
    if (matches.length) textarea.setAttribute('aria-activedescendant', `${list.id}-${active}`);
    else textarea.removeAttribute('aria-activedescendant');
  };
  const choose = () => {
    const user = matches[active];
    if (!user) return;
    const caret = textarea.selectionStart;
    const text = `@${user.username} `;
    textarea.value = textarea.value.slice(0, start) + text + textarea.value.slice(caret);
    textarea.selectionStart = textarea.selectionEnd = start + text.length;
    if (liveRegion) liveRegion.textContent = `${user.displayName} mentioned`;
    close();
  };
  textarea.addEventListener('input', async () => {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const found = /(^|[^\p{L}0-9_.-])@([A-Za-z0-9_.-]*)$/u.exec(before);
    if (!found) { close(); return; }
    start = before.length - found[2].length - 1;
    const query = found[2].toLowerCase();
    const members = await loadMembers();
    matches = members.filter((u) => u.id !== me && (u.username.toLowerCase().startsWith(query)
      || u.displayName.toLowerCase().split(/\s+/).some((w) => w.startsWith(query)))).slice(0, 8);
    active = 0;
    show();
  });
  textarea.addEventListener('keydown', (event) => {
    if (list.hidden || !matches.length) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      active = (active + (event.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      show();
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      choose();
    } else if (event.key === 'Escape') {
      close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }, { capture: true });
  textarea.addEventListener('blur', () => setTimeout(close, 150));
}

// Reaction chips (toggle buttons; the viewer's own pressed) in the bubble's reactions form.
function renderReactions(li, message) {
  const form = $('.reactions', li);
  if (!form) return;
  form.hidden = Boolean(message.deletedAt);
  form.action = `/chat/${message.conversationId}/messages/${message.id}/react`;
  $('input[name="_csrf"]', form).value = csrf;
  $('.react-link', form).href = form.action;
  form.querySelectorAll('.reaction').forEach((chip) => chip.remove());
  const picker = $('#reaction-picker');
  for (const reaction of message.reactions || []) {
    const choice = picker?.content.querySelector(`[data-code="${CSS.escape(reaction.emoji)}"]`);
    const mine = reaction.userIds.includes(me);
    const chip = Object.assign(document.createElement('button'), { type: 'submit', name: 'emoji', value: reaction.emoji, className: `reaction${mine ? ' mine' : ''}` });
    chip.dataset.code = reaction.emoji;
    chip.setAttribute('aria-pressed', String(mine));
    chip.setAttribute('aria-label', `${choice?.getAttribute('aria-label') || reaction.emoji} ${reaction.count}`);
    const count = Object.assign(document.createElement('span'), { className: 'count', textContent: String(reaction.count) });
    chip.append(`${choice?.textContent || reaction.emoji} `, count);
    form.insertBefore(chip, $('.react-link', form));
  }
}

function onReactions(data) {
  document.querySelectorAll(`[data-message-id="${CSS.escape(data.messageId)}"]`).forEach((li) => {
    renderReactions(li, { id: data.messageId, conversationId, reactions: data.reactions });
  });
}

async function toggleReaction(li, code, on) {
  try {
    const answer = await api(on ? 'PUT' : 'DELETE', `/api/chat/messages/${li.dataset.messageId}/reactions/${encodeURIComponent(code)}`);
    renderReactions(li, answer.message);
  } catch (error) {
    if (liveRegion) liveRegion.textContent = `The reaction could not be saved: ${error.message}`;
  }
}

// Chips toggle; "+ React" opens the picker (arrow keys move, Escape closes). Without JavaScript both are forms.
function wireReactions(list) {
  if (!list) return;
  list.addEventListener('submit', (event) => {
    const form = event.target.closest('.reactions');
    if (!form) return;
    event.preventDefault();
    const chip = event.submitter;
    if (chip?.dataset.code) toggleReaction(form.closest('li.message'), chip.dataset.code, chip.getAttribute('aria-pressed') !== 'true');
  });
  list.addEventListener('click', (event) => {
    const link = event.target.closest('.react-link');
    if (!link) return;
    event.preventDefault();
    const li = link.closest('li.message');
    const open = li.querySelector('.reaction-picker');
    if (open) { open.remove(); return; }
    const picker = $('#reaction-picker').content.firstElementChild.cloneNode(true);
    const buttons = Array.from(picker.querySelectorAll('button'));
    const close = () => { picker.remove(); link.focus(); };
    picker.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-code]');
      if (!button) return;
      const pressed = li.querySelector(`.reaction[data-code="${CSS.escape(button.dataset.code)}"]`)?.getAttribute('aria-pressed') === 'true';
      picker.remove();
      toggleReaction(li, button.dataset.code, !pressed);
      link.focus();
    });
    picker.addEventListener('keydown', (e) => {
      const index = buttons.indexOf(document.activeElement);
      if (e.key === 'ArrowRight' || e.key === 'ArrowDown') { e.preventDefault(); buttons[(index + 1) % buttons.length].focus(); }
      else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { e.preventDefault(); buttons[(index - 1 + buttons.length) % buttons.length].focus(); }
      else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
    });
    link.after(picker);
    buttons[0].focus();
  });
}

function onMessageChanged(message) {
  // The list's preview, when it shows this message.
  const last = sidebarItem(message.conversationId)?.querySelector('.conv-last');
  if (last && last.dataset.lastMessageId === message.id) last.textContent = previewText(message);
  if (message.conversationId !== conversationId) return;
  document.querySelectorAll(`[data-message-id="${CSS.escape(message.id)}"]`).forEach((li) => {
    if (li.querySelector('.edit-box')) return; // being edited here: the save answers
    applyMessageState(li, message);
  });
  if (message.senderId !== me && liveRegion) {
    liveRegion.textContent = message.deletedAt ? `${message.sender.displayName} deleted a message` : `${message.sender.displayName} edited a message: ${message.content}`;
  }
}

// Edit in place (Enter saves, Escape cancels) and delete after a confirmation; without JavaScript both are forms.
function wireMessageActions(list) {
  if (!list) return;
  list.addEventListener('click', (event) => {
    const link = event.target.closest('.edit-link');
    if (!link) return;
    event.preventDefault();
    const li = link.closest('li.message');
    if (li.querySelector('.edit-box')) return;
    const content = $('.content', li);
    const box = document.createElement('div');
    box.className = 'edit-box';
    const area = document.createElement('textarea');
    area.value = content.textContent;
    area.setAttribute('aria-label', 'Edit your message');
    area.maxLength = 10000;
    const save = Object.assign(document.createElement('button'), { type: 'button', className: 'primary', textContent: 'Save' });
    const cancel = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary', textContent: 'Cancel' });
    box.append(area, save, cancel);
    content.hidden = true;
    content.after(box);
    area.focus();
    const close = () => { box.remove(); content.hidden = false; link.focus(); };
    const submit = async () => {
      try {
        const answer = await api('PATCH', `/api/chat/messages/${li.dataset.messageId}`, { content: area.value });
        box.remove();
        content.hidden = false;
        applyMessageState(li, answer.message);
        (li.querySelector('.edit-link') || content).focus();
      } catch (error) {
        area.setCustomValidity(error.message);
        area.reportValidity();
      }
    };
    save.addEventListener('click', submit);
    cancel.addEventListener('click', close);
    area.addEventListener('input', () => area.setCustomValidity(''));
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(); }
      else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
    });
  });
  list.addEventListener('submit', async (event) => {
    const form = event.target.closest('.delete-form');
    if (!form) return;
    event.preventDefault();
    if (!confirm('Delete this message? Its text is removed for everyone.')) return;
    const li = form.closest('li.message');
    try {
      const answer = await api('DELETE', `/api/chat/messages/${li.dataset.messageId}`);
      applyMessageState(li, answer.message);
      if (liveRegion) liveRegion.textContent = 'Message deleted';
    } catch (error) {
      if (liveRegion) liveRegion.textContent = `The message could not be deleted: ${error.message}`;
    }
  });
}

function nearBottom(el) { return !el || el.scrollHeight - el.scrollTop - el.clientHeight < 120; }
function scrollToEnd(el) { if (el) el.scrollTop = el.scrollHeight; }

/** Inserts a message, or reconciles the pending bubble it answers; never shows one twice. */
function placeMessage(list, message, options) {
  if (!list) return;
  const pending = message.clientMessageId && list.querySelector(`[data-client-id="${CSS.escape(message.clientMessageId)}"]`);
  if (list.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`)) {
    if (pending) pending.remove();
    return;
  }
  const stick = nearBottom(list === messageList ? scroller : list.parentElement);
  const element = renderMessage(message, options);
  element.classList.add('new');
  if (pending) {
    pending.replaceWith(element);
  } else {
    // Keep seq order even if events arrive after an optimistic bubble.
    const after = Array.from(list.children).find((li) => li.dataset.seq && Number(li.dataset.seq) > message.seq);
    list.insertBefore(element, after || null);
  }
  $('#no-messages')?.setAttribute('hidden', '');
  if (stick) scrollToEnd(list === messageList ? scroller : list.parentElement);
  observeForRead(element);
}

function bumpReplyCount(rootId) {
  document.querySelectorAll(`[data-message-id="${CSS.escape(rootId)}"] .thread-link`).forEach((link) => {
    const count = Number($('.reply-count', link).textContent) + 1;
    $('.reply-count', link).textContent = String(count);
    $('.reply-count', link).hidden = false;
    $('.reply-label', link).textContent = replyLabel(count);
  });
  if (threadId === rootId) {
    const counter = $('.thread-count');
    if (counter) {
      const count = Number(counter.dataset.count) + 1;
      counter.dataset.count = String(count);
      counter.textContent = replyCountText(count);
    }
  }
}

function onNewMessage(message) {
  updateSidebarForMessage(message);
  if (message.conversationId !== conversationId) return;
  const isNew = !seenMessages.has(message.id);
  seenMessages.add(message.id);
  if (!message.threadParentId) {
    placeMessage(messageList, message, { threadLinks: true, anchor: true });
  } else {
    if (isNew) bumpReplyCount(message.threadParentId);
    if (threadId === message.threadParentId) placeMessage(threadReplies, message, { threadLinks: false, anchor: true });
  }
  if (isNew && message.senderId !== me && liveRegion) {
    liveRegion.textContent = `${message.sender.displayName}: ${message.content}`;
  }
}

// ---------- conversation list ----------
const conversationList = $('#conversation-list');
function sidebarItem(id) { return conversationList?.querySelector(`[data-conversation-id="${CSS.escape(id)}"]`); }

// A conversation beyond the loaded pages that comes alive: it is now the most recent, so the list's first entry.
async function fetchNewestConversation(id) {
  try {
    const page = await api('GET', '/api/chat/conversations?limit=1');
    const conversation = page.conversations[0];
    if (conversation && conversation.id === id && !sidebarItem(id)) onConversationCreated(conversation);
  } catch { /* the next page load shows it */ }
}

// "Sender: the first 80 characters", as the server renders it.
function previewText(message) {
  const text = message.deletedAt ? 'message deleted' : message.content.length > 80 ? `${message.content.slice(0, 80)}…` : message.content;
  return `${message.sender.displayName}: ${text}`;
}

function updateSidebarForMessage(message) {
  const item = sidebarItem(message.conversationId);
  if (!item) {
    if (conversationList) fetchNewestConversation(message.conversationId).then(() => { if (sidebarItem(message.conversationId)) updateSidebarForMessage(message); });
    return;
  }
  if (!message.threadParentId) {
    $('.conv-last', item).textContent = previewText(message);
    $('.conv-last', item).dataset.lastMessageId = message.id;
    if (message.conversationId !== conversationId && message.senderId !== me && !seenMessages.has(`u:${message.id}`)) {
      seenMessages.add(`u:${message.id}`);
      const unread = $('.unread-count', item);
      const number = $('.unread-number', item);
      number.textContent = String(Number(number.textContent || '0') + 1);
      unread.hidden = false;
      item.classList.add('has-unread');
    }
  }
  if ((message.mentions || []).includes(me) && message.senderId !== me && message.conversationId !== conversationId
      && !seenMessages.has(`m:${message.id}`)) {
    seenMessages.add(`m:${message.id}`);
    const number = $('.mention-number', item);
    number.textContent = String(Number(number.textContent || '0') + 1);
    $('.mention-count', item).hidden = false;
    if (liveRegion) liveRegion.textContent = `${message.sender.displayName} mentioned you in ${$('.conv-title', item).textContent}`;
  }
  setTime($('.conv-time', item), message.createdAt);
  conversationList.prepend(item);
}

function conversationTitle(conversation) {
  if (conversation.title) return conversation.title;
  const others = conversation.participants.filter((p) => p.id !== me).map((p) => p.displayName);
  return others.length ? others.join(', ') : 'Just you';
}

// "Alice, Bob and 4,998 others" past three people, as the server renders it.
function peopleText(conversation) {
  const names = conversation.participants.map((p) => p.displayName);
  const count = conversation.participantCount ?? names.length;
  if (count <= 3 || names.length < 2) return names.join(', ');
  return `${names[0]}, ${names[1]} and ${(count - 2).toLocaleString('en-US')} others`;
}

function onConversationCreated(conversation) {
  if (!conversationList || sidebarItem(conversation.id)) return;
  conversationList.prepend(conversationItem(conversation));
  document.querySelector('.sidebar .empty')?.setAttribute('hidden', '');
  if (liveRegion) liveRegion.textContent = `New conversation: ${conversationTitle(conversation)}`;
}

function conversationItem(conversation) {
  const li = document.createElement('li');
  li.className = 'conversation new';
  li.dataset.conversationId = conversation.id;
  const a = document.createElement('a');
  a.href = `/chat/${conversation.id}`;
  const top = document.createElement('span'); top.className = 'conv-top';
  const title = document.createElement('span'); title.className = 'conv-title'; title.textContent = conversationTitle(conversation);
  const time = document.createElement('time'); time.className = 'conv-time'; setTime(time, conversation.createdAt);
  top.append(title, time);
  const people = document.createElement('span'); people.className = 'conv-people';
  people.textContent = peopleText(conversation);
  const bottom = document.createElement('span'); bottom.className = 'conv-bottom';
  const last = document.createElement('span'); last.className = 'conv-last'; last.textContent = 'No messages yet';
  const closed = document.createElement('span'); closed.className = 'closed-tag'; closed.textContent = 'closed'; closed.hidden = true;
  const mentions = document.createElement('span'); mentions.className = 'mention-count'; mentions.hidden = true; mentions.title = 'Mentions you';
  const mentionsSr = document.createElement('span'); mentionsSr.className = 'sr-only'; mentionsSr.textContent = 'Mentions: ';
  const mentionNumber = document.createElement('span'); mentionNumber.className = 'mention-number'; mentionNumber.textContent = '0';
  mentions.append(mentionsSr, '@', mentionNumber);
  if (conversation.mentionCount > 0) { mentionNumber.textContent = String(conversation.mentionCount); mentions.hidden = false; }
  const unread = document.createElement('span'); unread.className = 'unread-count'; unread.hidden = true;
  const sr = document.createElement('span'); sr.className = 'sr-only'; sr.textContent = 'Unread: ';
  const number = document.createElement('span'); number.className = 'unread-number'; number.textContent = '0';
  unread.append(sr, number);
  if (conversation.unreadCount > 0) {
    number.textContent = String(conversation.unreadCount);
    unread.hidden = false;
    li.classList.add('has-unread');
  }
  closed.hidden = !conversation.closedAt;
  bottom.append(last, closed, mentions, unread);
  a.append(top, people, bottom);
  li.append(a);
  return li;
}

// "More conversations": without JavaScript a link to the next page; with it, the next page is appended when the
// link scrolls into view (or is followed).
function wireMoreConversations() {
  const more = $('#more-conversations');
  if (!more || !conversationList) return;
  let loading = false;
  const load = async () => {
    if (loading || !more.dataset.cursor) return;
    loading = true;
    try {
      const page = await api('GET', `/api/chat/conversations?limit=50&cursor=${encodeURIComponent(more.dataset.cursor)}`);
      for (const conversation of page.conversations) {
        if (sidebarItem(conversation.id)) continue;
        const li = conversationItem(conversation);
        li.classList.remove('new');
        $('.conv-last', li).textContent = '';
        setTime($('.conv-time', li), conversation.lastMessageAt || conversation.updatedAt);
        conversationList.append(li);
      }
      if (page.nextCursor) {
        more.dataset.cursor = page.nextCursor;
        more.href = `/chat?after=${encodeURIComponent(page.nextCursor)}`;
      } else {
        more.remove();
      }
    } catch { /* the link still works */ }
    loading = false;
  };
  more.addEventListener('click', (event) => { event.preventDefault(); load(); });
  if ('IntersectionObserver' in window) {
    new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) load(); }).observe(more);
  }
}

function onConversationUpdated(conversation) {
  const item = sidebarItem(conversation.id);
  if (item) {
    $('.closed-tag', item).hidden = !conversation.closedAt;
    item.classList.toggle('is-closed', Boolean(conversation.closedAt));
    $('.conv-title', item).textContent = conversationTitle(conversation);
    $('.conv-people', item).textContent = peopleText(conversation);
  }
  if (conversation.id === conversationId) {
    setClosed(Boolean(conversation.closedAt));
    const title = $('#chat-title');
    if (title) title.textContent = conversationTitle(conversation);
    const people = $('.chat-header .people a');
    if (people) {
      people.textContent = peopleText(conversation);
      people.setAttribute('aria-label', `Members: ${people.textContent}`);
    }
  }
}

// Someone joined: the viewer themself (the conversation appears in their list) or others (names change).
function onParticipantsAdded(data) {
  if (data.userIds.includes(me) && !sidebarItem(data.conversation.id)) onConversationCreated(data.conversation);
  else onConversationUpdated(data.conversation);
}

// Someone left or was removed. When it is the viewer, the conversation leaves their list and, if open, says so and
// stops taking messages: the server sends nothing more of it.
function onParticipantRemoved(data) {
  if (data.userId !== me) { onConversationUpdated(data.conversation); return; }
  sidebarItem(data.conversation.id)?.remove();
  if (data.conversation.id !== conversationId) return;
  $('#removed-banner')?.removeAttribute('hidden');
  document.querySelectorAll('.composer textarea, .composer button').forEach((el) => { el.disabled = true; });
  if (liveRegion) liveRegion.textContent = 'You are no longer in this conversation.';
}

function setClosed(closed) {
  $('#closed-banner')?.toggleAttribute('hidden', !closed);
  $('.close-form')?.toggleAttribute('hidden', closed);
  $('.reopen-form')?.toggleAttribute('hidden', !closed);
  document.querySelectorAll('.composer textarea, .composer button').forEach((el) => { el.disabled = closed; });
}

// ---------- presence ----------
const presenceLine = $('#presence-line');
const presenceOf = new Map((presenceLine?.dataset.statuses || '').split(' ').filter(Boolean).map((pair) => pair.split(':')));

function onPresence(data) {
  document.querySelectorAll(`[data-presence-user="${CSS.escape(data.userId)}"]`).forEach((dot) => {
    const name = (dot.getAttribute('aria-label') || '').replace(/ is \w+$/, '');
    dot.dataset.status = data.status;
    dot.setAttribute('aria-label', `${name} is ${data.status}`);
    dot.title = `${name} is ${data.status}`;
  });
  if (!presenceLine || !presenceOf.has(data.userId)) return;
  presenceOf.set(data.userId, data.status);
  if (presenceLine.dataset.pairName) {
    presenceLine.textContent = `${presenceLine.dataset.pairName} is ${data.status}`;
  } else {
    const online = [...presenceOf.values()].filter((status) => status === 'online').length;
    presenceLine.textContent = online === 0 ? 'Nobody else online' : `${online} online`;
  }
}

// Away after two minutes with the page hidden, back as soon as it is seen again.
let awayTimer = null;
let reportedAway = false;
function reportPresence(status) {
  reportedAway = status === 'away';
  if (live.socket && live.socket.readyState === WebSocket.OPEN) live.socket.send(JSON.stringify({ type: 'presence', status }));
  else api('POST', '/api/chat/presence', { status }).catch(() => {});
}
document.addEventListener('visibilitychange', () => {
  clearTimeout(awayTimer);
  if (document.hidden) awayTimer = setTimeout(() => reportPresence('away'), 120000);
  else if (reportedAway) reportPresence('online');
});

// ---------- typing ----------
const typingLine = $('#typing');
const typers = new Map();
function onTyping(event) {
  if (event.conversationId !== conversationId || event.data.userId === me || !typingLine) return;
  clearTimeout(typers.get(event.data.userId)?.timer);
  const timer = setTimeout(() => { typers.delete(event.data.userId); showTypers(); }, 4000);
  typers.set(event.data.userId, { name: event.data.displayName, timer });
  showTypers();
}
function showTypers() {
  const names = Array.from(typers.values(), (t) => t.name);
  typingLine.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

// ---------- agents' replies while their model writes ----------
// A preview bubble carrying the reply's future clientMessageId: placeMessage replaces it with the stored reply. Its
// growing text is not a live region (it would be read out again and again); the start is announced once, politely,
// and the stored reply is announced like any message.
function onAgentProgress(event) {
  if (event.conversationId !== conversationId) return;
  const data = event.data;
  const list = data.threadParentId ? (threadId === data.threadParentId ? threadReplies : null) : messageList;
  if (!list) return;
  const key = `agent:${data.triggerMessageId}`;
  let preview = list.querySelector(`[data-client-id="${CSS.escape(key)}"]`);
  if (data.done) {
    // The stored reply normally replaced it already; if not (yet), give it a moment.
    if (preview) setTimeout(() => preview.isConnected && preview.classList.contains('agent-preview') && preview.remove(), 2000);
    return;
  }
  if (!preview) {
    preview = $('#message-template').content.firstElementChild.cloneNode(true);
    preview.classList.add('agent-preview');
    preview.removeAttribute('data-message-id');
    preview.removeAttribute('data-seq');
    preview.dataset.clientId = key;
    preview.setAttribute('aria-busy', 'true');
    $('.avatar', preview).textContent = initials(data.displayName);
    $('.sender', preview).textContent = data.displayName;
    $('.bot-badge', preview).hidden = false;
    $('time', preview).textContent = 'writing…';
    $('.thread-link', preview).remove();
    const stick = nearBottom(list === messageList ? scroller : list.parentElement);
    list.append(preview);
    if (stick) scrollToEnd(list === messageList ? scroller : list.parentElement);
    if (liveRegion) liveRegion.textContent = `${data.displayName} is writing a reply…`;
  }
  $('.content', preview).textContent = data.text;
}

// ---------- realtime connection: WebSocket, then SSE, then long-poll ----------
const live = {
  order: forced ? [forced] : ['ws', 'sse', 'poll'],
  index: 0,
  attempt: 0,
  socket: null,
  source: null,
  polling: null,
  stopped: false,

  start() { this.connect(); },

  handle(event) {
    if (event.eventId && newer(event.eventId, cursor)) cursor = event.eventId;
    switch (event.type) {
      case 'new_message': onNewMessage(event.data); break;
      case 'typing': onTyping(event); break;
      case 'agent_progress': onAgentProgress(event); break;
      case 'message_updated': case 'message_deleted': onMessageChanged(event.data); break;
      case 'reaction_added': case 'reaction_removed': if (event.conversationId === conversationId) onReactions(event.data); break;
      case 'conversation_created': onConversationCreated(event.data); break;
      case 'conversation_updated': onConversationUpdated(event.data); break;
      case 'participants_added': onParticipantsAdded(event.data); break;
      case 'participant_removed': onParticipantRemoved(event.data); break;
      case 'presence': onPresence(event.data); break;
      case 'resync_required': location.reload(); break;
      default: break;
    }
  },

  /** Falls back to the next transport when this one never opened; otherwise retries it with backoff and jitter. */
  failed(opened) {
    this.close();
    setTransport('off');
    if (this.stopped) return;
    if (!opened && !forced && this.index < this.order.length - 1) {
      this.index += 1;
      this.attempt = 0;
      this.connect();
      return;
    }
    const delay = Math.min(30000, 500 * 2 ** this.attempt) * (0.5 + Math.random());
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  },

  close() {
    if (this.socket) { this.socket.onclose = null; this.socket.close(); this.socket = null; }
    if (this.source) { this.source.close(); this.source = null; }
    if (this.polling) { this.polling.abort(); this.polling = null; }
  },

  connect() {
    const kind = this.order[this.index];
    if (kind === 'ws') this.connectSocket();
    else if (kind === 'sse') this.connectEvents();
    else this.poll();
  },

  connectSocket() {
    let opened = false;
    let socket;
    try {
      const url = params.get('wsurl') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/chat/ws`;
      socket = new WebSocket(url);
    } catch {
      this.failed(false);
      return;
    }
    this.socket = socket;
    const giveUp = setTimeout(() => { if (!opened) this.failed(false); }, 4000);
    socket.onopen = () => socket.send(JSON.stringify({ type: 'join_all', since: cursor }));
    socket.onmessage = (message) => {
      let frame;
      try { frame = JSON.parse(message.data); } catch { return; }
      if (frame.type === 'joined') {
        opened = true;
        clearTimeout(giveUp);
        this.attempt = 0;
        setTransport('ws');
      } else if (frame.type === 'ack') {
        acknowledge(frame);
      } else if (frame.type === 'error') {
        if (frame.clientMessageId) failPending(frame.clientMessageId, frame.message);
      } else {
        this.handle(frame);
      }
    };
    socket.onerror = () => {};
    socket.onclose = (close) => {
      clearTimeout(giveUp);
      if (this.socket !== socket) return;
      this.socket = null;
      if (close.code === 4001) { location.href = '/login'; return; }
      this.failed(opened);
    };
  },

  connectEvents() {
    let opened = false;
    const query = new URLSearchParams({ lastEventId: cursor });
    const source = new EventSource(`/api/chat/events?${query}`);
    this.source = source;
    source.onopen = () => { opened = true; this.attempt = 0; setTransport('sse'); };
    for (const type of ['new_message', 'read_receipt', 'conversation_created', 'conversation_updated', 'typing', 'agent_progress', 'message_updated', 'message_deleted', 'reaction_added', 'reaction_removed', 'participants_added', 'participant_removed', 'presence', 'resync_required']) {
      source.addEventListener(type, (message) => {
        try { this.handle(JSON.parse(message.data)); } catch { /* ignore a bad event */ }
      });
    }
    source.onerror = () => {
      // The browser retries by itself (with Last-Event-ID) while the stream had opened; take over when it gives up.
      if (!opened || source.readyState === EventSource.CLOSED) this.failed(opened);
      else setTransport('off');
    };
  },

  async poll() {
    let opened = false;
    while (!this.stopped && this.order[this.index] === 'poll') {
      const controller = new AbortController();
      this.polling = controller;
      try {
        // The first poll answers at once, so a working connection shows as live straight away.
        const response = await fetch(`/api/chat/poll?cursor=${encodeURIComponent(cursor)}&timeout=${opened ? 25 : 0}`, {
          credentials: 'same-origin', signal: controller.signal,
        });
        if (response.status === 401) { location.href = '/login'; return; }
        if (!response.ok) throw new Error(`poll ${response.status}`);
        const answer = await response.json();
        opened = true;
        this.attempt = 0;
        setTransport('poll');
        for (const event of answer.events) this.handle(event);
        if (answer.cursor && newer(answer.cursor, cursor)) cursor = answer.cursor;
      } catch (error) {
        if (controller.signal.aborted) return;
        this.polling = null;
        this.failed(opened);
        return;
      }
    }
  },

  /** Sends a frame over the WebSocket when one is open; false otherwise. */
  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && badge?.dataset.transport === 'ws') {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  },
};

// ---------- sending ----------
const pendingTimers = new Map();

function addPending(list, content, clientMessageId, threadParentId) {
  if (!list) return;
  const li = renderMessage({
    id: `pending-${clientMessageId}`, seq: Number.MAX_SAFE_INTEGER, senderId: me, conversationId,
    sender: { displayName: $('.me')?.textContent || 'Me' }, createdAt: new Date().toISOString(), content,
    replyCount: 0, threadParentId,
  }, { threadLinks: false, anchor: false });
  li.dataset.clientId = clientMessageId;
  delete li.dataset.messageId;
  delete li.dataset.seq;
  li.classList.add('pending');
  list.append(li);
  scrollToEnd(list === messageList ? scroller : list.parentElement);
}

function acknowledge(frame) {
  clearTimeout(pendingTimers.get(frame.clientMessageId));
  pendingTimers.delete(frame.clientMessageId);
  onNewMessage(frame.message);
}

function failPending(clientMessageId, reason) {
  clearTimeout(pendingTimers.get(clientMessageId));
  pendingTimers.delete(clientMessageId);
  const li = document.querySelector(`[data-client-id="${CSS.escape(clientMessageId)}"]`);
  if (li) { li.classList.remove('pending'); li.classList.add('failed'); li.title = `Not sent: ${reason}`; }
}

async function sendOverHTTP(payload) {
  try {
    const path = payload.threadParentId ? `/api/chat/thread/${payload.threadParentId}/reply` : '/api/chat/send';
    const answer = await api('POST', path, payload.threadParentId
      ? { content: payload.content, clientMessageId: payload.clientMessageId }
      : { conversationId, content: payload.content, clientMessageId: payload.clientMessageId });
    acknowledge({ clientMessageId: payload.clientMessageId, message: answer.message });
  } catch (error) {
    failPending(payload.clientMessageId, error.message);
  }
}

function send(payload) {
  if (live.send({ type: 'new_message', conversationId, ...payload })) {
    // No ack in time: resend over HTTP with the same clientMessageId (idempotent, never duplicated).
    pendingTimers.set(payload.clientMessageId, setTimeout(() => sendOverHTTP(payload), 8000));
  } else {
    sendOverHTTP(payload);
  }
}

function wireComposer(form, list, threadParentId) {
  if (!form) return;
  const textarea = $('textarea', form);
  const fileInput = $('input[type="file"]', form);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = textarea.value;
    if (fileInput && fileInput.files.length) {
      sendFiles(form, fileInput, list);
      return;
    }
    if (!content.trim() || textarea.disabled) return;
    const clientMessageId = crypto.randomUUID();
    addPending(list, content, clientMessageId, threadParentId);
    textarea.value = '';
    send({ content, clientMessageId, threadParentId: threadParentId || undefined });
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  let lastTyping = 0;
  textarea.addEventListener('input', () => {
    const now = Date.now();
    if (now - lastTyping < 3000 || !textarea.value) return;
    lastTyping = now;
    if (!live.send({ type: 'typing', conversationId })) api('POST', `/api/chat/${conversationId}/typing`).catch(() => {});
  });
}

// A message with files goes over HTTP (multipart), then shows like any other.
async function sendFiles(form, fileInput, list) {
  const data = new FormData(form);
  const clientMessageId = crypto.randomUUID();
  data.set('clientMessageId', clientMessageId);
  data.delete('_csrf');
  const names = Array.from(fileInput.files, (f) => f.name).join(', ');
  const content = $('textarea', form).value.trim() ? $('textarea', form).value : names;
  data.set('content', content);
  addPending(list, content, clientMessageId, null);
  $('textarea', form).value = '';
  fileInput.value = '';
  try {
    const response = await fetch(`/api/chat/${conversationId}/messages`, {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf }, body: data,
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error?.message || `HTTP ${response.status}`);
    acknowledge({ clientMessageId, message: body.message });
  } catch (error) {
    failPending(clientMessageId, error.message);
  }
}

// ---------- read receipts: when a message is on screen ----------
let lastReadSeq = 0;
let readTimer = null;
let readCandidate = null;
const readObserver = 'IntersectionObserver' in window ? new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const li = entry.target;
    const seq = Number(li.dataset.seq);
    if (li.dataset.senderId !== me && seq > lastReadSeq && (!readCandidate || seq > Number(readCandidate.dataset.seq))) readCandidate = li;
  }
  if (readCandidate && !readTimer) {
    readTimer = setTimeout(() => {
      const li = readCandidate;
      readCandidate = null;
      readTimer = null;
      if (!li || !document.hasFocus() && document.visibilityState !== 'visible') return;
      lastReadSeq = Math.max(lastReadSeq, Number(li.dataset.seq));
      const frame = { type: 'read_receipt', conversationId, messageId: li.dataset.messageId };
      if (!live.send(frame)) api('POST', `/api/chat/${conversationId}/read`, { messageId: li.dataset.messageId }).catch(() => {});
    }, 600);
  }
}) : null;
function observeForRead(li) { if (readObserver && li.dataset.seq && conversationId) readObserver.observe(li); }

// ---------- people picker (type-ahead over the directory) ----------
// The search box becomes an ARIA combobox: typing asks /api/users?q=, the arrow keys move through the matches and
// Enter (or a click) ticks that person in the participant list, adding them to it if the page did not list them.
// Without JavaScript the same box is a search form that re-renders the page with the matches.
function wirePeoplePicker() {
  const input = $('#people-q');
  const listbox = $('#people-options');
  const picker = $('.people-picker');
  if (!input || !listbox || !picker) return;
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', 'people-options');
  input.setAttribute('aria-expanded', 'false');
  let options = [];
  let active = -1;
  let timer = null;
  let asked = 0;
  const close = () => {
    listbox.hidden = true;
    listbox.replaceChildren();
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    options = [];
    active = -1;
  };
  const highlight = (index) => {
    active = index;
    listbox.querySelectorAll('[role=option]').forEach((el, i) => el.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) input.setAttribute('aria-activedescendant', `people-option-${index}`); else input.removeAttribute('aria-activedescendant');
  };
  const choose = (user) => {
    let box = picker.querySelector(`input[value="${CSS.escape(user.id)}"]`);
    if (!box) {
      const label = document.createElement('label');
      label.className = 'check';
      box = document.createElement('input');
      box.type = 'checkbox';
      box.name = 'participantIds';
      box.value = user.id;
      const name = document.createElement('span');
      name.textContent = user.displayName;
      const handle = document.createElement('span');
      handle.className = 'muted';
      handle.textContent = `@${user.username}`;
      label.append(box, ' ', name, ' ', handle);
      picker.querySelector('.no-people')?.remove();
      picker.querySelector('legend').after(label);
    }
    box.checked = true;
    liveRegion && (liveRegion.textContent = `${user.displayName} added`);
    input.value = '';
    close();
  };
  const show = (users) => {
    options = users.filter((u) => u.id !== me);
    listbox.replaceChildren(...options.map((user, i) => {
      const li = document.createElement('li');
      li.id = `people-option-${i}`;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', 'false');
      li.textContent = `${user.displayName} `;
      const handle = document.createElement('span');
      handle.className = 'muted';
      handle.textContent = `@${user.username}`;
      li.append(handle);
      li.addEventListener('mousedown', (event) => { event.preventDefault(); choose(user); });
      return li;
    }));
    listbox.hidden = options.length === 0;
    input.setAttribute('aria-expanded', String(options.length > 0));
    highlight(options.length ? 0 : -1);
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query) { close(); return; }
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const page = await api('GET', `/api/users?limit=8&q=${encodeURIComponent(query)}`);
        if (mine === asked) show(page.users);
      } catch { close(); }
    }, 150);
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' && options.length) { event.preventDefault(); highlight((active + 1) % options.length); }
    else if (event.key === 'ArrowUp' && options.length) { event.preventDefault(); highlight((active - 1 + options.length) % options.length); }
    else if (event.key === 'Enter' && active >= 0) { event.preventDefault(); choose(options[active]); }
    else if (event.key === 'Escape') close();
  });
  input.addEventListener('blur', () => setTimeout(close, 100));
}

// ---------- summary ----------
// The Summary link opens a panel above the messages with the same content as the summary page (which it is without
// JavaScript). Everything from the server is placed with textContent.
function wireSummary() {
  const link = $('#summary-link');
  const panel = $('#summary-panel');
  if (!link || !panel) return;
  const bodyEl = $('#summary-body');
  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };
  function list(title, items, line) {
    if (!items.length) return;
    bodyEl.append(el('h3', title));
    const ol = el('ol', undefined, 'summary-list');
    for (const item of items) {
      const li = el('li');
      const anchor = el('a', `#${item.seq}`);
      anchor.href = `/chat/${conversationId}/thread/${item.messageId}`;
      li.append(anchor, ' ', line(item));
      ol.append(li);
    }
    bodyEl.append(ol);
  }
  function render(summary) {
    bodyEl.replaceChildren();
    const names = new Map(summary.participants.map((p) => [p.userId, p.displayName]));
    const method = summary.method === 'llm' ? `Written by ${summary.model || "the workspace's model"}` : 'Extractive digest: chosen from the messages, no model';
    const range = summary.messageCount === 0 ? 'No messages yet' : `Messages #${summary.fromSeq} to #${summary.throughSeq} (${summary.messageCount} in all)`;
    bodyEl.append(el('p', `${method} · ${range}`, 'muted summary-meta'));
    const paragraphs = summary.method === 'llm' ? summary.text.split(/\n\n+/) : summary.text.split('\n').slice(0, 1);
    for (const text of paragraphs) if (text.trim()) bodyEl.append(el('p', text.trim(), 'summary-text'));
    list('Key points', summary.highlights, (h) => `${names.get(h.senderId) || 'Someone'}: ${h.excerpt}`);
    list('Open questions', summary.openQuestions, (q) => q.excerpt);
  }
  async function load(refresh) {
    bodyEl.setAttribute('aria-busy', 'true');
    if (!bodyEl.childElementCount) bodyEl.replaceChildren(el('p', 'Summarizing…', 'muted'));
    try {
      const answer = await api('GET', `/api/chat/${conversationId}/summary${refresh ? '?refresh=1' : ''}`);
      render(answer.summary);
    } catch (error) {
      bodyEl.replaceChildren(el('p', `The summary could not be made: ${error.message}`, 'banner'));
    } finally {
      bodyEl.setAttribute('aria-busy', 'false');
    }
  }
  function close() {
    panel.hidden = true;
    link.setAttribute('aria-expanded', 'false');
    link.focus();
  }
  link.addEventListener('click', (event) => {
    event.preventDefault();
    if (!panel.hidden) { close(); return; }
    panel.hidden = false;
    link.setAttribute('aria-expanded', 'true');
    panel.focus();
    load(false);
  });
  $('#summary-refresh').addEventListener('click', () => load(true));
  $('#summary-close').addEventListener('click', close);
  panel.addEventListener('keydown', (event) => { if (event.key === 'Escape') { event.stopPropagation(); close(); } });
}

// ---------- start ----------
if (page === 'list') wirePeoplePicker();
wireMoreConversations();
if (page === 'chat' || page === 'list') {
  if (page === 'chat') {
    wireComposer($('#composer'), messageList, null);
    wireMentionCompletion($('#content'));
    wireMentionCompletion($('#reply-content'));
    loadMembers();
    wireSummary();
    wireMessageActions(messageList);
    wireMessageActions(threadReplies);
    wireReactions(messageList);
    wireReactions(threadReplies);
    wireComposer($('#thread-composer'), threadReplies, threadId);
    document.querySelectorAll('#messages [data-seq]').forEach(observeForRead);
    if (!location.hash) scrollToEnd(scroller);
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && threadId) location.href = `/chat/${conversationId}`;
    });
  }
  setInterval(refreshTimes, 30000);
  live.start();
}
