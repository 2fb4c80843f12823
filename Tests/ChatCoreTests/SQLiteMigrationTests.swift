import ChatCore
@testable import ChatSQLite
import Foundation
import GRDB
import Testing

/// A database written by an earlier release keeps everything when the messages table is rebuilt with fewer keys
/// (v12): threads, reactions, mentions, files and search still point at the right messages, and new writes work.
@Suite struct SQLiteMigrationTests {
    @Test func messagesWrittenBeforeTheKeyRebuildKeepTheirThreadsReactionsFilesAndSearch() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-mig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("old.sqlite").path
        let photo = Attachment(id: "fil_1", name: "site.png", contentType: "image/png", size: 4)
        do {
            let queue = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(queue, upTo: "v11-search-batched")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO tenants (id, slug, name, created_at) VALUES ('ten_1', 'old', 'Old', 0);
                    INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at) VALUES
                        ('usr_a', 'ten_1', 'alice', 'Alice', 'x', 0), ('usr_b', 'ten_1', 'bob', 'Bob', 'x', 0);
                    INSERT INTO conversations (id, tenant_id, title, created_by, created_at, updated_at, last_seq, participant_count)
                        VALUES ('cnv_1', 'ten_1', 'Launch', 'usr_a', 0, 3, 3, 2);
                    INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at) VALUES
                        ('ten_1', 'cnv_1', 'usr_a', 0), ('ten_1', 'cnv_1', 'usr_b', 0);
                    INSERT INTO messages (id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq, reply_count)
                        VALUES ('msg_1', 'ten_1', 'cnv_1', 'usr_a', NULL, 'kickoff agenda', 1, 1, 1);
                    INSERT INTO messages (id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq)
                        VALUES ('msg_2', 'ten_1', 'cnv_1', 'usr_b', 'msg_1', 'the agenda looks fine', 2, 2);
                    INSERT INTO reactions (tenant_id, message_id, emoji, user_id, created_at) VALUES ('ten_1', 'msg_1', 'thumbsup', 'usr_b', 2);
                    INSERT INTO message_search (rowid, content) SELECT rowid, content FROM messages;
                    """)
                try db.execute(
                    sql: """
                        INSERT INTO messages (id, tenant_id, conversation_id, sender_id, content, created_at, seq, mention_ids, attachments)
                        VALUES ('msg_3', 'ten_1', 'cnv_1', 'usr_a', '@bob photos of the site', 3, 3, 'usr_b', ?);
                        INSERT INTO mentions (tenant_id, message_id, user_id, conversation_id, seq) VALUES ('ten_1', 'msg_3', 'usr_b', 'cnv_1', 3);
                        INSERT INTO files (tenant_id, id, message_id, conversation_id, name, content_type, size, data, created_at)
                            VALUES ('ten_1', 'fil_1', 'msg_3', 'cnv_1', 'site.png', 'image/png', 4, x'89504e47', 3);
                        INSERT INTO message_search (rowid, content) SELECT rowid, content FROM messages WHERE id = 'msg_3';
                        """,
                    arguments: [FileRules.encode([photo])])
            }
        }
        let store = try SQLiteChatStore(path: path)
        defer { try? store.close() }
        func searched(_ word: String) async throws -> [String] {
            try await store.search(tenantId: "ten_1", viewerId: "usr_b", terms: [word], conversationId: nil, senderId: nil, offset: 0, limit: 10)
                .map(\.message.id).sorted()
        }

        let page = try #require(try await store.messages(tenantId: "ten_1", conversationId: "cnv_1", viewerId: "usr_b", beforeSeq: nil, limit: 10))
        #expect(page.messages.map(\.id) == ["msg_1", "msg_3"])
        #expect(page.messages.first?.replyCount == 1)
        #expect(page.messages.first?.reactions.map(\.emoji) == ["thumbsup"])
        #expect(page.messages.last?.mentions == ["usr_b"] && page.messages.last?.attachments == [photo])
        #expect(try await store.thread(tenantId: "ten_1", messageId: "msg_1", viewerId: "usr_b")?.replies.map(\.id) == ["msg_2"])
        #expect(try await searched("agenda") == ["msg_1", "msg_2"])
        #expect(try await store.file(tenantId: "ten_1", id: "fil_1", viewerId: "usr_b")?.data == [0x89, 0x50, 0x4E, 0x47])

        // New writes next to the old rows: a reply to an old root, a new message, found by search with the old ones.
        let results = try await store.apply([
            .sendMessage(NewMessage(tenantId: "ten_1", senderId: "usr_b", conversationId: nil, threadParentId: "msg_1", content: "agenda item four", clientMessageId: nil)),
            .sendMessage(NewMessage(tenantId: "ten_1", senderId: "usr_a", conversationId: "cnv_1", threadParentId: nil, content: "new agenda", clientMessageId: "c1")),
        ])
        let sent = try results.map { result -> Message in
            guard case .message(let message, created: true) = try result.get().outcome else { throw ChatError.badRequest("not sent") }
            return message
        }
        #expect(sent.map(\.seq) == [4, 5])
        #expect(try await store.thread(tenantId: "ten_1", messageId: "msg_1", viewerId: "usr_a")?.replies.map(\.id) == ["msg_2", sent[0].id])
        #expect(try await store.thread(tenantId: "ten_1", messageId: "msg_1", viewerId: "usr_a")?.parent.replyCount == 2)
        #expect(try await searched("agenda") == (["msg_1", "msg_2"] + sent.map(\.id)).sorted())

        // Deleting an old message still takes its file and its words with it.
        _ = try await store.apply([.deleteMessage(tenantId: "ten_1", userId: "usr_a", messageId: "msg_3")])
        #expect(try await store.file(tenantId: "ten_1", id: "fil_1", viewerId: "usr_b") == nil)
        #expect(try await searched("photos").isEmpty)
    }
}
