import CompressNIO
import NIOCore
import Synchronization

/// Reusable gzip compressors for long-poll answers: every poll that accepts gzip is compressed (API.md), even a small
/// one, so setting up zlib's state for each answer would cost more than the compression.
final class GzipPool: Sendable {
    private final class Box: @unchecked Sendable {
        // @unchecked: a compressor is used by one caller at a time: `compress` pops it from `idle` and puts it back.
        let compressor: ZlibCompressor
        init(_ compressor: ZlibCompressor) { self.compressor = compressor }
    }

    /// Fast deflate with a small hash table: a reset clears the hash table (64 KB at zlib's default memory level,
    /// 1 KB here), which dominated small answers; poll answers are repetitive JSON and still shrink ~8x.
    static let configuration = ZlibConfiguration(windowSize: 15, compressionLevel: 1, memoryLevel: 2)

    private let idle = Mutex<[Box]>([])
    private let keep: Int

    init(keep: Int = 16) {
        self.keep = keep
    }

    func compress(_ original: ByteBuffer) throws -> ByteBuffer {
        var input = original
        let box = try idle.withLock { $0.popLast() } ?? Box(ZlibCompressor(algorithm: .gzip, configuration: Self.configuration))
        var output = ByteBufferAllocator().buffer(capacity: box.compressor.maxSize(from: input))
        do {
            try box.compressor.deflate(from: &input, to: &output, flush: .finish)
            try box.compressor.reset()
        } catch {
            // A compressor in an unknown state is dropped; this answer gets a fresh one.
            var again = original
            return try again.compress(with: .gzip, configuration: Self.configuration)
        }
        idle.withLock { if $0.count < keep { $0.append(box) } }
        return output
    }
}
