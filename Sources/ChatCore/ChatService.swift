import Synchronization
/// Limits on what clients may send; shared by every way in (JSON, forms, WebSocket frames).
public struct ChatLimits: Sendable {
    /// Characters (Unicode scalars, as JSON Schema counts them) in one message.
    public var maxContentLength = 10_000
    public var maxTitleLength = 200
    public var maxParticipants = 500
    public var maxClientMessageIdLength = 128
    public var defaultPageSize = 50
    public var maxPageSize = 200
    public var files = FileRules.Limits()
    /// The most an upload request may carry: every file at its limit, and the fields.
    public var maxUploadBytes: Int { files.maxFilesPerMessage * files.maxFileBytes + 256 * 1024 }

    public init() {}
}

/// The chat domain's one way in: validates input, checks the caller's tenant and participation through the
/// store, and routes every durable change through the commit queue so that events follow commits in order.
public struct ChatService: Sendable {
    public let store: any ChatStore
    public let broker: any EventBroker
    public let commits: CommitQueue
    /// The newest durable events, for replays from recent cursors without a database read; only when the store
    /// says this process is the log's one writer.
    public let recent: RecentEvents?
    public let limits: ChatLimits
    /// Told of every message this process stored or found again by its `clientMessageId` (agents answer from here).
    public let sendObservers = SendObservers()
    /// Who is online, from the live connections (of every node, through the cluster bus).
    public let presence: PresenceTracker

    public init(store: any ChatStore, broker: any EventBroker, limits: ChatLimits = ChatLimits()) {
        self.store = store
        self.broker = broker
        let recent = store.eventLogIsLocal ? RecentEvents() : nil
        self.recent = recent
        self.commits = CommitQueue(store: store, broker: broker, recent: recent)
        self.limits = limits
        self.presence = PresenceTracker(store: store, broker: broker)
    }

    /// The status of each of `userIds` (people of the caller's tenant; anyone else reads as offline), at most 500.
    public func presence(_ caller: Principal, userIds: [String]) throws -> [(userId: String, status: PresenceStatus)] {
        guard userIds.count <= 500 else { throw ChatError.badRequest("At most 500 `userIds` at once.", code: "too_many_ids") }
        var seen: Set<String> = []
        return userIds.filter { seen.insert($0).inserted }.map { ($0, presence.status(tenantId: caller.tenantId, userId: $0)) }
    }

    /// Deletes log events older than `cutoff` (retention); their cursors then get `resync_required`.
    public func pruneEvents(createdBefore cutoff: Timestamp) async throws -> Int {
        let pruned = try await store.pruneEvents(createdBefore: cutoff)
        recent?.discard(through: pruned.prunedThrough)
        return pruned.count
    }

    /// A cursor at the caller's current position in the log: resuming from it misses nothing committed later. (The
    /// ring's newest id may trail the database by a batch being published: an older cursor is safe.)
    public func currentCursor(_ caller: Principal) async throws -> Int64 {
        if let latest = recent?.latest { return latest }
        return try await store.eventLogBounds(tenantId: caller.tenantId).latest
    }

    // MARK: Reads

    /// A page of the caller's tenant's directory: everyone, or those whose username, display name or a word of it
    /// starts with `query` (case and accents ignored). `limit` defaults to 100 and is capped at 500.
    public func directory(_ caller: Principal, query: String?, cursor: String?, limit: Int?) async throws -> UserPage {
        let pageSize = try listPageSize(limit)
        var after: String? = nil
        if let cursor {
            guard let username = Directory.username(fromCursor: cursor) else {
                throw ChatError.badRequest("The cursor is not one this server issued.", code: "invalid_cursor")
            }
            after = username
        }
        if let query, InputRules.hasControlCharacters(query) {
            throw ChatError.badRequest("`q` may not contain control characters.", code: "invalid_query")
        }
        var prefix = query.map { Directory.fold($0.trimmingWhitespace()) }
        if let folded = prefix, folded.unicodeScalars.count > Directory.maxQueryLength {
            prefix = String(String.UnicodeScalarView(folded.unicodeScalars.prefix(Directory.maxQueryLength)))
        }
        if prefix?.isEmpty == true { prefix = nil }
        let users = try await store.directory(tenantId: caller.tenantId, prefix: prefix, afterUsername: after, limit: pageSize + 1)
        let page = Array(users.prefix(pageSize))
        return UserPage(users: page, nextCursor: users.count > pageSize ? page.last.map { Directory.cursor(after: $0.username) } : nil)
    }

    public func me(_ caller: Principal) async throws -> (User, Tenant) {
        guard let user = try await store.user(tenantId: caller.tenantId, id: caller.userId),
              let tenant = try await store.tenant(id: caller.tenantId)
        else { throw ChatError.unauthenticated }
        return (user, tenant)
    }

    /// A page of the caller's conversations, most recent activity first; `limit` defaults to 100, capped at 500.
    public func conversations(_ caller: Principal, cursor: String? = nil, limit: Int? = nil) async throws -> ConversationPage {
        let pageSize = try listPageSize(limit)
        let after = try listCursor(cursor)
        let found = try await store.conversations(tenantId: caller.tenantId, viewerId: caller.userId, after: after, limit: pageSize + 1)
        let page = Array(found.prefix(pageSize))
        let next = found.count > pageSize ? page.last.map { ListCursor(time: $0.updatedAt.milliseconds, id: $0.id).text } : nil
        return ConversationPage(conversations: page, nextCursor: next)
    }

    /// A page of a conversation's participants in the order they joined; 404 unless the caller participates.
    public func members(_ caller: Principal, conversationId: String, cursor: String?, limit: Int?) async throws -> UserPage {
        guard Identifier.isPlausible(conversationId) else { throw ChatError.notFound("conversation") }
        let pageSize = try listPageSize(limit)
        let after = try listCursor(cursor)
        guard let found = try await store.members(
            tenantId: caller.tenantId, conversationId: conversationId, viewerId: caller.userId, after: after, limit: pageSize + 1)
        else { throw ChatError.notFound("conversation") }
        let page = Array(found.prefix(pageSize))
        let next = found.count > pageSize ? page.last.map { ListCursor(time: $0.joinedAt, id: $0.user.id).text } : nil
        return UserPage(users: page.map(\.user), nextCursor: next)
    }

    /// A conversation or member listing's cursor; 400 `invalid_cursor` when it is not of the published form.
    func listCursor(_ text: String?) throws -> ListCursor? {
        guard let text else { return nil }
        guard let cursor = ListCursor(text) else {
            throw ChatError.badRequest("The cursor is not one this server issued.", code: "invalid_cursor")
        }
        return cursor
    }

    /// The page size of the directory, conversation and member listings: 100 by default, at most 500.
    func listPageSize(_ limit: Int?) throws -> Int {
        let limit = limit ?? Directory.defaultLimit
        guard limit >= 1 else { throw ChatError.badRequest("`limit` must be at least 1.", code: "invalid_limit") }
        return min(limit, Directory.maxLimit)
    }

    /// Throws `not_found` unless the caller participates in the conversation (without loading it).
    public func requireParticipant(_ caller: Principal, conversationId: String) async throws {
        guard Identifier.isPlausible(conversationId),
              try await store.isParticipant(tenantId: caller.tenantId, conversationId: conversationId, userId: caller.userId)
        else { throw ChatError.notFound("conversation") }
    }

    /// The newest top-level message of each of the caller's conversations (for list previews).
    public func lastMessages(_ caller: Principal, conversationIds: [String]) async throws -> [String: Message] {
        try await store.lastMessages(tenantId: caller.tenantId, viewerId: caller.userId, conversationIds: conversationIds)
    }

    public func conversation(_ caller: Principal, id: String) async throws -> Conversation {
        guard Identifier.isPlausible(id),
              let conversation = try await store.conversation(tenantId: caller.tenantId, id: id, viewerId: caller.userId)
        else { throw ChatError.notFound("conversation") }
        return conversation
    }

    /// A page of top-level messages. `before` is a cursor from an earlier page's `nextCursor`.
    public func messages(_ caller: Principal, conversationId: String, before: String?, limit: Int?) async throws -> MessagePage {
        let pageSize = try pageSize(limit)
        var beforeSeq: Int64? = nil
        if let before {
            guard let seq = EventCursor.parse(before) else {
                throw ChatError.badRequest("`before` is not a cursor this server issued.", code: "invalid_cursor")
            }
            beforeSeq = seq
        }
        guard Identifier.isPlausible(conversationId),
              let page = try await store.messages(
                tenantId: caller.tenantId, conversationId: conversationId, viewerId: caller.userId, beforeSeq: beforeSeq, limit: pageSize)
        else { throw ChatError.notFound("conversation") }
        return page
    }

    public func thread(_ caller: Principal, messageId: String) async throws -> Thread {
        guard Identifier.isPlausible(messageId),
              let thread = try await store.thread(tenantId: caller.tenantId, messageId: messageId, viewerId: caller.userId)
        else { throw ChatError.notFound("message") }
        return thread
    }

    /// Durable events after `cursor` that the caller may see, oldest first.
    public func events(_ caller: Principal, after cursor: Int64, conversationId: String?, limit: Int) async throws -> [ChatEvent] {
        try await store.events(tenantId: caller.tenantId, viewerId: caller.userId, after: cursor, conversationId: conversationId, limit: limit)
    }

    // MARK: Writes

    public func startConversation(_ caller: Principal, title: String?, participantIds: [String]) async throws -> Conversation {
        guard !InputRules.length(title ?? "", exceeds: limits.maxTitleLength) else {
            throw ChatError(.badRequest, "title_too_long", "A title is limited to \(limits.maxTitleLength) characters.")
        }
        guard participantIds.count <= limits.maxParticipants else {
            throw ChatError(.badRequest, "too_many_participants", "At most \(limits.maxParticipants) participants.")
        }
        var ids = [caller.userId]
        for id in participantIds where !ids.contains(id) {
            guard Identifier.isPlausible(id) else { throw ChatError.notFound("participant") }
            ids.append(id)
        }
        let applied = try await commits.submit(.startConversation(
            tenantId: caller.tenantId, creatorId: caller.userId, title: (title ?? "").trimmingWhitespace(), participantIds: ids))
        guard case .conversation(let conversation) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        return conversation
    }

    /// Sends a message (or, with `threadParentId`, a thread reply). Returns the message and whether it is new.
    public func send(
        _ caller: Principal, conversationId: String?, content: String, threadParentId: String?, clientMessageId: String?,
        files: [NewFile] = []
    ) async throws -> (Message, created: Bool) {
        let sent = try await sendEncoded(
            caller, conversationId: conversationId, content: content, threadParentId: threadParentId, clientMessageId: clientMessageId,
            files: files)
        return (sent.message, sent.created)
    }

    /// `send`, also returning the message's JSON as its `new_message` event carries it (nil for a resend, which
    /// appends no event): a WebSocket ack reuses those bytes instead of encoding the message a second time.
    public func sendEncoded(
        _ caller: Principal, conversationId: String?, content: String, threadParentId: String?, clientMessageId: String?,
        files: [NewFile] = []
    ) async throws -> (message: Message, created: Bool, json: [UInt8]?) {
        guard files.count <= limits.files.maxFilesPerMessage else {
            throw ChatError.badRequest("At most \(limits.files.maxFilesPerMessage) files per message.", code: "too_many_files")
        }
        // A message of files alone says which files.
        let content = files.isEmpty || !InputRules.isBlank(content) ? content : files.map(\.name).joined(separator: ", ")
        try validate(content: content)
        try validate(clientMessageId: clientMessageId)
        if let conversationId, !Identifier.isPlausible(conversationId) { throw ChatError.notFound("conversation") }
        if let threadParentId, !Identifier.isPlausible(threadParentId) { throw ChatError.notFound("message") }
        let applied = try await commits.submit(.sendMessage(NewMessage(
            tenantId: caller.tenantId, senderId: caller.userId, conversationId: conversationId,
            threadParentId: threadParentId, content: content, clientMessageId: clientMessageId, files: files)))
        guard case .message(let message, let created) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        sendObservers.notify(message)
        return (message, created, applied.events.first { $0.type == .newMessage }?.data)
    }

    public func setClosed(_ caller: Principal, conversationId: String, closed: Bool) async throws -> Conversation {
        guard Identifier.isPlausible(conversationId) else { throw ChatError.notFound("conversation") }
        let applied = try await commits.submit(
            .setClosed(tenantId: caller.tenantId, userId: caller.userId, conversationId: conversationId, closed: closed))
        guard case .conversation(let conversation) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        return conversation
    }

    /// Replaces the caller's own message's content; the same content again changes nothing (no event).
    public func edit(_ caller: Principal, messageId: String, content: String) async throws -> Message {
        try validate(content: content)
        guard Identifier.isPlausible(messageId) else { throw ChatError.notFound("message") }
        let applied = try await commits.submit(.editMessage(tenantId: caller.tenantId, userId: caller.userId, messageId: messageId, content: content))
        guard case .changed(let message, _) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        return message
    }

    /// Turns the caller's own message into a tombstone; deleting it again changes nothing.
    public func delete(_ caller: Principal, messageId: String) async throws -> Message {
        guard Identifier.isPlausible(messageId) else { throw ChatError.notFound("message") }
        let applied = try await commits.submit(.deleteMessage(tenantId: caller.tenantId, userId: caller.userId, messageId: messageId))
        guard case .changed(let message, let changed) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        // The ring of recent events must forget the content as the log did.
        if changed { recent?.rewrite(message) }
        return message
    }

    /// Adds (`on`) or takes back the caller's reaction; doing it twice is the same as once. `emoji` is a code of
    /// `Reactions.all` or its emoji.
    public func react(_ caller: Principal, messageId: String, emoji: String, on: Bool) async throws -> Message {
        guard let code = Reactions.code(emoji) else {
            throw ChatError.badRequest("Reactions are one of: \(Reactions.all.map(\.code).joined(separator: ", ")).", code: "invalid_emoji")
        }
        guard Identifier.isPlausible(messageId) else { throw ChatError.notFound("message") }
        let applied = try await commits.submit(.react(tenantId: caller.tenantId, userId: caller.userId, messageId: messageId, code: code, on: on))
        guard case .changed(let message, _) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        return message
    }

    /// Renames the conversation (a blank title clears it); the same title again changes nothing.
    public func rename(_ caller: Principal, conversationId: String, title: String) async throws -> Conversation {
        guard !InputRules.length(title, exceeds: limits.maxTitleLength) else {
            throw ChatError(.badRequest, "title_too_long", "A title is limited to \(limits.maxTitleLength) characters.")
        }
        return try await changeMembers(caller, conversationId: conversationId, .rename(title.trimmingWhitespace()))
    }

    /// Adds people of the caller's tenant; those already in are skipped, and adding nobody new changes nothing.
    public func addMembers(_ caller: Principal, conversationId: String, userIds: [String]) async throws -> Conversation {
        guard !userIds.isEmpty else { throw ChatError.badRequest("`userIds` must name at least one person.", code: "missing_field") }
        guard userIds.count <= limits.maxParticipants else {
            throw ChatError(.badRequest, "too_many_participants", "At most \(limits.maxParticipants) people at once.")
        }
        var ids: [String] = []
        for id in userIds where !ids.contains(id) {
            guard Identifier.isPlausible(id) else { throw ChatError.notFound("participant") }
            ids.append(id)
        }
        return try await changeMembers(caller, conversationId: conversationId, .add(ids))
    }

    /// Removes someone (the creator only) or, for the caller themself, leaves. Their streams stop delivering the
    /// conversation at once, on every node: the removal event is the last of it they receive.
    public func removeMember(_ caller: Principal, conversationId: String, userId: String) async throws {
        guard Identifier.isPlausible(userId) else { throw ChatError.notFound("participant") }
        _ = try await changeMembers(caller, conversationId: conversationId, .remove(userId))
    }

    private func changeMembers(_ caller: Principal, conversationId: String, _ change: MembershipChange) async throws -> Conversation {
        guard Identifier.isPlausible(conversationId) else { throw ChatError.notFound("conversation") }
        let applied = try await commits.submit(
            .changeMembers(tenantId: caller.tenantId, actorId: caller.userId, conversationId: conversationId, change: change))
        guard case .conversation(let conversation) = applied.outcome else { throw UnexpectedOutcome(applied.outcome) }
        return conversation
    }

    /// A file of a message the caller can see; 404 otherwise (also once the message is deleted).
    public func file(_ caller: Principal, id: String) async throws -> StoredFile {
        guard Identifier.isPlausible(id), let file = try await store.file(tenantId: caller.tenantId, id: id, viewerId: caller.userId)
        else { throw ChatError.notFound("file") }
        return file
    }

    public func markRead(_ caller: Principal, conversationId: String, messageId: String) async throws {
        guard Identifier.isPlausible(conversationId) else { throw ChatError.notFound("conversation") }
        guard Identifier.isPlausible(messageId) else { throw ChatError.notFound("message") }
        _ = try await commits.submit(
            .markRead(tenantId: caller.tenantId, userId: caller.userId, conversationId: conversationId, messageId: messageId))
    }

    // MARK: Checks

    public func validate(content: String) throws {
        if InputRules.isBlank(content) { throw ChatError.emptyContent }
        if InputRules.length(content, exceeds: limits.maxContentLength) { throw ChatError.contentTooLong(limit: limits.maxContentLength) }
    }

    func validate(clientMessageId: String?) throws {
        guard let clientMessageId else { return }
        guard !clientMessageId.isEmpty, !InputRules.length(clientMessageId, exceeds: limits.maxClientMessageIdLength),
              !InputRules.hasControlCharacters(clientMessageId)
        else {
            throw ChatError.badRequest(
                "clientMessageId must be 1 to \(limits.maxClientMessageIdLength) printable characters.", code: "invalid_client_message_id")
        }
    }

    func pageSize(_ limit: Int?) throws -> Int {
        guard let limit else { return limits.defaultPageSize }
        guard limit >= 1 else { throw ChatError.badRequest("`limit` must be at least 1.", code: "invalid_limit") }
        return min(limit, limits.maxPageSize)
    }
}

extension String {
    /// The string without leading and trailing white space (Unicode-aware, no Foundation needed).
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[start...end])
    }
}

extension ChatService {
    /// Publishes an ephemeral typing event to the conversation's room (never stored, never replayed).
    public func typing(_ caller: Principal, conversationId: String) async throws {
        // Typing is frequent: one indexed participation check and the user row, not the whole conversation.
        try await requireParticipant(caller, conversationId: conversationId)
        guard let me = try await store.user(tenantId: caller.tenantId, id: caller.userId) else { throw ChatError.unauthenticated }
        let data = EventPayload.typing(userId: me.id, displayName: me.displayName)
        await broker.publishEphemeral(ChatEvent(type: .typing, eventId: nil, tenantId: caller.tenantId, conversationId: conversationId, data: data))
    }
}

/// Whoever wants to hear of committed messages. Called on the sender's path: an observer only looks and hands work
/// elsewhere.
public final class SendObservers: Sendable {
    private let observers = Mutex<[@Sendable (Message) -> Void]>([])

    public init() {}

    public func add(_ observer: @escaping @Sendable (Message) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func notify(_ message: Message) {
        let current = observers.withLock { $0 }
        for observer in current { observer(message) }
    }
}
