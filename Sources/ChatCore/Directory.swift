import Foundation

/// The tenant's people directory: prefix search over usernames and display names, case- and accent-insensitive,
/// paged by an opaque cursor. Both stores keep one row per search term (`user_terms`), so a search is an index range,
/// whatever the size of the tenant.
public enum Directory {
    public static let defaultLimit = 100
    public static let maxLimit = 500
    /// The longest query kept (a longer one matches nothing a shorter one would not).
    public static let maxQueryLength = 64

    /// Lowercased, accents and other combining marks removed: "Émile" and "emile" fold alike.
    public static func fold(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            scalars.append(scalar)
        }
        return String(scalars).lowercased()
    }

    /// What a user is found by: the username, the display name, and each word of the display name, folded.
    public static func terms(username: String, displayName: String) -> Set<String> {
        var terms: Set<String> = [fold(username), fold(displayName)]
        for word in fold(displayName).split(whereSeparator: { !$0.isLetter && !$0.isNumber }) { terms.insert(String(word)) }
        terms.remove("")
        return terms
    }

    /// The cursor after `username` (opaque to clients: base64url of the last username of a page).
    public static func cursor(after username: String) -> String {
        Data(username.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The username a cursor stands for; nil when it is not one this server issued.
    public static func username(fromCursor cursor: String) -> String? {
        guard !cursor.isEmpty, cursor.count <= 512 else { return nil }
        var text = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text), let username = String(data: data, encoding: .utf8), !username.isEmpty else { return nil }
        return username
    }
}

/// One page of the directory.
public struct UserPage: Sendable, Equatable {
    public var users: [User]
    /// Where the next page starts; nil on the last page.
    public var nextCursor: String?

    public init(users: [User], nextCursor: String?) {
        self.users = users
        self.nextCursor = nextCursor
    }
}
