import ChatCore
import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// The whole body, at most `limit` bytes: 413 `body_too_large` beyond (every way a body is read goes through here).
    func boundedBody(_ limit: Int) async throws -> ByteBuffer {
        var request = self
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ChatError(.tooLarge, "body_too_large", "The request body is limited to \(limit) bytes.")
        }
    }

    /// Decodes a JSON body of at most `limit` bytes, answering every kind of bad input with a 4xx `ChatError`.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        if let contentType = headers[.contentType], !contentType.lowercased().contains("json") {
            throw ChatError(.unsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
        }
        let buffer = try await boundedBody(limit)
        guard buffer.readableBytes > 0 else { throw ChatError.badRequest("The request body is empty.", code: "invalid_json") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch DecodingError.keyNotFound(let key, let context) {
            throw ChatError.badRequest("Missing field `\(Self.path(context.codingPath + [key]))`.", code: "missing_field")
        } catch DecodingError.typeMismatch(_, let context) {
            throw ChatError.badRequest("Field `\(Self.path(context.codingPath))` has the wrong type.", code: "invalid_field")
        } catch DecodingError.valueNotFound(_, let context) {
            throw ChatError.badRequest("Field `\(Self.path(context.codingPath))` must not be null.", code: "invalid_field")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            throw ChatError.badRequest("Field `\(Self.path(context.codingPath))` is not valid.", code: "invalid_field")
        } catch {
            throw ChatError.badRequest("The body is not valid JSON.", code: "invalid_json")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// An optional integer query parameter; present but not an integer is a 400.
    func integerQuery(_ name: String) throws -> Int? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        if let value = Int(text) { return value }
        // An integer too large for Int is still an integer (a schema-driven client may send one): the largest.
        let digits = text.hasPrefix("+") ? text.utf8.dropFirst() : text.utf8[...]
        if !digits.isEmpty, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) { return Int.max }
        throw ChatError.badRequest("`\(name)` must be an integer.", code: "invalid_\(name)")
    }

    /// A yes/no query parameter: `1`/`true` or `0`/`false`; absent is false.
    func flagQuery(_ name: String) throws -> Bool {
        switch uri.queryParameters.get(name) {
        case nil, "0", "false": return false
        case "1", "true": return true
        default: throw ChatError.badRequest("`\(name)` must be 1 or 0.", code: "invalid_\(name)")
        }
    }
}

/// Builds JSON responses with the shared encoder, so REST bodies and event payloads look alike.
enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let bytes = try JSONText.encode(value)
        return make(bytes: bytes, status: status, headers: headers)
    }

    static func make(bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        make(buffer: ByteBuffer(bytes: bytes), status: status, headers: headers)
    }

    static func make(buffer: ByteBuffer, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
    }
}

/// A page of a listing: `{"<items>": […], "nextCursor": string|null}` (the cursor is written as null, never left out).
struct PagedBody<Item: Encodable>: Encodable {
    let key: String
    let items: [Item]
    let nextCursor: String?

    private struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(items, forKey: Key(stringValue: key))
        try container.encode(nextCursor, forKey: Key(stringValue: "nextCursor"))
    }
}
