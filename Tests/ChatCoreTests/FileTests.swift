import ChatCore
import Foundation
import Testing

@Suite struct FileTests {
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]

    @Test func theTypeComesFromTheBytesAndNamesAreMadeSafe() throws {
        #expect(FileRules.sniff(Self.png) == "image/png")
        #expect(FileRules.sniff(Array("%PDF-1.7\n".utf8)) == "application/pdf")
        #expect(FileRules.sniff(Array("plain words\n".utf8)) == "text/plain")
        #expect(FileRules.sniff(Array("<html>".utf8)) == "text/plain", "served as text/plain with nosniff: never run")
        #expect(FileRules.sniff([0x4D, 0x5A, 0x90, 0x00]) == nil, "an executable")
        #expect(FileRules.cleanName("../../etc/passwd") == "passwd")
        #expect(FileRules.cleanName("C:\\Users\\me\\report \"final\".pdf") == "report final.pdf")
        #expect(FileRules.cleanName("a\u{0}b\u{202E}c.txt") == "abc.txt")
        #expect(FileRules.cleanName("..") == "file")
        var limits = FileRules.Limits()
        limits.maxFileBytes = 10
        #expect(throws: ChatError.self) { try FileRules.accept(name: "big.txt", data: Array(repeating: 65, count: 11), limits: limits) }
        #expect(throws: ChatError.self) { try FileRules.accept(name: "empty.txt", data: [], limits: limits) }
        #expect(try FileRules.accept(name: "x.bin", data: Self.png, limits: FileRules.Limits()).contentType == "image/png")
    }

    @Test(arguments: StoreKind.available) func filesAreStoredWithTheMessageServedToParticipantsAndDeletedWithIt(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.startConversation(alice, title: "files", participantIds: [bob.userId])
        let picture = try FileRules.accept(name: "diagram.png", data: Self.png, limits: f.chat.limits.files)
        let notes = try FileRules.accept(name: "notes.txt", data: Array("line one\n".utf8), limits: f.chat.limits.files)
        let (sent, _) = try await f.chat.send(
            alice, conversationId: room.id, content: "", threadParentId: nil, clientMessageId: "f-1", files: [picture, notes])
        #expect(sent.content == "diagram.png, notes.txt", "a message of files alone names them")
        #expect(sent.attachments.map(\.name) == ["diagram.png", "notes.txt"] && sent.attachments.map(\.size) == [16, 9])
        #expect(sent.attachments.map(\.contentType) == ["image/png", "text/plain"])
        let page = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil)
        #expect(page.messages.last?.attachments == sent.attachments)
        let (resent, created) = try await f.chat.send(alice, conversationId: room.id, content: "again", threadParentId: nil, clientMessageId: "f-1")
        #expect(!created && resent.attachments == sent.attachments)

        let id = sent.attachments[0].id
        #expect(try await f.chat.file(bob, id: id).data == Self.png)
        for outsider in [carol, dave] {
            #expect(await refusal { try await f.chat.file(outsider, id: id) } == "not_found")
        }
        #expect(await refusal { try await f.chat.send(alice, conversationId: room.id, content: "x", threadParentId: nil, clientMessageId: nil,
                                                       files: Array(repeating: notes, count: 5)) } == "too_many_files")

        let tombstone = try await f.chat.delete(alice, messageId: sent.id)
        #expect(tombstone.attachments.isEmpty)
        #expect(await refusal { try await f.chat.file(bob, id: id) } == "not_found")
        #expect(try await f.integers("SELECT COUNT(*) FROM files") == [0])
    }
}
