import ChatCore
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Testing

@testable import ChatServer

/// The WebSocket protocol as RFC 6455 and API.md state it, from a client that writes frames byte by byte: limits,
/// UTF-8, fragments, pings both ways, close handshakes.
@Suite struct WebSocketProtocolTests {
    @Test func anOversizedMessageIsClosedWith1009() async throws {
        try await withApp(.live) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await socket.send(opcode: 0x1, Array(repeating: UInt8(ascii: "x"), count: 64 * 1024 + 1))
            #expect(try await socket.nextClose() == 1009)
            // ... also when the size is reached by fragments.
            let fragmented = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await fragmented.send(opcode: 0x1, Array(repeating: UInt8(ascii: "x"), count: 40 * 1024), fin: false)
            try await fragmented.send(opcode: 0x0, Array(repeating: UInt8(ascii: "x"), count: 40 * 1024))
            #expect(try await fragmented.nextClose() == 1009)
        }
    }

    @Test func textThatIsNotUTF8IsClosedWith1007() async throws {
        try await withApp(.live) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await socket.send(opcode: 0x1, [0x7B, 0xFF, 0xFE, 0x7D])
            #expect(try await socket.nextClose() == 1007)
        }
    }

    @Test func anUnmaskedFrameIsAProtocolErrorClosedWith1002() async throws {
        try await withApp(.live) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await socket.sendRaw([0x81, 0x02, 0x7B, 0x7D])
            #expect(try await socket.nextClose() == 1002)
            #expect(try await socket.readUntilClosed(timeout: .seconds(2)))
        }
    }

    /// TCP may cut frames anywhere: a frame that arrives a byte at a time, and two frames in one segment, are read.
    @Test func framesAreReadHoweverTCPCutsThem() async throws {
        try await withApp(.live) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            let leave = Array(FrameSocket.maskedFrame(opcode: 0x1, Array(#"{"type":"leave_room","conversationId":"c1"}"#.utf8)).readableBytesView)
            for byte in leave { try await socket.sendRaw([byte]) }
            #expect(try await socket.nextText() == #"{"type":"left","conversationId":"c1"}"#)
            let two = FrameSocket.maskedFrame(opcode: 0x9, [5]).readableBytesView + leave
            try await socket.sendRaw(Array(two))
            let pong = try #require(try await socket.nextFrame())
            #expect(pong.opcode == 0xA && pong.payload == [5])
            #expect(try await socket.nextText() == #"{"type":"left","conversationId":"c1"}"#)
        }
    }

    @Test func fragmentsAreJoinedAndBinaryFramesRefusedWithoutClosing() async throws {
        try await withApp(.live) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let room = try await client.conversationId("General", as: token)
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await socket.send(opcode: 0x2, [1, 2, 3])
            #expect(try await socket.nextText()?.contains(#""code":"invalid_frame""#) == true)
            let join = Array(#"{"type":"join_room","conversationId":"\#(room)"}"#.utf8)
            try await socket.send(opcode: 0x1, Array(join[..<10]), fin: false)
            try await socket.send(opcode: 0x0, Array(join[10..<20]), fin: false)
            try await socket.send(opcode: 0x0, Array(join[20...]))
            #expect(try await socket.nextText()?.hasPrefix(#"{"type":"joined""#) == true)
        }
    }

    @Test func floodingGetsRateLimitedThenClosedWith1008() async throws {
        var config = testConfiguration()
        config.realtime.framesPerSecond = 1
        config.realtime.frameBurst = 2
        config.realtime.floodTolerance = 3
        try await withApp(.live, config: config) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            for _ in 0..<8 { try await socket.send(opcode: 0x1, Array(#"{"type":"nothing"}"#.utf8)) }
            var limited = 0
            var close: UInt16?
            while close == nil, let frame = try await socket.nextFrame() {
                if frame.opcode == 0x8 { close = frame.closeCode }
                if frame.opcode == 0x1, String(decoding: frame.payload, as: UTF8.self).contains("rate_limited") { limited += 1 }
            }
            #expect(limited == 3)
            #expect(close == 1008)
        }
    }

    @Test func tooManyRoomsIsAnErrorAndTheSocketLivesOn() async throws {
        var config = testConfiguration()
        config.realtime.maxRoomsPerSocket = 1
        try await withApp(.live, config: config) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let rooms = try await client.call(.get, "/api/chat/conversations", as: token).json["conversations"].array.compactMap { $0["id"].string }
            #expect(rooms.count >= 2)
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await socket.send(opcode: 0x1, Array(#"{"type":"join_room","conversationId":"\#(rooms[0])"}"#.utf8))
            #expect(try await socket.nextText()?.hasPrefix(#"{"type":"joined""#) == true)
            try await socket.send(opcode: 0x1, Array(#"{"type":"join_room","conversationId":"\#(rooms[1])"}"#.utf8))
            #expect(try await socket.nextText()?.contains(#""code":"too_many_rooms""#) == true)
            try await socket.send(opcode: 0x1, Array(#"{"type":"leave_room","conversationId":"\#(rooms[0])"}"#.utf8))
            #expect(try await socket.nextText()?.hasPrefix(#"{"type":"left""#) == true)
        }
    }

    /// Frames faster than they are handled: reading pauses while they wait (bounded) and resumes; none is lost.
    @Test func aBurstOfFramesIsHandledInOrderWithoutLoss() async throws {
        var config = testConfiguration()
        config.realtime.framesPerSecond = 10_000
        config.realtime.frameBurst = 10_000
        try await withApp(.live, config: config) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            for index in 0..<200 { try await socket.send(opcode: 0x1, Array(#"{"type":"leave_room","conversationId":"c\#(index)"}"#.utf8)) }
            var seen: [String] = []
            while seen.count < 200, let text = try await socket.nextText() { seen.append(text) }
            #expect(seen == (0..<200).map { #"{"type":"left","conversationId":"c\#($0)"}"# })
        }
    }

    @Test func pingsAreAnsweredAndASilentPeerIsClosed() async throws {
        var config = testConfiguration()
        config.realtime.pingSeconds = 1
        try await withApp(.live, config: config) { client, _ in
            let token = try await client.tokenSignIn("acme", "alice")
            // The client's ping gets its payload back.
            let polite = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            try await polite.send(opcode: 0x9, [7, 7, 7])
            // The server's own first ping comes at a random moment in the second half of its period, so on a busy
            // machine it can arrive before the pong.
            var pong = try #require(try await polite.nextFrame())
            while pong.opcode == 0x9 { pong = try #require(try await polite.nextFrame()) }
            #expect(pong.opcode == 0xA && pong.payload == [7, 7, 7])
            // A peer that answers the server's pings stays; one that does not is closed after the next period.
            let silent = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            silent.answersPings = false
            var pings = 0
            let started = ContinuousClock.now
            while let frame = try await polite.nextFrame(timeout: .seconds(3)), pings < 3 {
                if frame.opcode == 0x9 { pings += 1 }
            }
            #expect(pings == 3)
            #expect(try await silent.readUntilClosed(timeout: .seconds(1)))
            #expect(ContinuousClock.now - started < .seconds(6))
        }
    }

    @Test func theClientsCloseIsEchoedAndTheServerHangsUp() async throws {
        try await withApp(.live) { client, dependencies in
            let token = try await client.tokenSignIn("acme", "alice")
            let socket = try await FrameSocket.open(port: client.port!, headers: headerPairs(token))
            // The handler joins the pipeline just after the 101 goes out: wait for it to register.
            let watched = { dependencies.auth.revocations.watchedCredentialHashes.count }
            #expect(try await eventually { watched() == 1 && dependencies.connections.count == 1 })
            try await socket.send(opcode: 0x8, [0x0F, 0xA0])  // 4000
            #expect(try await socket.nextClose() == 4000)
            #expect(try await socket.readUntilClosed(timeout: .seconds(2)))
            // Nothing of the connection stays behind: not its revocation watch, not its place among live connections.
            #expect(try await eventually { watched() == 0 && dependencies.connections.count == 0 })
        }
    }
}

/// Whether `condition` holds within two seconds (checked every 20 ms).
func eventually(_ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(2)
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
}

/// A WebSocket client at the frame level: masked frames out, frames parsed in, pings answered unless told not to.
final class FrameSocket: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    struct Frame {
        var opcode: UInt8
        var payload: [UInt8]
        var closeCode: UInt16? { payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
    }

    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffer = ByteBuffer()
    var answersPings = true

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        self.channel = channel
        self.iterator = channel.inbound.makeAsyncIterator()
    }

    deinit {
        channel.outbound.finish()
        channel.channel.close(promise: nil)
    }

    /// Connects and completes the handshake (throws unless the answer is 101).
    static func open(port: Int, headers: [(String, String)]) async throws -> FrameSocket {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        var request = "GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try await channel.channel.writeAndFlush(ByteBuffer(string: request + "\r\n"))
        let socket = FrameSocket(channel: channel)
        while true {
            if let end = socket.buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: socket.buffer.readableBytesView[..<end.lowerBound], as: UTF8.self)
                socket.buffer.moveReaderIndex(to: end.upperBound)
                guard head.hasPrefix("HTTP/1.1 101") else { throw TestFailure("handshake refused: \(head)") }
                return socket
            }
            guard var more = try await socket.iterator.next() else { throw TestFailure("closed during the handshake") }
            socket.buffer.writeBuffer(&more)
        }
    }

    /// Bytes as they are, in one write.
    func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) async throws {
        try await channel.channel.writeAndFlush(Self.maskedFrame(opcode: opcode, payload, fin: fin))
    }

    /// A client frame: masked, as RFC 6455 requires of clients.
    static func maskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeInteger(UInt8((fin ? 0x80 : 0) | opcode))
        if payload.count < 126 {
            frame.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.count))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.count))
        }
        let mask: [UInt8] = [9, 8, 7, 6]
        frame.writeBytes(mask)
        frame.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        return frame
    }

    /// The next frame (server pings are answered first, unless `answersPings` is off); nil on EOF or timeout.
    func nextFrame(timeout: Duration = .seconds(5)) async throws -> Frame? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let frame = parse() {
                if frame.opcode == 0x9, answersPings { try await send(opcode: 0xA, frame.payload) }
                return frame
            }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, var more = try await read(within: remaining) else { return nil }
            buffer.writeBuffer(&more)
        }
    }

    /// The next text frame's payload, skipping control frames.
    func nextText() async throws -> String? {
        while let frame = try await nextFrame() {
            if frame.opcode == 0x1 { return String(decoding: frame.payload, as: UTF8.self) }
        }
        return nil
    }

    /// The code of the next close frame.
    func nextClose() async throws -> UInt16? {
        while let frame = try await nextFrame() {
            if frame.opcode == 0x8 { return frame.closeCode }
        }
        return nil
    }

    /// Reads until the server hangs up; false on timeout.
    func readUntilClosed(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return false }
            do {
                guard var more = try await read(within: remaining) else {
                    return ContinuousClock.now < deadline
                }
                buffer.writeBuffer(&more)
                while parse() != nil {}
            } catch {
                return true
            }
        }
    }

    private func read(within timeout: Duration) async throws -> ByteBuffer? {
        var iterator = self.iterator
        defer { self.iterator = iterator }
        let channel = self.channel.channel
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await iterator.next()
    }

    private func parse() -> Frame? {
        guard buffer.readableBytes >= 2 else { return nil }
        let start = buffer.readerIndex
        let first = buffer.getInteger(at: start, as: UInt8.self)!
        let second = buffer.getInteger(at: start + 1, as: UInt8.self)!
        var length = Int(second & 0x7F)
        var header = 2
        if length == 126 {
            guard let value = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = Int(value)
            header = 4
        } else if length == 127 {
            guard let value = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            length = Int(value)
            header = 10
        }
        guard buffer.readableBytes >= header + length else { return nil }
        let payload = buffer.getBytes(at: start + header, length: length)!
        buffer.moveReaderIndex(forwardBy: header + length)
        return Frame(opcode: first & 0x0F, payload: payload)
    }
}
