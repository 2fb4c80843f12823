import NIOCore
import Testing

@testable import ChatServer

/// The server's WebSocket frame reader on bytes, as TCP may cut them: whole messages out, every breach of
/// RFC 6455 refused with its close code.
@Suite struct WebSocketFrameReaderTests {
    /// Everything `reader` hands over for `chunks`, described, or the failure that stopped it.
    private static func read(_ chunks: [[UInt8]], limit: Int = 1024) -> (messages: [String], failure: WebSocketFrameReader.Failure?) {
        var reader = WebSocketFrameReader(maxMessageBytes: limit)
        var messages: [String] = []
        for chunk in chunks {
            do {
                try reader.read(ByteBuffer(bytes: chunk)) { message in
                    switch message {
                    case .text(let text): messages.append("text:" + text)
                    case .binary: messages.append("binary")
                    case .ping(let payload): messages.append("ping:" + String(buffer: payload))
                    case .pong: messages.append("pong")
                    case .close(let code): messages.append("close:\(code.map(String.init) ?? "-")")
                    }
                    return true
                }
            } catch {
                return (messages, error)
            }
        }
        return (messages, nil)
    }

    private static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true, first extra: UInt8 = 0) -> [UInt8] {
        var bytes = Array(FrameSocket.maskedFrame(opcode: opcode, payload, fin: fin).readableBytesView)
        bytes[0] |= extra
        // Unmasked: the same first byte, a length without the mask bit, the payload as it is (short payloads only).
        return masked ? bytes : [bytes[0], UInt8(payload.count)] + payload
    }

    @Test func messagesComeOutWholeHoweverTheBytesAreCut() {
        let bytes = Self.frame(0x1, Array(#"{"a":"é"}"#.utf8))
            + Self.frame(0x9, Array("hi".utf8))
            + Self.frame(0x1, Array("frag".utf8), fin: false)
            + Self.frame(0xA, [])  // a control frame between fragments
            + Self.frame(0x0, Array("mented".utf8))
            + Self.frame(0x2, [1, 2])
            + Self.frame(0x1, Array(repeating: UInt8(ascii: "x"), count: 300))  // 16-bit length
            + Self.frame(0x8, [0x03, 0xE8])
        let expected = [#"text:{"a":"é"}"#, "ping:hi", "pong", "text:fragmented", "binary", "text:" + String(repeating: "x", count: 300), "close:1000"]
        #expect(Self.read([bytes]).messages == expected)
        #expect(Self.read(bytes.map { [$0] }).messages == expected)
        for cut in stride(from: 1, to: bytes.count, by: 7) {
            #expect(Self.read([Array(bytes[..<cut]), Array(bytes[cut...])]).messages == expected)
        }
    }

    @Test func aCharacterSplitAcrossFragmentsIsText() {
        let euro = Array("€".utf8)
        let result = Self.read([Self.frame(0x1, [euro[0]], fin: false) + Self.frame(0x0, Array(euro[1...]))])
        #expect(result.messages == ["text:€"] && result.failure == nil)
    }

    @Test func breachesOfTheProtocolAreRefusedWith1002() {
        let breaches: [[UInt8]] = [
            Self.frame(0x1, Array("x".utf8), masked: false),
            Self.frame(0x1, Array("x".utf8), first: 0x40),  // RSV1 without an extension
            Self.frame(0x3, Array("x".utf8)),  // a reserved opcode
            Self.frame(0x0, Array("x".utf8)),  // a continuation of nothing
            Self.frame(0x9, Array(repeating: 1, count: 126)),  // a control frame over 125 bytes
            Self.frame(0x9, [1], fin: false),  // a fragmented control frame
            Self.frame(0x1, [1], fin: false) + Self.frame(0x1, [2]),  // a new message inside a fragmented one
            Self.frame(0x1, [], fin: false),  // an empty fragment
            Self.frame(0x8, [3]),  // a close payload of one byte
        ]
        for bytes in breaches {
            let failure = Self.read([bytes]).failure
            #expect(failure?.closeCode == 1002, "\(bytes)")
        }
        let tooMany = Self.frame(0x1, [1], fin: false) + (0..<64).flatMap { _ in Self.frame(0x0, [1], fin: false) }
        #expect(Self.read([tooMany]).failure?.closeCode == 1002)
    }

    @Test func oversizedMessagesAreRefusedWith1009BeforeTheirPayloadArrives() {
        let header = Array(Self.frame(0x1, Array(repeating: 1, count: 1025)).prefix(4))
        #expect(Self.read([header]).failure == .tooBig)
        let fragments = Self.frame(0x1, Array(repeating: 1, count: 600), fin: false) + Self.frame(0x0, Array(repeating: 1, count: 600))
        #expect(Self.read([fragments]).failure == .tooBig)
        #expect(Self.read([Self.frame(0x1, Array(repeating: UInt8(ascii: "x"), count: 1024))]).failure == nil)
    }

    @Test func closeFramesCarryACodeAnEndpointMaySendAndAUTF8Reason() {
        for code: UInt16 in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999] {
            #expect(Self.read([Self.frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array("bye".utf8))]).messages == ["close:\(code)"])
        }
        #expect(Self.read([Self.frame(0x8, [])]).messages == ["close:-"])
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            #expect(Self.read([Self.frame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)])]).failure?.closeCode == 1002, "\(code)")
        }
        #expect(Self.read([Self.frame(0x8, [0x03, 0xE8, 0xFF])]).failure?.closeCode == 1007)
    }

    @Test func textThatIsNotUTF8IsRefusedWith1007() {
        #expect(Self.read([Self.frame(0x1, [0x7B, 0xFF, 0x7D])]).failure?.closeCode == 1007)
        #expect(Self.read([Self.frame(0x1, [0xE2], fin: false) + Self.frame(0x0, [0x41])]).failure?.closeCode == 1007)
    }
}
