import NIOCore

/// Client-to-server WebSocket frames (RFC 6455 section 5), read by the connection's own handler from the socket's
/// bytes. NIO's decoder, protocol-error handler and fragment aggregator did this as three more channel handlers, each
/// with its context: ~1 KB of every open socket. This reader keeps nothing between frames (a frame cut by TCP keeps
/// its bytes until the rest arrives; a fragmented message keeps what came so far).
///
/// It enforces what RFC 6455 asks of a server: client frames are masked; no RSV bit (no extension is negotiated);
/// known opcodes only; control frames unfragmented and at most 125 bytes; continuations only inside a fragmented
/// message; text and close reasons are UTF-8; a close code is one an endpoint may send. A message (one frame, or its fragments joined) is at most `maxMessageBytes`.
struct WebSocketFrameReader {
    enum Message {
        case text(String)
        case binary
        case ping(ByteBuffer)
        case pong
        /// The close code the client sent, if any.
        case close(UInt16?)
    }

    /// What ends the connection, with its close code.
    enum Failure: Error, Equatable {
        /// 1002: the bytes break the protocol.
        case protocolError(String)
        /// 1009: a message over the limit.
        case tooBig
        /// 1007: a text message that is not UTF-8.
        case notUTF8

        var closeCode: UInt16 {
            switch self {
            case .protocolError: 1002
            case .tooBig: 1009
            case .notUTF8: 1007
            }
        }

        /// The close frame's reason, for the client's developer.
        var reason: String {
            switch self {
            case .protocolError(let detail): "protocol error: " + detail
            case .tooBig: "message too big"
            case .notUTF8: "text must be UTF-8"
            }
        }
    }

    /// At most this many frames make one message (NIO's aggregator had the same bound): fragments are cheap to send.
    static let maxFragments = 64

    let maxMessageBytes: Int
    /// The start of a frame whose rest has not arrived yet.
    private var partial: ByteBuffer?
    /// A fragmented message in progress: its opcode, its unmasked bytes so far and how many frames brought them.
    private var fragmented: (opcode: UInt8, bytes: ByteBuffer, frames: Int)?

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Reads the frames in `incoming` (and in what an earlier read left), handing each complete message to `deliver`
    /// until it returns false. Throws at the first breach; nothing after it is read.
    mutating func read(_ incoming: ByteBuffer, _ deliver: (Message) -> Bool) throws(Failure) {
        var bytes = incoming
        if var earlier = partial {
            partial = nil
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        while let (first, payload) = try nextFrame(&bytes) {
            if let message = try assemble(first: first, payload: payload), !deliver(message) { return }
        }
        if bytes.readableBytes > 0 {
            // A copy, not a slice: a slice would keep the socket's whole receive buffer alive and make NIO allocate
            // a fresh one for the next read.
            var rest = ByteBuffer()
            rest.reserveCapacity(bytes.readableBytes)
            rest.writeBuffer(&bytes)
            partial = rest
        }
    }

    /// One whole frame from the front of `bytes` (its first byte and unmasked payload), or nil until more arrives.
    private func nextFrame(_ bytes: inout ByteBuffer) throws(Failure) -> (UInt8, ByteBuffer)? {
        let start = bytes.readerIndex
        guard let first = bytes.getInteger(at: start, as: UInt8.self), let second = bytes.getInteger(at: start + 1, as: UInt8.self) else {
            return nil
        }
        guard first & 0x70 == 0 else { throw .protocolError("reserved bits set") }
        let opcode = first & 0x0F
        guard opcode <= 0x2 || (0x8...0xA).contains(opcode) else { throw .protocolError("unknown opcode") }
        guard second & 0x80 != 0 else { throw .protocolError("client frames must be masked") }
        let isControl = opcode & 0x8 != 0
        var length = Int(second & 0x7F)
        var headerLength = 2
        if length == 126 {
            guard let extended = bytes.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = Int(extended)
            headerLength = 4
        } else if length == 127 {
            guard let extended = bytes.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            guard extended <= UInt64(maxMessageBytes) else { throw extended >> 63 == 0 ? .tooBig : .protocolError("length out of range") }
            length = Int(extended)
            headerLength = 10
        }
        if isControl {
            guard first & 0x80 != 0 else { throw .protocolError("fragmented control frame") }
            guard length <= 125 else { throw .protocolError("control frame over 125 bytes") }
        } else if length > maxMessageBytes {
            // Refused from its header, before its payload is buffered.
            throw .tooBig
        }
        guard bytes.readableBytes >= headerLength + 4 + length, let key = bytes.getInteger(at: start + headerLength, as: UInt32.self) else {
            return nil
        }
        let payload = Self.unmask(bytes, at: start + headerLength + 4, length: length, key: key)
        bytes.moveReaderIndex(forwardBy: headerLength + 4 + length)
        return (first, payload)
    }

    /// A frame into a message: control frames at once (also between fragments), data frames when their last
    /// fragment arrives.
    private mutating func assemble(first: UInt8, payload: ByteBuffer) throws(Failure) -> Message? {
        let fin = first & 0x80 != 0
        switch first & 0x0F {
        case 0x8:
            guard payload.readableBytes != 1 else { throw .protocolError("close payload of one byte") }
            guard let code = payload.getInteger(at: payload.readerIndex, as: UInt16.self) else { return .close(nil) }
            guard Self.isSendable(closeCode: code) else { throw .protocolError("close code \(code) may not be sent") }
            guard String(validating: payload.readableBytesView.dropFirst(2), as: UTF8.self) != nil else { throw .notUTF8 }
            return .close(code)
        case 0x9:
            return .ping(payload)
        case 0xA:
            return .pong
        case 0x0:
            guard var message = fragmented else { throw .protocolError("continuation outside a fragmented message") }
            fragmented = nil
            message.frames += 1
            guard message.frames <= Self.maxFragments else { throw .protocolError("too many fragments") }
            guard fin || payload.readableBytes > 0 else { throw .protocolError("empty fragment") }
            guard message.bytes.readableBytes + payload.readableBytes <= maxMessageBytes else { throw .tooBig }
            var payload = payload
            message.bytes.writeBuffer(&payload)
            if !fin {
                fragmented = message
                return nil
            }
            return try Self.message(opcode: message.opcode, message.bytes)
        default:
            guard fragmented == nil else { throw .protocolError("new message inside a fragmented one") }
            if fin { return try Self.message(opcode: first & 0x0F, payload) }
            guard payload.readableBytes > 0 else { throw .protocolError("empty fragment") }
            fragmented = (first & 0x0F, payload, 1)
            return nil
        }
    }

    /// Codes an endpoint may put in a close frame (RFC 6455 7.4): the defined ones except 1004 (reserved) and
    /// 1005/1006/1015 (only ever reported locally), and the ranges for libraries (3000-3999) and applications (4000-4999).
    /// The server echoes the client's code, so it must not echo one of the others.
    static func isSendable(closeCode code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    private static func message(opcode: UInt8, _ bytes: ByteBuffer) throws(Failure) -> Message {
        guard opcode == 0x1 else { return .binary }
        guard let text = String(validating: bytes.readableBytesView, as: UTF8.self) else { throw .notUTF8 }
        return .text(text)
    }

    /// The payload XORed with the client's key (RFC 6455 5.3), into a buffer of its own.
    private static func unmask(_ bytes: ByteBuffer, at index: Int, length: Int, key: UInt32) -> ByteBuffer {
        var out = ByteBuffer()
        guard length > 0 else { return out }
        bytes.withUnsafeReadableBytes { source in
            let base = index - bytes.readerIndex
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
                for offset in 0..<length {
                    // The key's bytes in network order: byte 0 is the key's highest.
                    target[offset] = source[base + offset] ^ UInt8(truncatingIfNeeded: key >> (24 - 8 * UInt32(offset & 3)))
                }
                return length
            }
        }
        return out
    }
}
