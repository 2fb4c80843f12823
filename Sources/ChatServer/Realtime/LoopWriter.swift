import NIOCore
import NIOWebSocket
import Synchronization

/// Coalesces fan-out writes per event loop: frames for sockets of one loop, published together (one commit batch
/// reaching a room), go over in one `execute` on that loop instead of one per frame, and each socket is flushed once
/// after its last frame of the run, so several frames for one socket leave in one `writev`.
final class LoopWriter: Sendable {
    private struct Pending {
        var frames: [(channel: any Channel, data: ByteBuffer)] = []
        var scheduled = false
    }

    let eventLoop: any EventLoop
    private let pending = Mutex(Pending())

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let writers = Mutex<[ObjectIdentifier: LoopWriter]>([:])

    /// The writer of `eventLoop` (one per loop, for the life of the process).
    static func of(_ eventLoop: any EventLoop) -> LoopWriter {
        writers.withLock { writers in
            if let writer = writers[ObjectIdentifier(eventLoop)] { return writer }
            let writer = LoopWriter(eventLoop: eventLoop)
            writers[ObjectIdentifier(eventLoop)] = writer
            return writer
        }
    }

    /// Queues a text frame for `channel` (which must belong to this loop); frames for one channel keep their order.
    func writeText(_ data: ByteBuffer, to channel: any Channel) {
        let schedule = pending.withLock { p -> Bool in
            p.frames.append((channel, data))
            if p.scheduled { return false }
            p.scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let frames = pending.withLock { p -> [(channel: any Channel, data: ByteBuffer)] in
            p.scheduled = false
            defer { p.frames = [] }
            return p.frames
        }
        if frames.count == 1 {
            frames[0].channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: frames[0].data), promise: nil)
            return
        }
        var last: [ObjectIdentifier: Int] = [:]
        last.reserveCapacity(frames.count)
        for (index, frame) in frames.enumerated() { last[ObjectIdentifier(frame.channel)] = index }
        for (index, frame) in frames.enumerated() {
            let wsFrame = WebSocketFrame(fin: true, opcode: .text, data: frame.data)
            if last[ObjectIdentifier(frame.channel)] == index {
                frame.channel.writeAndFlush(wsFrame, promise: nil)
            } else {
                frame.channel.write(wsFrame, promise: nil)
            }
        }
    }
}
