import ChatCore
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// Renders the mustache pages (escaped output only) with the page security headers.
struct PageRenderer: Sendable {
    static let requiredTemplates = [
        "layout_start", "layout_end", "login", "sidebar", "conversation_item", "conversation_list", "message_bubble",
        "chat_window", "error", "members",
    ]
    static let contentSecurityPolicy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
        "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    let library: MustacheLibrary

    /// Loads the templates; fails loudly when one is missing (the library itself would silently be empty).
    static func load(directory: String) async throws -> PageRenderer {
        let library = try await MustacheLibrary(directory: directory)
        let missing = requiredTemplates.filter { library.getTemplate(named: $0) == nil }
        guard missing.isEmpty else {
            throw TemplateError(message: "templates missing from \(directory): \(missing.joined(separator: ", "))")
        }
        return PageRenderer(library: library)
    }

    struct TemplateError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    func render(_ template: String, _ context: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(context, withTemplate: template) ?? ""
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func errorPage(status: HTTPResponse.Status, heading: String, message: String) -> Response {
        render("error", ["pageTitle": heading, "page": "error", "heading": heading, "message": message, "tenantName": "Chat"], status: status)
    }
}

/// An `application/x-www-form-urlencoded` body.
struct FormBody {
    private var fields: [(String, String)] = []

    init(_ text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            fields.append((name, value))
        }
    }

    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    subscript(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }
    func all(_ name: String) -> [String] { fields.filter { $0.0 == name }.map(\.1) }

    /// Reads a form body of at most `limit` bytes.
    static func read(_ request: Request, limit: Int) async throws -> FormBody {
        FormBody(String(buffer: try await request.boundedBody(limit)))
    }
}
