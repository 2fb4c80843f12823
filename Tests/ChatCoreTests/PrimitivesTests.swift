import ChatCore
import NIOCore
import Testing

@Suite struct PrimitivesTests {
    @Test func timestampsAreRFC3339WithMilliseconds() {
        #expect(Timestamp(milliseconds: 0).description == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: 1_795_608_000_123).description == "2026-11-25T12:00:00.123Z")
        #expect(Timestamp(milliseconds: 951_782_400_000).description == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp(milliseconds: -1).description == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp(milliseconds: 253_402_300_800_000).description == "10000-01-01T00:00:00.000Z")
        // Every millisecond field and calendar day, over four centuries either side of 1970, reads back the same.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let time = Timestamp(milliseconds: Int64.random(in: -12_000_000_000_000...12_000_000_000_000, using: &random))
            #expect(Timestamp(rfc3339: time.description) == time, "\(time.milliseconds)")
        }
    }

    @Test func timestampsParseBackIncludingOffsets() {
        #expect(Timestamp(rfc3339: "2026-11-25T12:00:00.123Z")?.milliseconds == 1_795_608_000_123)
        #expect(Timestamp(rfc3339: "2026-11-25T13:00:00.123+01:00")?.milliseconds == 1_795_608_000_123)
        #expect(Timestamp(rfc3339: "2026-11-25T12:00:00Z")?.milliseconds == 1_795_608_000_000)
        #expect(Timestamp(rfc3339: "2026-11-25 12:00") == nil)
        #expect(Timestamp(rfc3339: "2026-13-25T12:00:00Z") == nil)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func secretsAreUniqueAndCookieSafe() {
        let a = Secret.make(), b = Secret.make()
        #expect(a != b)
        #expect(a.count == 43)
        #expect(a.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 })
    }

    @Test func identifiersSortByTimeAndRejectJunk() {
        let early = Identifier.make("msg", at: Timestamp(milliseconds: 1000))
        let late = Identifier.make("msg", at: Timestamp(milliseconds: 2000))
        #expect(early < late)
        #expect(early.hasPrefix("msg_"))
        #expect(Identifier.isPlausible(early))
        #expect(!Identifier.isPlausible("../etc/passwd"))
        #expect(!Identifier.isPlausible(""))
        #expect(!Identifier.isPlausible(String(repeating: "a", count: 65)))
    }

    @Test func envelopeEscapesAndCarriesCursor() throws {
        let event = ChatEvent(type: .newMessage, eventId: 42, tenantId: "t", conversationId: "c\"x", data: Array(#"{"a":1}"#.utf8))
        #expect(String(buffer: event.envelope)
            == #"{"type":"new_message","eventId":"42","room":"t:c\"x","conversationId":"c\"x","data":{"a":1}}"#)
        var sse = ByteBuffer()
        event.sseMessage.write(to: &sse)
        #expect(String(buffer: sse) == "id: 42\nevent: new_message\ndata: " + String(buffer: event.envelope) + "\n\n")
        #expect(event.sseMessage.byteCount == sse.readableBytes)
        let typing = ChatEvent(type: .typing, eventId: nil, tenantId: "t", conversationId: "c", data: Array("{}".utf8))
        #expect(String(buffer: typing.envelope).contains(#""eventId":null"#))
    }

    @Test func cursorsOnlyParseDigits() {
        #expect(EventCursor.parse("17") == 17)
        #expect(EventCursor.parse("-1") == nil)
        #expect(EventCursor.parse("1e3") == nil)
        #expect(EventCursor.parse("99999999999999999999") == nil)
    }

    @Test func revocationReachesEachWatcherOfTheCredentialOnceAndRemovedOnesNever() {
        final class Watcher: RevocationWatcher, @unchecked Sendable {
            // @unchecked: touched by this test's one thread.
            var heard = 0
            func credentialRevoked() { heard += 1 }
        }
        let center = RevocationCenter()
        let (a, b, other) = (Watcher(), Watcher(), Watcher())
        center.add(a, credentialHash: "h1")
        center.add(b, credentialHash: "h1")
        center.add(other, credentialHash: "h2")
        center.remove(b, credentialHash: "h1")
        center.remove(b, credentialHash: "h1")  // a connection may end twice (inactive, then removed)
        #expect(Set(center.watchedCredentialHashes) == ["h1", "h2"])
        center.revoke(credentialHash: "h1")
        center.revoke(credentialHash: "h1")
        #expect((a.heard, b.heard, other.heard) == (1, 0, 0))
        center.remove(other, credentialHash: "h2")
        #expect(center.watchedCredentialHashes.isEmpty)
    }
}

extension PrimitivesTests {
    @Test func handWrittenMessageJSONMatchesTheSharedEncoder() throws {
        let sender = User(id: "usr_1", username: "zoë", displayName: "Zoë \"Z\" <z>", tenantId: "tnt_1")
        for (parent, client) in [(nil, nil), ("msg_0", "c\\1\n")] as [(String?, String?)] {
            let message = Message(
                id: "msg_2", tenantId: "tnt_1", conversationId: "cnv_1", senderId: "usr_1", sender: sender, threadParentId: parent,
                content: "tab\there \u{1} \"quoted\" ✓ 👋", createdAt: Timestamp(milliseconds: 1_795_608_000_123), seq: 42, replyCount: 3,
                clientMessageId: client)
            #expect(JSONText.message(message) == (try JSONText.encode(message)))
        }
    }
}

extension PrimitivesTests {
    @Test func handWrittenConversationJSONMatchesTheSharedEncoder() throws {
        let people = [
            User(id: "usr_1", username: "zoë", displayName: "Zoë \"Z\" <z>", tenantId: "tnt_1"),
            User(id: "usr_2", username: "bo", displayName: "Bo\tB", tenantId: "tnt_1"),
        ]
        for (closed, last) in [(nil, nil), (Timestamp(milliseconds: 1_795_608_000_999), Timestamp(milliseconds: 1_795_608_000_500))] as [(Timestamp?, Timestamp?)] {
            let conversation = Conversation(
                id: "cnv_1", tenantId: "tnt_1", title: "t \u{1} ✓", participants: people, createdBy: "usr_1",
                createdAt: Timestamp(milliseconds: 1_795_608_000_123), updatedAt: Timestamp(milliseconds: 1_795_608_000_456),
                lastMessageAt: last, closedAt: closed, unreadCount: 7, lastSeq: 42, participantCount: 5_000)
            var bytes: [UInt8] = []
            JSONText.appendConversation(conversation, to: &bytes)
            #expect(bytes == (try JSONText.encode(conversation)))
        }
    }
}
