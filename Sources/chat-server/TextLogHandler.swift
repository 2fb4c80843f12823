import Foundation
import Logging

/// Plain text lines on standard error (`--log-format text`, the default), in swift-log's `StreamLogHandler` layout:
/// `time level label: key=value … [source] message`.
///
/// Unlike `StreamLogHandler`, metadata is formatted only when a line is written. Every request sets metadata on its
/// logger three times (Hummingbird's `hb.request.id`, our `request_id` and `client_address`), and most requests log
/// nothing at the default level; `StreamLogHandler` re-sorted and re-formatted the whole dictionary on each set, which
/// was a quarter of the request tasks' CPU for `GET /health` (perf, wrk against one server).
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = Logger.Metadata.line(event, handler: metadata, provider: metadataProvider)
        var text = Self.timestamp()
        text += " \(event.level)"
        if !label.isEmpty { text += " \(label)" }
        text += ":"
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
        text += " [\(event.source)] \(event.message)\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Local time to the second with its offset, as `StreamLogHandler` writes it.
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Logger.Metadata {
    /// The metadata of one line, for both handlers: the logger's, then the provider's, then the call's, then the
    /// error's (named as `StreamLogHandler` names them); later ones win.
    static func line(_ event: LogEvent, handler: Logger.Metadata, provider: Logger.MetadataProvider?) -> Logger.Metadata {
        var all = handler
        if let provided = provider?.get() { all.merge(provided) { $1 } }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return all
    }
}
