import ChatCore
import Foundation
import GRDB

extension SQLiteChatStore {
    static func insertFiles(
        _ db: Database, tenantId: String, messageId: String, conversationId: String, files: [NewFile], as attachments: [Attachment], now: Timestamp
    ) throws {
        for (file, attachment) in zip(files, attachments) {
            try db.execute(
                sql: """
                    INSERT INTO files (tenant_id, id, message_id, conversation_id, name, content_type, size, data, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [tenantId, attachment.id, messageId, conversationId, attachment.name, attachment.contentType, attachment.size,
                            Data(file.data), now.milliseconds])
        }
    }

    public func file(tenantId: String, id: String, viewerId: String) async throws -> StoredFile? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT f.id, f.name, f.content_type, f.size, f.data, f.conversation_id FROM files f
                    JOIN participants p ON p.tenant_id = f.tenant_id AND p.conversation_id = f.conversation_id AND p.user_id = ?
                    WHERE f.tenant_id = ? AND f.id = ?
                    """,
                arguments: [viewerId, tenantId, id])
            else { return nil }
            let data: Data = row["data"]
            return StoredFile(
                attachment: Attachment(id: row["id"], name: row["name"], contentType: row["content_type"], size: row["size"]),
                conversationId: row["conversation_id"], data: Array(data))
        }
    }
}
