import NIOCore

/// A workspace: every other row belongs to exactly one.
public struct Tenant: Sendable, Equatable, Codable {
    public var id: String
    public var slug: String
    public var name: String

    public init(id: String, slug: String, name: String) {
        self.id = id
        self.slug = slug
        self.name = name
    }
}

/// A person within one tenant, as every client sees them.
public struct User: Sendable, Equatable, Codable {
    public var id: String
    public var username: String
    public var displayName: String
    public var tenantId: String
    /// An agent of the tenant (`chat-server create-agent`): its messages are a model's or the built-in assistant's.
    public var isBot: Bool

    public init(id: String, username: String, displayName: String, tenantId: String, isBot: Bool = false) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.tenantId = tenantId
        self.isBot = isBot
    }

    enum CodingKeys: String, CodingKey { case id, username, displayName, tenantId, isBot }

    // Users in events logged before agents existed carry no `isBot`: they are people.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), username: try c.decode(String.self, forKey: .username),
            displayName: try c.decode(String.self, forKey: .displayName), tenantId: try c.decode(String.self, forKey: .tenantId),
            isBot: try c.decodeIfPresent(Bool.self, forKey: .isBot) ?? false)
    }
}

/// A conversation as seen by one viewer (`unreadCount` is the viewer's; 0 inside realtime events).
public struct Conversation: Sendable, Equatable, Codable {
    /// Participants carried by a conversation in listings and events; a bigger conversation carries its first ones.
    public static let listedParticipants = 20

    public var id: String
    public var tenantId: String
    public var title: String
    /// The first participants (by when they joined, at most `listedParticipants` in listings); all of them are at
    /// `GET /api/chat/:id/members`.
    public var participants: [User]
    /// How many participants there are in all.
    public var participantCount: Int
    public var createdBy: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var lastMessageAt: Timestamp?
    public var closedAt: Timestamp?
    public var unreadCount: Int
    /// Unread messages that mention the viewer (thread replies too); 0 inside realtime events.
    public var mentionCount = 0
    /// The highest `seq` assigned in this conversation (not part of API.md's object; useful for clients).
    public var lastSeq: Int64

    public init(
        id: String, tenantId: String, title: String, participants: [User], createdBy: String, createdAt: Timestamp,
        updatedAt: Timestamp, lastMessageAt: Timestamp?, closedAt: Timestamp?, unreadCount: Int, lastSeq: Int64, participantCount: Int? = nil
    ) {
        self.id = id
        self.tenantId = tenantId
        self.title = title
        self.participants = participants
        self.participantCount = participantCount ?? participants.count
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastMessageAt = lastMessageAt
        self.closedAt = closedAt
        self.unreadCount = unreadCount
        self.lastSeq = lastSeq
    }

    enum CodingKeys: String, CodingKey {
        case id, tenantId, title, participants, participantCount, createdBy, createdAt, updatedAt, lastMessageAt, closedAt, unreadCount, lastSeq
        case mentionCount
    }

    // Events logged before `participantCount` existed carry every participant.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let participants = try c.decode([User].self, forKey: .participants)
        self.init(
            id: try c.decode(String.self, forKey: .id), tenantId: try c.decode(String.self, forKey: .tenantId),
            title: try c.decode(String.self, forKey: .title), participants: participants,
            createdBy: try c.decode(String.self, forKey: .createdBy), createdAt: try c.decode(Timestamp.self, forKey: .createdAt),
            updatedAt: try c.decode(Timestamp.self, forKey: .updatedAt), lastMessageAt: try c.decodeIfPresent(Timestamp.self, forKey: .lastMessageAt),
            closedAt: try c.decodeIfPresent(Timestamp.self, forKey: .closedAt), unreadCount: try c.decode(Int.self, forKey: .unreadCount),
            lastSeq: try c.decode(Int64.self, forKey: .lastSeq), participantCount: try c.decodeIfPresent(Int.self, forKey: .participantCount))
        mentionCount = try c.decodeIfPresent(Int.self, forKey: .mentionCount) ?? 0
    }

    // Explicit so that empty optionals are written as null, as API.md requires.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(title, forKey: .title)
        try c.encode(participants, forKey: .participants)
        try c.encode(participantCount, forKey: .participantCount)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(lastMessageAt, forKey: .lastMessageAt)
        try c.encode(closedAt, forKey: .closedAt)
        try c.encode(unreadCount, forKey: .unreadCount)
        try c.encode(mentionCount, forKey: .mentionCount)
        try c.encode(lastSeq, forKey: .lastSeq)
    }

    public var isClosed: Bool { closedAt != nil }
}

/// One chat message; thread replies are messages whose `threadParentId` names the thread's root.
public struct Message: Sendable, Equatable, Codable {
    public var id: String
    public var tenantId: String
    public var conversationId: String
    public var senderId: String
    public var sender: User
    public var threadParentId: String?
    public var content: String
    public var createdAt: Timestamp
    public var seq: Int64
    public var replyCount: Int
    public var clientMessageId: String?
    /// When the sender last changed the content; nil if never.
    public var editedAt: Timestamp?
    /// When the sender deleted it: a tombstone keeps its place (`seq`, thread, replies) and loses its content ("").
    public var deletedAt: Timestamp?
    /// Reactions by emoji, in picker order (`Reactions.all`).
    public var reactions: [Reaction] = []
    /// Ids of the participants its content mentions (`@username`), in the order first mentioned.
    public var mentions: [String] = []
    /// Files attached when it was sent (none once deleted).
    public var attachments: [Attachment] = []

    public init(
        id: String, tenantId: String, conversationId: String, senderId: String, sender: User, threadParentId: String?,
        content: String, createdAt: Timestamp, seq: Int64, replyCount: Int, clientMessageId: String?,
        editedAt: Timestamp? = nil, deletedAt: Timestamp? = nil
    ) {
        self.id = id
        self.tenantId = tenantId
        self.conversationId = conversationId
        self.senderId = senderId
        self.sender = sender
        self.threadParentId = threadParentId
        self.content = content
        self.createdAt = createdAt
        self.seq = seq
        self.replyCount = replyCount
        self.clientMessageId = clientMessageId
        self.editedAt = editedAt
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, tenantId, conversationId, senderId, sender, threadParentId, content, createdAt, seq, replyCount, clientMessageId
        case editedAt, deletedAt, reactions, mentions, attachments
    }

    // Messages in events logged before edits existed carry neither time.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), tenantId: try c.decode(String.self, forKey: .tenantId),
            conversationId: try c.decode(String.self, forKey: .conversationId), senderId: try c.decode(String.self, forKey: .senderId),
            sender: try c.decode(User.self, forKey: .sender), threadParentId: try c.decodeIfPresent(String.self, forKey: .threadParentId),
            content: try c.decode(String.self, forKey: .content), createdAt: try c.decode(Timestamp.self, forKey: .createdAt),
            seq: try c.decode(Int64.self, forKey: .seq), replyCount: try c.decode(Int.self, forKey: .replyCount),
            clientMessageId: try c.decodeIfPresent(String.self, forKey: .clientMessageId),
            editedAt: try c.decodeIfPresent(Timestamp.self, forKey: .editedAt), deletedAt: try c.decodeIfPresent(Timestamp.self, forKey: .deletedAt))
        reactions = try c.decodeIfPresent([Reaction].self, forKey: .reactions) ?? []
        mentions = try c.decodeIfPresent([String].self, forKey: .mentions) ?? []
        attachments = try c.decodeIfPresent([Attachment].self, forKey: .attachments) ?? []
    }

    public var isDeleted: Bool { deletedAt != nil }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(conversationId, forKey: .conversationId)
        try c.encode(senderId, forKey: .senderId)
        try c.encode(sender, forKey: .sender)
        try c.encode(threadParentId, forKey: .threadParentId)
        try c.encode(content, forKey: .content)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(seq, forKey: .seq)
        try c.encode(replyCount, forKey: .replyCount)
        try c.encode(clientMessageId, forKey: .clientMessageId)
        try c.encode(editedAt, forKey: .editedAt)
        try c.encode(deletedAt, forKey: .deletedAt)
        try c.encode(reactions, forKey: .reactions)
        try c.encode(mentions, forKey: .mentions)
        try c.encode(attachments, forKey: .attachments)
    }
}

/// Who is making a request: resolved once by authentication, then passed to every core call.
public struct Principal: Sendable, Equatable {
    /// How the caller proved who they are.
    public enum Method: String, Sendable { case session, token }

    public var tenantId: String
    public var userId: String
    public var method: Method
    /// SHA-256 of the session or token secret: the key of the credential row.
    public var credentialHash: String
    /// The CSRF token of a cookie session (nil for bearer tokens).
    public var csrfToken: String?
    public var expiresAt: Timestamp

    /// Whether `sent` is this session's CSRF token (bearer tokens have none, so nothing matches).
    public func acceptsCSRFToken(_ sent: String?) -> Bool {
        guard let sent, let csrfToken else { return false }
        return Secret.constantTimeEquals(sent, csrfToken)
    }

    public init(tenantId: String, userId: String, method: Method, credentialHash: String, csrfToken: String?, expiresAt: Timestamp) {
        self.tenantId = tenantId
        self.userId = userId
        self.method = method
        self.credentialHash = credentialHash
        self.csrfToken = csrfToken
        self.expiresAt = expiresAt
    }
}

/// A stored credential: a browser session or an API token, kept only as the hash of its secret.
public struct Credential: Sendable, Equatable {
    public var hash: String
    public var tenantId: String
    public var userId: String
    public var method: Principal.Method
    public var csrfToken: String?
    public var createdAt: Timestamp
    public var expiresAt: Timestamp

    public init(hash: String, tenantId: String, userId: String, method: Principal.Method, csrfToken: String?, createdAt: Timestamp, expiresAt: Timestamp) {
        self.hash = hash
        self.tenantId = tenantId
        self.userId = userId
        self.method = method
        self.csrfToken = csrfToken
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    public var principal: Principal {
        Principal(tenantId: tenantId, userId: userId, method: method, credentialHash: hash, csrfToken: csrfToken, expiresAt: expiresAt)
    }
}

/// A page of top-level messages, oldest first, and the cursor of the page before it.
public struct MessagePage: Sendable, Equatable {
    public var messages: [Message]
    public var nextCursor: String?
    /// The page as the API's JSON body (`JSONText.messagePage`), when a store kept it ready with a cached page.
    public var body: ByteBuffer?

    public init(messages: [Message], nextCursor: String?, body: ByteBuffer? = nil) {
        self.messages = messages
        self.nextCursor = nextCursor
        self.body = body
    }

    public static func == (a: MessagePage, b: MessagePage) -> Bool {
        a.messages == b.messages && a.nextCursor == b.nextCursor
    }
}

/// A thread: its root and every reply, oldest first.
public struct Thread: Sendable, Equatable {
    public var parent: Message
    public var replies: [Message]

    public init(parent: Message, replies: [Message]) {
        self.parent = parent
        self.replies = replies
    }
}
