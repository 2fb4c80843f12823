import ChatCore
@testable import ChatSQLite
import GRDB
import Foundation
import Testing

/// The people directory (issue 15): prefix search over usernames and display names, case and accents ignored, paged
/// by cursor, one tenant at a time; in every store.
@Suite struct DirectoryTests {
    @Test func foldingIgnoresCaseAndAccents() {
        #expect(Directory.fold("Émile Zoë") == "emile zoe")
        #expect(Directory.fold("ÅSA") == "asa")
        #expect(Directory.terms(username: "jdoe", displayName: "Jöhn-Paul Doe") == ["jdoe", "john-paul doe", "john", "paul", "doe"])
        #expect(Directory.username(fromCursor: Directory.cursor(after: "émile")) == "émile")
        #expect(Directory.username(fromCursor: "not base64!") == nil)
        // Any base64url string is read (what the OpenAPI pattern publishes): "0" continues after the empty name.
        #expect(Directory.username(fromCursor: "0") == "")
        #expect(Directory.username(fromCursor: "AA") == "")
    }

    @Test(arguments: StoreKind.available) func prefixSearchOverUsernameAndDisplayNameIgnoresCaseAndAccents(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let tenant = alice.tenantId
        _ = try await f.store.createUser(tenantId: tenant, username: "emile", displayName: "Émile Zola", passwordHash: "x")
        _ = try await f.store.createUser(tenantId: tenant, username: "zoe", displayName: "Zoë Ångström", passwordHash: "x")
        _ = try await f.store.createUser(tenantId: tenant, username: "ZED", displayName: "Zed", passwordHash: "x")
        func names(_ query: String) async throws -> [String] {
            try await f.chat.directory(alice, query: query, cursor: nil, limit: nil).users.map(\.username)
        }
        #expect(try await names("EMI") == ["emile"])
        #expect(try await names("émi") == ["emile"])
        #expect(try await names("zol") == ["emile"])  // a later word of the display name
        #expect(try await names("z") == ["ZED", "emile", "zoe"].sorted { $0.lowercased() < $1.lowercased() })
        #expect(try await names("angst") == ["zoe"])
        #expect(try await names("ali") == ["alice"])
        #expect(try await names("nobody").isEmpty)
        // LIKE's wildcards in a query are plain characters.
        _ = try await f.store.createUser(tenantId: tenant, username: "x_y", displayName: "Ex", passwordHash: "x")
        _ = try await f.store.createUser(tenantId: tenant, username: "xay", displayName: "Ex", passwordHash: "x")
        #expect(try await names("x_") == ["x_y"])
        #expect(try await names("x%").isEmpty)
        // Another tenant's people are never found.
        let dave = try await f.principal("globex", "dave")
        #expect(try await f.chat.directory(dave, query: "emi", cursor: nil, limit: nil).users.isEmpty)
        #expect(try await f.chat.directory(dave, query: nil, cursor: nil, limit: nil).users.allSatisfy { $0.tenantId == dave.tenantId })
    }

    @Test(arguments: StoreKind.available) func pagesCoverEveryoneOnceWhilePeopleAreAdded(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        for index in 0..<25 {
            _ = try await f.store.createUser(tenantId: alice.tenantId, username: "member\(index)", displayName: "Member \(index)", passwordHash: "x")
        }
        var seen: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try await f.chat.directory(alice, query: "mem", cursor: cursor, limit: 7)
            #expect(page.users.count <= 7)
            seen += page.users.map(\.username)
            cursor = page.nextCursor
            pages += 1
            // Someone joins mid-listing, after the current position: the next pages include them.
            if pages == 2 { _ = try await f.store.createUser(tenantId: alice.tenantId, username: "memberzz", displayName: "Late", passwordHash: "x") }
        } while cursor != nil && pages < 20
        let expected = ((0..<25).map { "member\($0)" } + ["memberzz"]).sorted()
        #expect(seen == expected)
        #expect(pages == 4)
        // The default page is the first 100 in username order; the last page says so with a null cursor.
        let all = try await f.chat.directory(alice, query: nil, cursor: nil, limit: nil)
        #expect(all.users.count == 30 && all.nextCursor == nil)
        #expect(all.users.map { $0.username.lowercased() } == all.users.map { $0.username.lowercased() }.sorted())
    }

    @Test func badLimitsAndCursorsAreRefused() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        await #expect(throws: ChatError.self) { try await f.chat.directory(alice, query: nil, cursor: nil, limit: 0) }
        await #expect(throws: ChatError.self) { try await f.chat.directory(alice, query: nil, cursor: "%%%", limit: nil) }
        // Over the maximum is capped, not refused.
        #expect(try await f.chat.directory(alice, query: nil, cursor: nil, limit: 10_000).users.count == 4)
    }
}

extension DirectoryTests {
    /// A database made before the directory existed gets its users' terms when it is opened.
    @Test func anOlderSQLiteDatabaseIsIndexedWhenOpened() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-dir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("old.sqlite").path
        do {
            let queue = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(queue, upTo: "v1")
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO tenants (id, slug, name, created_at) VALUES ('ten_1', 'old', 'Old', 0)")
                try db.execute(sql: """
                    INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at)
                    VALUES ('usr_1', 'ten_1', 'helene', 'Hélène Dupré', 'x', 0)
                    """)
            }
        }
        let store = try SQLiteChatStore(path: path)
        defer { try? store.close() }
        let found = try await store.directory(tenantId: "ten_1", prefix: Directory.fold("DUP"), afterUsername: nil, limit: 10)
        #expect(found.map(\.username) == ["helene"])
    }
}

/// A person in many conversations and a conversation of many people (issue 15), in every store.
@Suite struct LargeListTests {
    @Test(arguments: StoreKind.available) func conversationPagesListEachOnceWhileActivityReordersThem(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        var created: [String] = []
        for index in 0..<25 { created.append(try await f.chat.startConversation(alice, title: "c\(index)", participantIds: []).id) }
        let before = Set(try await f.chat.conversations(alice, limit: 500).conversations.map(\.id))
        var seen: [String] = []
        var moved: Set<String> = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try await f.chat.conversations(alice, cursor: cursor, limit: 7)
            seen += page.conversations.map(\.id)
            cursor = page.nextCursor
            pages += 1
            // Activity mid-listing: the oldest conversation not shown yet moves to the top.
            if let oldest = created.first(where: { !seen.contains($0) }), pages <= 2 {
                _ = try await f.chat.send(alice, conversationId: oldest, content: "bump", threadParentId: nil, clientMessageId: nil)
                moved.insert(oldest)
            }
        } while cursor != nil && pages < 20
        #expect(Set(seen).count == seen.count, "a conversation was listed twice")
        #expect(before.subtracting(moved).isSubset(of: Set(seen)), "a conversation that did not move was skipped")
        let ordered = try await f.chat.conversations(alice, limit: 500).conversations
        #expect(zip(ordered, ordered.dropFirst()).allSatisfy { ($0.updatedAt.milliseconds, $0.id) >= ($1.updatedAt.milliseconds, $1.id) })
        await #expect(throws: ChatError.self) { try await f.chat.conversations(alice, cursor: "yesterday", limit: nil) }
    }

    @Test(arguments: StoreKind.available) func aBigConversationListsItsFirstParticipantsAndPagesItsMembers(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        var ids: [String] = []
        for index in 0..<30 {
            ids.append(try await f.store.createUser(tenantId: alice.tenantId, username: "p\(index)", displayName: "P \(index)", passwordHash: "x").id)
        }
        let big = try await f.chat.startConversation(alice, title: "big", participantIds: ids)
        let listed = try #require(try await f.chat.conversations(alice).conversations.first { $0.id == big.id })
        #expect(listed.participantCount == 31)
        #expect(listed.participants.count == Conversation.listedParticipants)
        let single = try await f.chat.conversation(alice, id: big.id)
        #expect(single.participantCount == 31 && single.participants.count == Conversation.listedParticipants)
        var members: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try await f.chat.members(alice, conversationId: big.id, cursor: cursor, limit: 8)
            members += page.users.map(\.username)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(members.count == 31 && Set(members).count == 31)
        #expect(Set(members) == Set(["alice"] + (0..<30).map { "p\($0)" }))
        // Someone outside the conversation, or in another tenant, gets 404.
        let bob = try await f.principal("acme", "bob")
        await #expect(throws: ChatError.self) { try await f.chat.members(bob, conversationId: big.id, cursor: nil, limit: nil) }
        let dave = try await f.principal("globex", "dave")
        await #expect(throws: ChatError.self) { try await f.chat.members(dave, conversationId: big.id, cursor: nil, limit: nil) }
    }
}

extension LargeListTests {
    /// Every listing statement reaches its rows through an index or a primary key: no step walks a whole table.
    @Test func sqliteListingsAreIndexBacked() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let general = try #require(try await f.chat.conversations(alice).conversations.first)
        let plans = try f.sqliteStore.listingQueryPlans(tenantId: alice.tenantId, viewerId: alice.userId, conversationId: general.id)
        #expect(plans.count == 7)
        for (name, steps) in plans {
            // A scan is allowed only of the statement's own subquery results (co-routines), never of a table; and an
            // index search constrained by the tenant alone would walk the whole tenant.
            let coroutines = Set(steps.filter { $0.hasPrefix("CO-ROUTINE ") }.map { String($0.dropFirst("CO-ROUTINE ".count)) })
            let tableSteps = steps.filter { $0.hasPrefix("SEARCH") || $0.hasPrefix("SCAN") }
            let fullScans = tableSteps.filter { $0.hasPrefix("SCAN") && !coroutines.contains(String($0.dropFirst("SCAN ".count))) }
            let tenantWalks = tableSteps.filter { $0.hasSuffix("(tenant_id=?)") }
            #expect(fullScans.isEmpty, "\(name): \(steps)")
            #expect(tenantWalks.isEmpty, "\(name): \(steps)")
            #expect(!tableSteps.isEmpty, "\(name): \(steps)")
        }
        // The first participants are an index range in join order (no sort of a big conversation's members).
        #expect(plans["first participants"]?.contains { $0.contains("participants_by_join") } == true, "\(plans["first participants"] ?? [])")
        // A busy person's first page walks the tenant's activity index in order and stops: no sort of the window.
        #expect(plans["conversations by activity"]?.contains { $0.contains("TEMP B-TREE") } == false, "\(plans["conversations by activity"] ?? [])")
        print("query plans:", plans.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.joined(separator: " | "))" }.joined(separator: "\n"))
    }

    /// The same on PostgreSQL: with sequential scans priced out, every listing still has an index path, and the ones
    /// that must not sort a large set read an index in order.
    @Test(.enabled(if: StoreKind.available.contains(.postgres))) func postgresListingsAreIndexBacked() async throws {
        let f = try await CoreFixture(.postgres)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let general = try #require(try await f.chat.conversations(alice).conversations.first)
        let store = try #require(f.postgres)
        let plans = try await store.listingQueryPlans(tenantId: alice.tenantId, viewerId: alice.userId, conversationId: general.id)
        #expect(plans.count == 5)
        for (name, lines) in plans {
            #expect(!lines.contains { $0.contains("Seq Scan on") }, "\(name): \(lines.joined(separator: "\n"))")
            #expect(lines.contains { $0.contains("Index") }, "\(name): \(lines.joined(separator: "\n"))")
        }
        #expect(plans["first participants"]?.contains { $0.contains("participants_by_join") } == true, "\(plans["first participants"] ?? [])")
        #expect(plans["members"]?.contains { $0.contains("participants_by_join") } == true, "\(plans["members"] ?? [])")
        #expect(plans["directory search"]?.contains { $0.contains("user_terms_search") } == true, "\(plans["directory search"] ?? [])")
        // Unread counts look up each listed conversation's messages after the read mark, never a table's worth.
        #expect(plans["conversations"]?.contains { $0.contains("messages_top_level") } == true, "\(plans["conversations"] ?? [])")
        print("postgres query plans:", plans.sorted { $0.key < $1.key }.map { "\($0.key):\n\($0.value.joined(separator: "\n"))" }.joined(separator: "\n"))
    }
}
