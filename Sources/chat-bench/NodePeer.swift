import Foundation
import Logging

/// The Node `ws` room server the bench runs beside chat-server, so every run prints both.
enum NodePeer {
    /// The script's path when it exists and node can load `ws` (Debian's nodejs and node-ws); nil otherwise.
    static func available(script: String, logger: Logger) -> String? {
        guard FileManager.default.fileExists(atPath: script) else {
            logger.warning("no Node peer: \(script) not found")
            return nil
        }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["node", "-e", "require('ws')"]
        probe.environment = environment
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else {
            logger.warning("no Node peer: node is not installed")
            return nil
        }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            logger.warning("no Node peer: node cannot load ws (apt-get install node-ws)")
            return nil
        }
        return script
    }

    /// The environment node runs in: Debian puts its modules (node-ws) under /usr/share/nodejs.
    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["NODE_PATH"] = [environment["NODE_PATH"], "/usr/share/nodejs", "/usr/lib/nodejs"].compactMap { $0 }.joined(separator: ":")
        return environment
    }
}
