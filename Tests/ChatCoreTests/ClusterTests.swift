import ChatCore
import ChatPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// Several nodes on one PostgreSQL database (run when the test command started PostgreSQL).
@Suite(.enabled(if: StoreKind.postgresURL != nil, "needs CHAT_TEST_POSTGRES_URL"))
struct ClusterTests {
    /// Waits up to `seconds` for `condition`.
    func eventually(_ seconds: Double = 5, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }

    @Test func aCursorNeverSkipsAnEventWhoseTransactionCommitsLate() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let cursor = try await f.latestEventId()
        let url = f.databaseURL!

        // A slow writer: takes the next event id the way every write transaction does, then holds the
        // transaction open for a second before committing.
        let slow = Task {
            var logger = Logger(label: "slow")
            logger.logLevel = .error
            let connection = try await PostgresConnection.connect(
                configuration: try PostgresSettings(url: url).connectionConfiguration, id: 9, logger: logger)
            defer { Task { try? await connection.close() } }
            try await connection.query("BEGIN", logger: logger)
            var next: Int64 = 0
            for try await last in try await connection.query(
                "SELECT last_event_id FROM tenants WHERE id = \(alice.tenantId) FOR UPDATE", logger: logger
            ).decode(Int64.self) { next = last + 1 }
            try await connection.query(
                """
                INSERT INTO events (tenant_id, id, conversation_id, type, data, created_at)
                VALUES (\(alice.tenantId), \(next), \(room.id), 'read_receipt', '{"slow":true}', 0)
                """, logger: logger)
            try await connection.query("UPDATE tenants SET last_event_id = \(next) WHERE id = \(alice.tenantId)", logger: logger)
            try await connection.query("SELECT pg_sleep(1.0)", logger: logger)
            try await connection.query("COMMIT", logger: logger)
            return next
        }
        try await Task.sleep(for: .milliseconds(200))  // the slow transaction holds the tenant's counter now
        // Another writer (a second node) commits meanwhile, and a reader polls from the cursor all along.
        let second = try await Node(url: url, listening: false)
        defer { second.stop() }
        let fast = Task { try await second.chat.send(alice, conversationId: room.id, content: "fast", threadParentId: nil, clientMessageId: nil) }
        var observations: [[Int64]] = []
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            let seen = try await f.store.events(tenantId: bob.tenantId, viewerId: bob.userId, after: cursor, conversationId: nil, limit: 100)
                .compactMap(\.eventId)
            observations.append(seen)
            if seen.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let slowId = try await slow.value
        _ = try await fast.value
        #expect(slowId == cursor + 1)
        // Every poll saw a prefix of the log: never the later id without the earlier one.
        for seen in observations {
            #expect(seen == Array((cursor + 1)..<(cursor + 1 + Int64(seen.count))), "skipped: \(seen)")
        }
        #expect(observations.last == [cursor + 1, cursor + 2])
        #expect(observations.count > 5)  // the reader really polled while the slow transaction was open
    }

    @Test func eventsCommittedOnOneNodeReachSubscribersOfAnotherOnceAndInOrder() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let a = try await Node(url: f.databaseURL!)
        let b = try await Node(url: f.databaseURL!)
        defer { a.stop(); b.stop() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let room = try await a.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let onA = Recorder(), onB = Recorder()
        let subscriptions = [
            a.hub.subscribe(onA, to: .tenant(alice.tenantId)), b.hub.subscribe(onB, to: .tenant(alice.tenantId)),
        ]
        defer { subscriptions.forEach { $0.cancel() } }
        try await Task.sleep(for: .milliseconds(300))  // listeners up
        // Senders on both nodes write one conversation at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (node, who) in [(a, alice), (b, bob), (a, bob), (b, alice)] {
                group.addTask {
                    for i in 0..<40 {
                        _ = try await node.chat.send(who, conversationId: room.id, content: "\(i)", threadParentId: nil, clientMessageId: "\(who.userId)-\(ObjectIdentifier(node.store).hashValue)-\(i)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let seqs = try await f.integers("SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq", [room.id])
        #expect(seqs == Array(1...Int64(seqs.count)))
        #expect(seqs.count == 160 + 4)  // the demo's messages in General, and ours
        let head = try await f.latestEventId()
        for recorder in [onA, onB] {
            #expect(try await eventually { recorder.received.last?.eventId == head })
            let ids = recorder.received.compactMap(\.eventId)
            #expect(ids.count == 160)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count, "in order, once")
            #expect(ids.last == head && ids.first == head - 159)
        }
        // Typing crosses nodes too, as an ephemeral event.
        try await a.chat.typing(alice, conversationId: room.id)
        #expect(try await eventually { onB.received.contains { $0.type == .typing } })
    }

    @Test func aRemovalOnOneNodeEndsTheConversationOnStreamsOfAnother() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let a = try await Node(url: f.databaseURL!)
        let b = try await Node(url: f.databaseURL!)
        defer { a.stop(); b.stop() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let room = try await a.chat.startConversation(alice, title: "nodes", participantIds: [bob.userId])
        let bobOnB = Mutex<[ChatEvent]>([]), carolOnB = Mutex<[ChatEvent]>([])
        let feeds = [
            EventFeed(chat: b.chat, principal: bob, scope: .allConversations) { item in
                if case .event(let e) = item { bobOnB.withLock { $0.append(e) } }
                return true
            },
            EventFeed(chat: b.chat, principal: carol, scope: .allConversations) { item in
                if case .event(let e) = item { carolOnB.withLock { $0.append(e) } }
                return true
            },
        ]
        defer { feeds.forEach { $0.stop() } }
        for feed in feeds { try await feed.start(after: nil) }
        try await Task.sleep(for: .milliseconds(300))  // listeners up

        _ = try await a.chat.addMembers(alice, conversationId: room.id, userIds: [carol.userId])
        try await a.chat.removeMember(alice, conversationId: room.id, userId: bob.userId)
        _ = try await a.chat.send(alice, conversationId: room.id, content: "after bob", threadParentId: nil, clientMessageId: nil)
        #expect(try await eventually { carolOnB.withLock { $0.contains { $0.type == .newMessage } } })
        // (The room's `conversation_created` may reach node B after the feeds started: not what is checked here.)
        let kinds: ([ChatEvent]) -> [EventType] = { $0.map(\.type).filter { $0 != .conversationCreated } }
        #expect(bobOnB.withLock { kinds($0) } == [.participantsAdded, .participantRemoved])
        #expect(carolOnB.withLock { kinds($0) } == [.participantsAdded, .participantRemoved, .newMessage])
    }

    @Test func presenceOnOneNodeIsKnownAndHeardOnAnother() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let a = try await Node(url: f.databaseURL!)
        let b = try await Node(url: f.databaseURL!)
        defer { a.stop(); b.stop() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let bobOnB = Recorder()
        let subscription = b.hub.subscribe(bobOnB, to: .user(tenantId: bob.tenantId, userId: bob.userId))
        defer { subscription.cancel() }
        try await Task.sleep(for: .milliseconds(300))  // listeners up
        let connection = a.chat.presence.connect(alice)
        #expect(try await eventually { b.chat.presence.status(tenantId: alice.tenantId, userId: alice.userId) == .online })
        #expect(try await eventually { bobOnB.received.contains { $0.type == .presence && String(buffer: $0.envelope).contains("online") } })
        // Away through the HTTP API on node B reaches alice's connection on node A.
        await b.chat.presence.setAway(alice, true)
        #expect(try await eventually { a.chat.presence.status(tenantId: alice.tenantId, userId: alice.userId) == .away })
        #expect(try await eventually { b.chat.presence.status(tenantId: alice.tenantId, userId: alice.userId) == .away })
        connection.end()
    }

    @Test func aNodeThatHearsNothingStillDeliversEverythingThroughItsSweep() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let writer = try await Node(url: f.databaseURL!, listening: false)
        let deaf = try await Node(url: f.databaseURL!, listening: false)
        defer { writer.stop(); deaf.stop() }
        let alice = try await f.principal("acme", "alice")
        let room = try await writer.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let recorder = Recorder()
        let subscription = deaf.hub.subscribe(recorder, to: .room(tenantId: alice.tenantId, conversationId: room.id))
        defer { subscription.cancel() }
        for i in 0..<5 { _ = try await writer.chat.send(alice, conversationId: room.id, content: "\(i)", threadParentId: nil, clientMessageId: nil) }
        #expect(recorder.received.isEmpty)  // no notification reached it
        try await deaf.broker.sweep()
        #expect(recorder.received.count == 5)
        #expect(recorder.received.compactMap(\.eventId) == recorder.received.compactMap(\.eventId).sorted())
        // Its own next commit goes out after what it caught up on, never before.
        _ = try await deaf.chat.send(alice, conversationId: room.id, content: "own", threadParentId: nil, clientMessageId: nil)
        _ = try await writer.chat.send(alice, conversationId: room.id, content: "theirs", threadParentId: nil, clientMessageId: nil)
        _ = try await deaf.chat.send(alice, conversationId: room.id, content: "own again", threadParentId: nil, clientMessageId: nil)
        let ids = recorder.received.compactMap(\.eventId)
        #expect(ids == Array(ids[0]...(ids[0] + Int64(ids.count) - 1)), "no gap: \(ids)")
        #expect(ids.count == 8)
    }

    @Test func revocationsAndSeedingReachEveryNode() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let a = try await Node(url: f.databaseURL!)
        let b = try await Node(url: f.databaseURL!)
        defer { a.stop(); b.stop() }
        try await Task.sleep(for: .milliseconds(300))
        final class Connection: RevocationWatcher {
            let closed = Mutex(false)
            func credentialRevoked() { closed.withLock { $0 = true } }
        }
        let connection = Connection()
        b.revocations.add(connection, credentialHash: "hash-1")
        defer { b.revocations.remove(connection, credentialHash: "hash-1") }
        a.revocations.forward { hash in await PostgresClusterBus(store: a.store).broadcastRevoked(credentialHash: hash) }
        await a.revocations.revokeEverywhere(credentialHash: "hash-1")
        #expect(try await eventually { connection.closed.withLock { $0 } })
        // Two nodes seeding one empty database at once: one seeds, the other finds it seeded.
        let (empty, url, pool, drop) = try await TestPostgres.freshStore()
        defer { pool.cancel(); drop() }
        #expect(try await empty.isEmpty())
        let c = try await Node(url: url, listening: false)
        let d = try await Node(url: url, listening: false)
        defer { c.stop(); d.stop() }
        let seeded = try await withThrowingTaskGroup(of: Bool.self) { group in
            for node in [c, d] { group.addTask { try await DemoData.seedIfEmpty(chat: node.chat, hasher: PlainHasher()) } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(seeded.filter { $0 }.count == 1 && seeded.count == 2)
        #expect(try await empty.directory(tenantId: try await empty.tenant(slug: "acme")!.id, prefix: nil, afterUsername: nil, limit: 10).count == 4)
    }
}

@Suite(.enabled(if: StoreKind.postgresURL != nil, "needs CHAT_TEST_POSTGRES_URL"))
struct PostgresOperationsTests {
    @Test func aStuckTransactionHoldsATenantForTheLockTimeoutOnly() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        var logger = Logger(label: "stuck")
        logger.logLevel = .error
        // A transaction that locked the tenant's counter and then hangs (a stuck client, a paused node).
        let stuck = try await PostgresConnection.connect(
            configuration: try PostgresSettings(url: f.databaseURL!).connectionConfiguration, id: 7, logger: logger)
        defer { Task { try? await stuck.close() } }
        try await stuck.query("BEGIN", logger: logger)
        try await stuck.query("SELECT 1 FROM tenants WHERE id = \(alice.tenantId) FOR UPDATE", logger: logger)
        // A node whose write path waits at most 300 ms for a lock.
        var settings = try PostgresSettings(url: f.databaseURL! + "&lock_timeout=300")
        settings.poolSize = 2
        let node = try PostgresChatStore(settings: settings, logger: logger)
        let pool = Task { await node.client.run() }
        defer { pool.cancel() }
        let chat = ChatService(store: node, broker: RoomHub())
        let started = ContinuousClock.now
        do {
            _ = try await chat.send(alice, conversationId: room.id, content: "blocked", threadParentId: nil, clientMessageId: "stuck-1")
            Issue.record("the send went through a locked tenant")
        } catch {
            #expect(node.isUnavailable(error), "\(error)")  // answered 503, retried by clientMessageId
        }
        #expect(ContinuousClock.now - started < .seconds(3))
        // Other tenants never waited.
        let dave = try await f.principal("globex", "dave")
        let ops = try await chat.conversations(dave).conversations.first!
        _ = try await chat.send(dave, conversationId: ops.id, content: "unaffected", threadParentId: nil, clientMessageId: nil)
        // Once the stuck transaction ends, the retry stores the message once.
        try await stuck.query("ROLLBACK", logger: logger)
        let (message, created) = try await chat.send(alice, conversationId: room.id, content: "blocked", threadParentId: nil, clientMessageId: "stuck-1")
        #expect(created && message.content == "blocked")
    }

    @Test func tlsIsUsedWhenTheURLAsksForIt() async throws {
        var logger = Logger(label: "tls")
        logger.logLevel = .error
        let base = StoreKind.postgresURL!.replacingOccurrences(of: "sslmode=disable", with: "")
        func usesTLS(_ mode: String) async throws -> Bool {
            let separator = base.contains("?") ? (base.hasSuffix("?") ? "" : "&") : "?"
            let connection = try await PostgresConnection.connect(
                configuration: try PostgresSettings(url: base + separator + "sslmode=" + mode).connectionConfiguration, id: 8, logger: logger)
            defer { Task { try? await connection.close() } }
            for try await ssl in try await connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger).decode(Bool.self) {
                return ssl
            }
            return false
        }
        #expect(try await usesTLS("require"))
        #expect(try await !usesTLS("disable"))
        #expect(throws: (any Error).self) { try PostgresSettings(url: "postgres://x@127.0.0.1/db?sslmode=sometimes") }
        #expect(throws: (any Error).self) { try PostgresSettings(url: "postgres://x@127.0.0.1/db?pool_size=0") }
        #expect(try PostgresSettings(url: "postgres://u:p%40ss@db.internal:6543/chat?lock_timeout=250").lockTimeoutMilliseconds == 250)
        #expect(try PostgresSettings(url: "postgres://u:p%40ss@db.internal:6543/chat").password == "p@ss")
        #expect(PostgresSettings.redacted("postgres://u:secret@db/chat").contains("secret") == false)
    }
}
