import ChatCore
import Foundation

/// Reads the Server-Sent Events stream of an OpenAI-compatible `/v1/chat/completions` call with `"stream": true`:
/// bytes in, in chunks cut anywhere (inside a line, inside a UTF-8 character); text deltas, the usage figures and
/// the end out. Comment lines (`:` first, some servers' keep-alives), other fields and events without data are
/// skipped; an `error` object in the stream (a failure after the 200) is thrown.
public struct CompletionStream: Sendable {
    public enum Event: Equatable, Sendable {
        /// More of the reply's text.
        case text(String)
        case usage(ModelUsage)
        /// The model that answered, from the first chunk that names it.
        case model(String)
        /// `data: [DONE]`.
        case done
    }

    public struct StreamError: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { "the model server reported an error: \(message)" }
    }

    /// The most a single line may hold before the stream is refused (a server that never sends a newline).
    public static let maxLineBytes = 1 << 20

    private var pending: [UInt8] = []
    private var data: [String] = []
    private var sawModel = false
    public private(set) var finished = false

    public init() {}

    /// Everything the bytes complete; what they leave unfinished waits for the next call.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            guard !finished else { break }
            if byte == UInt8(ascii: "\n") {
                var text = pending
                pending.removeAll(keepingCapacity: true)
                if text.last == UInt8(ascii: "\r") { text.removeLast() }
                try self.line(String(decoding: text, as: UTF8.self), into: &events)
            } else {
                pending.append(byte)
                guard pending.count <= Self.maxLineBytes else { throw StreamError(message: "a line of the stream is too long") }
            }
        }
        return events
    }

    /// The stream ended: an event without its closing blank line still counts.
    public mutating func finish() throws -> [Event] {
        var events: [Event] = []
        if !pending.isEmpty {
            let line = String(decoding: pending, as: UTF8.self)
            pending.removeAll()
            try self.line(line, into: &events)
        }
        try dispatch(into: &events)
        return events
    }

    private mutating func line(_ line: String, into events: inout [Event]) throws {
        if line.isEmpty { return try dispatch(into: &events) }
        if line.hasPrefix(":") { return }
        let field: Substring, value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            var rest = line[line.index(after: colon)...]
            if rest.first == " " { rest = rest.dropFirst() }
            value = rest
        } else {
            (field, value) = (line[...], "")
        }
        if field == "data" { data.append(String(value)) }
    }

    private mutating func dispatch(into events: inout [Event]) throws {
        guard !data.isEmpty else { return }
        let payload = data.joined(separator: "\n")
        data.removeAll()
        if payload.trimmingCharacters(in: .whitespaces) == "[DONE]" {
            finished = true
            events.append(.done)
            return
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else {
            throw StreamError(message: "a chunk is not JSON")
        }
        if let error = object["error"] {
            let message = (error as? [String: Any])?["message"] as? String ?? (error as? String) ?? "unknown error"
            throw StreamError(message: message)
        }
        if !sawModel, let model = object["model"] as? String, !model.isEmpty {
            sawModel = true
            events.append(.model(model))
        }
        for choice in object["choices"] as? [[String: Any]] ?? [] {
            if let delta = choice["delta"] as? [String: Any], let content = delta["content"] as? String, !content.isEmpty {
                events.append(.text(content))
            }
        }
        if let usage = object["usage"] as? [String: Any],
           let prompt = (usage["prompt_tokens"] as? NSNumber)?.intValue, let completion = (usage["completion_tokens"] as? NSNumber)?.intValue
        {
            events.append(.usage(ModelUsage(promptTokens: prompt, completionTokens: completion)))
        }
    }
}
