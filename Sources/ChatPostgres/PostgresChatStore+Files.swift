import ChatCore
import NIOCore
import PostgresNIO

extension PostgresChatStore {
    public func file(tenantId: String, id: String, viewerId: String) async throws -> StoredFile? {
        try await guarded { [self] in
            for try await (fileId, name, type, size, data, conversationId) in try await client.query(
                """
                SELECT f.id, f.name, f.content_type, f.size, f.data, f.conversation_id FROM files f
                JOIN participants p ON p.tenant_id = f.tenant_id AND p.conversation_id = f.conversation_id AND p.user_id = \(viewerId)
                WHERE f.tenant_id = \(tenantId) AND f.id = \(id)
                """, logger: logger
            ).decode((String, String, String, Int32, ByteBuffer, String).self) {
                return StoredFile(
                    attachment: Attachment(id: fileId, name: name, contentType: type, size: Int(size)), conversationId: conversationId,
                    data: Array(buffer: data))
            }
            return nil
        }
    }
}
