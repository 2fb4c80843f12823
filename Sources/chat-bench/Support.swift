import ChatCore
import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// Monotonic nanoseconds, shared by senders and receivers of this one process.
@inline(__always) func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Latencies (microseconds) and delivery-order counters shared by many receivers. Sharded by thread, so the
/// generator's event loops do not contend on one lock for every frame; snapshots merge the shards.
final class DeliveryStats: Sendable {
    private struct State {
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var deliveries = 0
        var gaps = 0
        var duplicates = 0
        var reorders = 0
    }
    private final class Shard: Sendable {
        let state = Mutex(State())
    }
    private let shards: [Shard] = (0..<8).map { _ in Shard() }

    private var shard: Shard {
        shards[Int((UInt(pthread_self()) >> 12) & 7)]
    }

    func record(latencyMicros: UInt64) {
        shard.state.withLock { s in
            _ = s.latency.record(max(1, latencyMicros))
            s.deliveries += 1
        }
    }

    func order(gap: Bool = false, duplicate: Bool = false, reorder: Bool = false) {
        shard.state.withLock { s in
            if gap { s.gaps += 1 }
            if duplicate { s.duplicates += 1 }
            if reorder { s.reorders += 1 }
        }
    }

    var deliveries: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.deliveries } } }

    struct Snapshot: Codable {
        var deliveries: Int
        var p50ms: Double
        var p99ms: Double
        var p999ms: Double
        var maxms: Double
        var gaps: Int
        var duplicates: Int
        var reorders: Int
    }

    func snapshot() -> Snapshot {
        var total = State()
        for shard in shards {
            shard.state.withLock { s in
                total.latency.add(s.latency)
                total.deliveries += s.deliveries
                total.gaps += s.gaps
                total.duplicates += s.duplicates
                total.reorders += s.reorders
            }
        }
        return Snapshot(
            deliveries: total.deliveries, p50ms: Double(total.latency.valueAtPercentile(50)) / 1000,
            p99ms: Double(total.latency.valueAtPercentile(99)) / 1000, p999ms: Double(total.latency.valueAtPercentile(99.9)) / 1000,
            maxms: Double(total.latency.max) / 1000, gaps: total.gaps, duplicates: total.duplicates, reorders: total.reorders)
    }
}

/// Tracks one receiver's view of one room: the seq it expects next.
struct SeqTracker {
    var last: Int64 = 0

    mutating func see(_ seq: Int64, stats: DeliveryStats) {
        if seq == last + 1 {
            last = seq
        } else if seq > last + 1 {
            stats.order(gap: true)
            last = seq
        } else if seq == last {
            stats.order(duplicate: true)
        } else {
            stats.order(reorder: true)
        }
    }
}

/// Cheap field extraction from an event envelope (a full JSON parse per delivery would dominate the generator).
enum Scan {
    /// The integer after `"key":`.
    static func integer(_ bytes: UnsafeRawBufferPointer, after key: [UInt8]) -> Int64? {
        guard let start = find(bytes, key) else { return nil }
        var i = start + key.count
        var value: Int64 = 0
        var digits = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            value = value * 10 + Int64(bytes[i] - 48)
            i += 1
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    static func find(_ bytes: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        let first = needle[0]
        var i = 0
        let last = bytes.count - needle.count
        while i <= last {
            if bytes[i] == first {
                var j = 1
                while j < needle.count, bytes[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// The `conversationId` of an envelope (the first one: the envelope's own, before its data).
    static func conversationId(_ buffer: ByteBuffer) -> String? {
        buffer.withUnsafeReadableBytes { bytes -> String? in
            guard let start = find(bytes, conversationKey) else { return nil }
            var end = start + conversationKey.count
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(start + conversationKey.count)..<end]), as: UTF8.self)
        }
    }

    static let conversationKey = Array("\"conversationId\":\"".utf8)
    static let seqKey = Array("\"seq\":".utf8)
    static let stampKey = Array("\"content\":\"b|".utf8)
    static let newMessage = Array("{\"type\":\"new_message\"".utf8)
    static let ack = Array("{\"type\":\"ack\"".utf8)
    static let joined = Array("{\"type\":\"joined\"".utf8)

    /// For a `new_message` envelope: its seq and the send time stamped in its content.
    static func message(_ buffer: ByteBuffer) -> (seq: Int64, sentNanos: UInt64)? {
        buffer.withUnsafeReadableBytes { bytes -> (Int64, UInt64)? in
            guard bytes.count > newMessage.count, find(UnsafeRawBufferPointer(rebasing: bytes[0..<newMessage.count]), newMessage) == 0,
                  let seq = integer(bytes, after: seqKey), let stamp = integer(bytes, after: stampKey)
            else { return nil }
            return (seq, UInt64(stamp))
        }
    }

    static func hasPrefix(_ buffer: ByteBuffer, _ prefix: [UInt8]) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            bytes.count >= prefix.count && zip(bytes.prefix(prefix.count), prefix).allSatisfy { $0 == $1 }
        }
    }
}

/// The content of a bench message: the send time, then padding to a realistic size.
func stampedContent(padding: Int = 60) -> String {
    "b|\(nowNanos())|" + String(repeating: "m", count: padding)
}

/// CPU seconds and resident memory of a process, from /proc.
enum ProcessStats {
    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state(0) ... utime is field 14 overall, i.e. index 11 here; stime index 12.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssKiB(pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

/// A fixed-rate pacer: calls `tick(n)` so that `rate` items per second are issued in all.
func pace(rate: Double, duration: Duration, _ tick: (Int) -> Void) async {
    let start = nowNanos()
    let end = start + UInt64(Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9)
    var issued = 0
    while true {
        let now = nowNanos()
        if now >= end { break }
        let due = Int(Double(now - start) / 1e9 * rate)
        if due > issued {
            tick(due - issued)
            issued = due
        }
        try? await Task.sleep(for: .milliseconds(1))
    }
}
