import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

/// What one HTTP request costs on this machine below any code of ours: the same `wrk` load as the history and
/// long-poll figures, against a bare SwiftNIO HTTP/1 server, a bare Hummingbird application (our framework, no
/// middleware) and Node's `http` module (the peer's `/health`), each answering `/health` with a small JSON body.
/// The request targets of issue 12 are absolute; these floors, measured in the same run, say how much of a
/// request is ours on the machine at hand.
enum HTTPFloor {
    enum Stack: String, CaseIterable, Codable, Sendable {
        case nio
        case hummingbird
    }

    static let body = #"{"status":"ok"}"#

    /// Serves `GET /health` on `port` until the process ends (`chat-bench --serve-floor`).
    static func serve(_ stack: Stack, port: Int) async throws {
        switch stack {
        case .hummingbird:
            let router = Router()
            router.get("health") { _, _ in
                Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
            }
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "floor", backlog: 4096))
            try await app.runService()
        case .nio:
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(FixedAnswer())
                    }
                }
                .bind(host: "127.0.0.1", port: port).get()
            try await channel.closeFuture.get()
        }
    }

    /// Answers every request with `body`; wrk keeps its connections alive, others are closed after the answer.
    final class FixedAnswer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private let answer = ByteBuffer(string: HTTPFloor.body)
        private var keepAlive = true

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                keepAlive = head.isKeepAlive
            case .body:
                break
            case .end:
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(answer.readableBytes))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(answer))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}

/// One `wrk -t2 -c64` run against a server: its rate, and the server's CPU per request read from /proc.
struct RequestCost: Codable {
    var name: String
    var requestsPerSecond: Double
    /// Server CPU (user + system) over the run divided by the requests wrk completed.
    var serverCPUMicrosPerRequest: Double
}

extension Runner {
    /// Requests per second and server CPU per request under `wrk -t2 -c64`, or nil when wrk is not installed.
    static func wrk(name: String, port: Int, pid: Int32, path: String, headers: [String] = [], seconds: Int) -> RequestCost? {
        guard let wrk = ["/usr/bin/wrk", "/usr/local/bin/wrk"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        process.arguments = ["-t2", "-c64", "-d\(seconds)s"] + headers.flatMap { ["-H", $0] } + ["http://127.0.0.1:\(port)\(path)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        let cpuBefore = ProcessStats.cpuSeconds(pid: pid)
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let cpu = ProcessStats.cpuSeconds(pid: pid) - cpuBefore
        let lines = output.split(separator: "\n")
        // "Requests/sec: 12345.67" and "  123456 requests in 10.00s, 45.6MB read"
        guard let rate = lines.first(where: { $0.hasPrefix("Requests/sec:") }).flatMap({ Double($0.split(separator: " ").last ?? "") }),
              let total = lines.first(where: { $0.contains(" requests in ") }).flatMap({ Double($0.split(separator: " ").first ?? "") }),
              total > 0
        else { return nil }
        return RequestCost(name: name, requestsPerSecond: rate, serverCPUMicrosPerRequest: cpu / total * 1e6)
    }

    /// `/health` on the bare stacks (and on the Node peer when it is installed), one after another, each on a quiet
    /// machine: the floor under the history and long-poll figures.
    func httpFloors(seconds: Int) async throws -> [RequestCost] {
        var costs: [RequestCost] = []
        let stacks: [(String, ServerProcess.Program)] =
            HTTPFloor.Stack.allCases.map { ("bare \($0 == .nio ? "SwiftNIO HTTP/1" : "Hummingbird") /health", .floor($0)) }
            + (nodeScript.map { [("Node http /health (the peer)", .node(script: $0))] } ?? [])
        for (name, program) in stacks {
            ServerPort.next += 1
            let server = try ServerProcess(binary: binary, port: ServerPort.base + ServerPort.next, program: program)
            try await server.start()
            defer { server.stop() }
            if let cost = Self.wrk(name: name, port: server.port, pid: server.pid, path: "/health", seconds: seconds) { costs.append(cost) }
        }
        return costs
    }
}
