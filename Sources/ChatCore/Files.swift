#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A file attached to a message, as messages carry it (the bytes are at `GET /api/chat/files/:id`).
public struct Attachment: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var contentType: String
    public var size: Int

    public init(id: String, name: String, contentType: String, size: Int) {
        self.id = id
        self.name = name
        self.contentType = contentType
        self.size = size
    }

    /// An image the pages show as a preview.
    public var isImage: Bool { contentType.hasPrefix("image/") }
}

/// A file to attach, checked (`FileRules.accept`) before it reaches the store.
public struct NewFile: Sendable {
    public var name: String
    public var contentType: String
    public var data: [UInt8]

    public init(name: String, contentType: String, data: [UInt8]) {
        self.name = name
        self.contentType = contentType
        self.data = data
    }
}

/// A stored file with its bytes, for a download.
public struct StoredFile: Sendable {
    public var attachment: Attachment
    public var conversationId: String
    public var data: [UInt8]

    public init(attachment: Attachment, conversationId: String, data: [UInt8]) {
        self.attachment = attachment
        self.conversationId = conversationId
        self.data = data
    }
}

/// What may be attached: the type is read from the bytes, never taken from the client, and only types a browser
/// cannot run are allowed (images, PDF, plain text). Names are reduced to a safe last path component.
public enum FileRules {
    public struct Limits: Sendable {
        public var maxFileBytes = 10 * 1024 * 1024
        public var maxFilesPerMessage = 4
        public init() {}
    }

    public static let allowedTypes = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"]

    /// The type the bytes are, when allowed; nil otherwise.
    public static func sniff(_ data: [UInt8]) -> String? {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            data.count >= offset + prefix.count && Array(data[offset..<offset + prefix.count]) == prefix
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "image/gif" }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return "image/webp" }
        if starts(Array("%PDF-".utf8)) { return "application/pdf" }
        // Text: UTF-8 without NUL or other C0 controls than tab, line feed, form feed and carriage return.
        if !data.isEmpty, String(validating: data, as: UTF8.self) != nil,
           !data.contains(where: { $0 < 0x20 && ![0x09, 0x0A, 0x0C, 0x0D].contains($0) }) {
            return "text/plain"
        }
        return nil
    }

    /// A display name: the last path component, without control characters, at most 200 characters; "file" if
    /// nothing is left.
    public static func cleanName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let scalars = last.unicodeScalars.filter { !$0.properties.generalCategory.isControlLike && $0 != "\"" }
        var cleaned = String(String.UnicodeScalarView(scalars.prefix(200))).trimmingWhitespace()
        if cleaned.isEmpty || cleaned == "." || cleaned == ".." { cleaned = "file" }
        return cleaned
    }

    /// Checks an upload and gives it its real type; 413 `file_too_large`, 415 `file_type_not_allowed`, 400
    /// `empty_file`.
    public static func accept(name: String, data: [UInt8], limits: Limits) throws -> NewFile {
        guard !data.isEmpty else { throw ChatError.badRequest("A file is empty.", code: "empty_file") }
        guard data.count <= limits.maxFileBytes else {
            throw ChatError(.tooLarge, "file_too_large", "A file is limited to \(limits.maxFileBytes / 1_048_576) MiB.")
        }
        guard let type = sniff(data) else {
            throw ChatError(
                .unsupportedMediaType, "file_type_not_allowed", "Files may be PNG, JPEG, GIF or WebP images, PDF documents or plain text.")
        }
        return NewFile(name: cleanName(name), contentType: type, data: data)
    }

    /// `attachments` as stored with the message (a JSON array), and back.
    public static func encode(_ attachments: [Attachment]) -> String? {
        guard !attachments.isEmpty, let bytes = try? JSONText.encode(attachments) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func decode(_ text: String?) -> [Attachment] {
        guard let text, let list = try? JSONDecoder().decode([Attachment].self, from: Data(text.utf8)) else { return [] }
        return list
    }
}

extension Unicode.GeneralCategory {
    var isControlLike: Bool {
        switch self {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse: true
        default: false
        }
    }
}
