#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Random words for identifiers, read from the kernel 4 KiB at a time: asking it twice for each identifier was a
/// visible share of the writer's time per message.
private struct RandomWords {
    private var words: [UInt64] = []

    mutating func next() -> UInt64 {
        if words.isEmpty { refill() }
        return words.removeLast()
    }

    private mutating func refill() {
        words = [UInt64](repeating: 0, count: 512)
        #if canImport(Glibc)
        let device = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if device >= 0 {
            defer { close(device) }
            let filled = words.withUnsafeMutableBytes { read(device, $0.baseAddress, $0.count) }
            if filled == words.count * 8 { return }
        }
        #endif
        var system = SystemRandomNumberGenerator()
        for index in words.indices { words[index] = system.next() }
    }
}

private let randomWords = Mutex(RandomWords())

/// Makes the opaque, time-sortable string identifiers used for every row (`msg_01JD…`).
public enum Identifier {
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// A new identifier: a prefix, 10 characters of millisecond time, 16 random characters (80 bits).
    public static func make(_ prefix: String, at time: Timestamp = .now()) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(prefix.utf8.count + 27)
        bytes.append(contentsOf: prefix.utf8)
        bytes.append(UInt8(ascii: "_"))
        var t = UInt64(max(0, time.milliseconds))
        var timeChars = [UInt8](repeating: 0, count: 10)
        for i in stride(from: 9, through: 0, by: -1) {
            timeChars[i] = alphabet[Int(t & 31)]
            t >>= 5
        }
        bytes.append(contentsOf: timeChars)
        var (r, r2) = randomWords.withLock { ($0.next(), $0.next()) }
        for i in 0..<16 {
            if i == 12 { r = r2 }
            bytes.append(alphabet[Int(r & 31)])
            r >>= 5
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `isPlausible` as a JSON Schema pattern, for the OpenAPI document.
    public static let pattern = "^[A-Za-z0-9_]{1,64}$"

    /// True when `text` could be an identifier we issued: short, ASCII letters, digits and `_` only.
    /// Anything else is answered as not found without touching the database.
    public static func isPlausible(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 64 else { return false }
        return text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || $0 == 95 }
    }
}
