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

    /// Fast deflate (level 1) at memory level 7. The memory level also sizes deflate's symbol buffer (2^(level+6)
    /// symbols): at level 2 a block was closed, and its Huffman trees built, every 256 symbols, so a one-event answer
    /// (~1 KB) cost 17.5–17.9 µs and a 165 KB catch-up 606–756 µs; at 7 they cost 12.9–14.2 and 277–279 µs, and the
    /// catch-up is 11 % smaller (a C loop of deflate and deflateReset over real poll answers, zlib 1.2.13).
    static let configuration = ZlibConfiguration(windowSize: 15, compressionLevel: 1, memoryLevel: 7)

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
