import ChatCore
import Foundation
import Hummingbird
import MultipartKit

/// A `multipart/form-data` body: its text fields and its files, read whole up to a byte limit. MultipartKit splits
/// the parts; the part headers are read here (its own parameter reader splits a quoted filename at `;` and `=`).
struct MultipartForm {
    struct FilePart {
        let field: String
        /// nil when the part has no `filename` parameter; "" for a browser's empty file input.
        let filename: String?
        let data: [UInt8]
    }

    var fields: [String: String] = [:]
    var files: [FilePart] = []

    static func isMultipart(_ request: Request) -> Bool {
        request.headers[.contentType]?.lowercased().hasPrefix("multipart/form-data") == true
    }

    /// Parts named in `fileFields` are files (with a filename or not); every other part is a UTF-8 text field.
    static func read(_ request: Request, limit: Int, fileFields: Set<String> = ["file"]) async throws -> MultipartForm {
        guard let contentType = request.headers[.contentType], let boundary = parameter("boundary", in: contentType), !boundary.isEmpty else {
            throw ChatError(.unsupportedMediaType, "unsupported_media_type", "Send the files as multipart/form-data with a boundary.")
        }
        let body = try await request.boundedBody(limit)
        let parser = MultipartParser(boundary: boundary)
        var form = MultipartForm()
        var headers: [(String, String)] = []
        var data: [UInt8] = []
        var broken = false
        parser.onHeader = { name, value in headers.append((name.lowercased(), value)) }
        parser.onBody = { buffer in data += buffer.readableBytesView }
        parser.onPartComplete = {
            defer {
                headers = []
                data = []
            }
            guard let disposition = headers.first(where: { $0.0 == "content-disposition" })?.1,
                  let name = parameter("name", in: disposition)
            else {
                broken = true
                return
            }
            if fileFields.contains(name) {
                form.files.append(FilePart(field: name, filename: parameter("filename", in: disposition), data: data))
            } else {
                guard let text = String(validating: data, as: UTF8.self) else {
                    broken = true
                    return
                }
                form.fields[name] = text
            }
        }
        do {
            try parser.execute(body)
        } catch {
            throw ChatError.badRequest("The multipart body is malformed.", code: "invalid_multipart")
        }
        if broken { throw ChatError.badRequest("Every part needs a name (and text fields must be UTF-8).", code: "invalid_multipart") }
        return form
    }

    /// `key=value` or `key="quoted \" value"` among the `;`-separated parameters of a header value.
    static func parameter(_ key: String, in header: String) -> String? {
        var rest = Substring(header)
        // Skip the value before the first parameter.
        guard let first = rest.firstIndex(of: ";") else { return nil }
        rest = rest[rest.index(after: first)...]
        while !rest.isEmpty {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard let equals = rest.firstIndex(of: "=") else { return nil }
            let name = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                var closed = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { closed = true; break }
                    value.append(c)
                }
                guard closed else { return nil }
                rest = rest.drop(while: { $0 != ";" }).dropFirst()
            } else {
                let end = rest.firstIndex(of: ";") ?? rest.endIndex
                value = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
            }
            if name == key.lowercased() { return value }
        }
        return nil
    }
}
