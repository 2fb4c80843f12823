'use strict';
// The benchmark's peer: the room server a team might write instead, on Node and the `ws` library. It keeps
// everything in memory and checks nothing (no auth, no persistence), and speaks the frames of docs/API.md that the
// bench uses: join_room -> joined, new_message -> ack to the sender and a new_message event to every member of the
// room. chat-bench starts it with: node bench/node-room-server.js PORT (NODE_PATH=/usr/share/nodejs for Debian's
// node-ws).
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 18999);
const rooms = new Map();      // conversationId -> Set of sockets
const seqs = new Map();       // conversationId -> last seq
let eventId = 0;
let messageId = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  } else {
    res.writeHead(404);
    res.end();
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/api/chat/ws')) { socket.destroy(); return; }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws) => {
  const joined = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    const id = frame.conversationId;
    if (frame.type === 'join_room' && typeof id === 'string') {
      let room = rooms.get(id);
      if (!room) { room = new Set(); rooms.set(id, room); }
      room.add(ws);
      joined.add(id);
      ws.send(JSON.stringify({ type: 'joined', conversationId: id, room: 't:' + id }));
    } else if (frame.type === 'new_message' && typeof id === 'string' && typeof frame.content === 'string') {
      const seq = (seqs.get(id) || 0) + 1;
      seqs.set(id, seq);
      eventId += 1;
      messageId += 1;
      const message = {
        clientMessageId: frame.clientMessageId ?? null, content: frame.content, conversationId: id,
        createdAt: new Date().toISOString(), id: 'msg_' + messageId.toString(36).padStart(24, '0'), replyCount: 0,
        sender: { displayName: 'User', id: 'usr_0000000000000000000000', tenantId: 'ten_000000000000000000000', username: 'user' },
        senderId: 'usr_0000000000000000000000', seq, tenantId: 'ten_000000000000000000000', threadParentId: null,
      };
      const envelope = JSON.stringify({ type: 'new_message', eventId: String(eventId), room: 't:' + id, conversationId: id, data: message });
      for (const member of rooms.get(id) || []) member.send(envelope);
      ws.send(JSON.stringify({ type: 'ack', clientMessageId: frame.clientMessageId ?? null, message }));
    }
  });
  ws.on('close', () => {
    for (const id of joined) rooms.get(id)?.delete(ws);
  });
});

server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
