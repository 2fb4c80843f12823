/// A durable change, applied by the store inside a batch transaction (group commit).
public enum WriteCommand: Sendable {
    /// Create a conversation; `participantIds` already includes the creator.
    case startConversation(tenantId: String, creatorId: String, title: String, participantIds: [String])
    /// Append a message. `conversationId` is nil for a thread reply addressed only by its parent.
    case sendMessage(NewMessage)
    /// Close (`closed: true`) or reopen a conversation.
    case setClosed(tenantId: String, userId: String, conversationId: String, closed: Bool)
    /// Record a read receipt up to `messageId`.
    case markRead(tenantId: String, userId: String, conversationId: String, messageId: String)
    /// Replace the content of the user's own message (`MessageChange.check` says who may).
    case editMessage(tenantId: String, userId: String, messageId: String, content: String)
    /// Turn the user's own message into a tombstone: its content leaves the message and every logged event of it.
    case deleteMessage(tenantId: String, userId: String, messageId: String)
    /// Add (`on`) or take back the user's reaction `code` (a `Reactions` code) on a message they can see.
    case react(tenantId: String, userId: String, messageId: String, code: String, on: Bool)
    /// Renames the conversation or changes who is in it (`Membership.check` says who may).
    case changeMembers(tenantId: String, actorId: String, conversationId: String, change: MembershipChange)
}

/// The one rule for changing a message, kept by every store inside its transaction.
public enum MessageChange {
    /// What a store stores as a tombstone's content (the schemas require a non-empty one); reads show "".
    public static let tombstoneContent = " "

    /// nil when `userId` may change `message` in a conversation that is `closed` or not; the refusal otherwise.
    /// Someone outside the conversation does not learn it exists (404); a participant may change only their own
    /// messages (403); a tombstone cannot be edited (409), nor can anything in a closed conversation (409) — but
    /// deleting there is allowed, so content can always be taken back.
    public static func check(_ message: Message, userId: String, participates: Bool, closed: Bool, deleting: Bool) -> ChatError? {
        guard participates else { return ChatError.notFound("message") }
        guard message.senderId == userId else {
            return ChatError(.forbidden, "not_your_message", "Only the sender may edit or delete a message.")
        }
        if !deleting {
            if message.isDeleted { return ChatError(.conflict, "message_deleted", "A deleted message cannot be edited.") }
            if closed { return ChatError.conversationClosed }
        }
        return nil
    }

    /// `"id":"<message id>"` as it appears in a logged event's data: what finds the events that carry a message.
    public static func idMarker(_ messageId: String) -> String { #""id":"\#(messageId)""# }
}

/// A validated message to append.
public struct NewMessage: Sendable {
    public var tenantId: String
    public var senderId: String
    public var conversationId: String?
    public var threadParentId: String?
    public var content: String
    public var clientMessageId: String?
    /// Checked files to attach (`FileRules.accept`), stored in the same transaction.
    public var files: [NewFile]

    public init(
        tenantId: String, senderId: String, conversationId: String?, threadParentId: String?, content: String, clientMessageId: String?,
        files: [NewFile] = []
    ) {
        self.tenantId = tenantId
        self.senderId = senderId
        self.conversationId = conversationId
        self.threadParentId = threadParentId
        self.content = content
        self.clientMessageId = clientMessageId
        self.files = files
    }
}

/// What a command produced.
public enum WriteOutcome: Sendable {
    case conversation(Conversation)
    /// `created` is false when a `clientMessageId` matched an earlier message (an idempotent resend).
    case message(Message, created: Bool)
    /// An edit or delete; `changed` is false when it changed nothing (the same content, or already deleted).
    case changed(Message, changed: Bool)
    case markedRead
}

/// A command's outcome together with the durable events it appended to the log.
public struct AppliedWrite: Sendable {
    public var outcome: WriteOutcome
    public var events: [LoggedEvent]

    public init(outcome: WriteOutcome, events: [LoggedEvent]) {
        self.outcome = outcome
        self.events = events
    }
}

/// Everything the chat needs from a database. Every method is scoped to one tenant; implementations must
/// never return or touch a row of another tenant, and treat a non-participant like a missing conversation.
///
/// The ordering contract every store keeps:
/// - `seq` is assigned at commit from the conversation, 1, 2, 3… with no gap, also when several processes write one
///   conversation at once; a resent `clientMessageId` finds the first message.
/// - Event ids (the public cursors) grow with every durable event of a tenant in commit order, and become visible
///   without gaps: once a reader sees id N of a tenant, every id below N of that tenant is visible to it too, on any
///   process. So `events(after:)` from a cursor never skips an event, whichever process wrote it.
/// - An event is written in the same transaction as the change it describes.
public protocol ChatStore: Sendable {
    /// True when every write to the event log goes through this process's commit queue (an embedded database that
    /// one server process serves). Only then may the process keep an in-memory view of the log's newest events
    /// (`RecentEvents`); a store shared by several nodes must say false.
    var eventLogIsLocal: Bool { get }

    // MARK: Tenants and users
    func createTenant(slug: String, name: String) async throws -> Tenant
    func tenant(id: String) async throws -> Tenant?
    func tenant(slug: String) async throws -> Tenant?
    func createUser(tenantId: String, username: String, displayName: String, passwordHash: String) async throws -> User
    func user(tenantId: String, id: String) async throws -> User?
    /// Users of the tenant in username order (case-insensitive), after `afterUsername` when given, whose username,
    /// display name or a word of it starts with `prefix` (already folded, see `Directory.fold`) when given; at most
    /// `limit`. An index range in every store, whatever the tenant's size.
    func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) async throws -> [User]
    /// The user and stored password hash for a login attempt, or nil.
    func loginRecord(tenantSlug: String, username: String) async throws -> (user: User, passwordHash: String)?
    /// True when the database has no tenant at all (used to seed demo data only once).
    func isEmpty() async throws -> Bool
    /// Runs `body` while no other process sharing the database runs its own (demo seeding when several nodes
    /// start together). A store served by one process may just run it.
    func withSetupLock<T: Sendable>(_ body: () async throws -> T) async throws -> T
    /// True when `error` (thrown by this store) means the database is unreachable or too busy for now: the server
    /// answers 503 with `Retry-After` rather than 500. (A send may be retried safely with its `clientMessageId`.)
    func isUnavailable(_ error: any Error) -> Bool
    /// Throws unless the database answers and its schema is up to date (the server's readiness).
    func checkReady() async throws

    // MARK: Credentials
    func insertCredential(_ credential: Credential) async throws
    /// The live credential with this hash, or nil when unknown or expired at `now`.
    func credential(hash: String, now: Timestamp) async throws -> Credential?
    func deleteCredential(hash: String) async throws
    func deleteExpiredCredentials(now: Timestamp) async throws -> Int

    // MARK: Reads (the viewer must participate)
    /// The viewer's conversations, most recent activity first (`updatedAt`, then `id`, descending), after `cursor`
    /// when given; at most `limit`, each with its first `Conversation.listedParticipants` participants and the count.
    func conversations(tenantId: String, viewerId: String, after cursor: ListCursor?, limit: Int) async throws -> [Conversation]
    /// Participants of a conversation the viewer is in, in the order they joined (`joinedAt`, then user id) after
    /// `cursor`, with when each joined; nil when the viewer does not participate. An index range, whatever the size.
    func members(tenantId: String, conversationId: String, viewerId: String, after cursor: ListCursor?, limit: Int) async throws -> [(user: User, joinedAt: Int64)]?
    func conversation(tenantId: String, id: String, viewerId: String) async throws -> Conversation?
    func messages(tenantId: String, conversationId: String, viewerId: String, beforeSeq: Int64?, limit: Int) async throws -> MessagePage?
    func thread(tenantId: String, messageId: String, viewerId: String) async throws -> Thread?
    /// The newest top-level message of each of the given conversations of the viewer, keyed by conversation id.
    func lastMessages(tenantId: String, viewerId: String, conversationIds: [String]) async throws -> [String: Message]
    /// Whether the user participates in the conversation (a cheap check for realtime subscriptions).
    func isParticipant(tenantId: String, conversationId: String, userId: String) async throws -> Bool
    /// Ids of every conversation the user participates in.
    func conversationIds(tenantId: String, userId: String) async throws -> [String]
    /// Everyone else who shares at least one conversation with the user (who hears of their presence), at most `limit`.
    func contacts(tenantId: String, userId: String, limit: Int) async throws -> [String]

    // MARK: Conversation memory (summaries, agents)
    /// Messages of the conversation, thread replies included, with `seq` above `afterSeq`, oldest first, at most
    /// `limit`. The caller has checked that someone allowed to read them asks.
    func messageRange(tenantId: String, conversationId: String, afterSeq: Int64, limit: Int) async throws -> [Message]
    func memory(tenantId: String, conversationId: String, kind: String) async throws -> ConversationMemory?
    /// Stores `memory` unless the stored one of its kind covers more of the conversation (a slower computation
    /// finishing late never replaces a newer one).
    func saveMemory(_ memory: ConversationMemory) async throws

    // MARK: Search
    /// Messages (not deleted) of conversations `viewerId` takes part in, every one of `terms` (folded words)
    /// matching the start of a word, best first; `offset` and `limit` page them. Each with an excerpt whose matches
    /// are marked by `Search.matchStart`/`matchEnd`.
    func search(
        tenantId: String, viewerId: String, terms: [String], conversationId: String?, senderId: String?, offset: Int, limit: Int
    ) async throws -> [SearchHit]

    // MARK: Agents
    /// Creates a bot user (who cannot sign in) and its agent in one transaction; 409 `user_exists` when the
    /// username is taken in the tenant.
    func createAgent(tenantId: String, username: String, displayName: String, settings: Agent.Settings) async throws -> Agent
    /// The tenant's agents, by username.
    func agents(tenantId: String) async throws -> [Agent]
    /// The agents taking part in a conversation.
    func agents(tenantId: String, conversationId: String) async throws -> [Agent]
    /// Replaces an agent's settings; nil when the tenant has no such agent.
    func updateAgent(tenantId: String, userId: String, settings: Agent.Settings) async throws -> Agent?
    /// Removes the agent (its bot user stays, as the sender of what it said); false when there was none.
    func deleteAgent(tenantId: String, userId: String) async throws -> Bool
    /// Adds `tokens` to the agent's use on `day` (`YYYY-MM-DD`, UTC) and counts one request, only if the day's
    /// total stays within `budget`; false (and nothing changes) otherwise. Atomic across nodes.
    func reserveTokens(tenantId: String, agentId: String, day: String, tokens: Int, budget: Int) async throws -> Bool
    /// Corrects a reservation by `delta` tokens once the real use is known (negative when less was used).
    func settleTokens(tenantId: String, agentId: String, day: String, delta: Int) async throws
    /// Tokens used (or reserved) on `day`.
    func tokensUsed(tenantId: String, agentId: String, day: String) async throws -> Int
    /// A file of a message in a conversation the viewer takes part in (nil otherwise, and once the message is deleted).
    func file(tenantId: String, id: String, viewerId: String) async throws -> StoredFile?
    /// The message a sender stored under `clientMessageId` in the conversation, if any.
    func message(tenantId: String, conversationId: String, senderId: String, clientMessageId: String) async throws -> Message?

    // MARK: Writes
    /// Applies the commands in one transaction, in order. A command that fails a check yields its error and
    /// changes nothing; the others still apply. Throws only when the transaction itself fails (nothing committed).
    func apply(_ commands: [WriteCommand]) async throws -> [Result<AppliedWrite, ChatError>]

    // MARK: Event log
    /// Durable events after `after` in the conversations the viewer participates in (optionally one), oldest first.
    func events(tenantId: String, viewerId: String, after: Int64, conversationId: String?, limit: Int) async throws -> [ChatEvent]
    /// The tenant's newest event id (0 when its log is empty) and the highest id ever pruned (0 when none). A store
    /// whose ids are global (SQLite) may answer with the global bounds: they bound every tenant's.
    func eventLogBounds(tenantId: String) async throws -> (latest: Int64, pruned: Int64)
    /// Deletes events created before `cutoff`; returns how many, and the highest id pruned so far.
    func pruneEvents(createdBefore cutoff: Timestamp) async throws -> (count: Int, prunedThrough: Int64)
}

extension ChatStore {
    public var eventLogIsLocal: Bool { false }

    public func withSetupLock<T: Sendable>(_ body: () async throws -> T) async throws -> T { try await body() }

    public func isUnavailable(_ error: any Error) -> Bool { false }
}
