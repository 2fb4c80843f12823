import ChatCore
import Synchronization

/// Who is in each conversation. Membership rarely changes; a commit that changes it drops the conversation's entry
/// (`SQLiteChatStore.apply`) before anyone is told. A reader notes the generation before it reads the database and
/// may store what it read only if no membership change was dropped since, so a read from a snapshot older than a
/// change never comes back after it. The map is bounded and simply emptied when full.
final class ParticipantCache: Sendable {
    private struct Entry {
        let tenantId: String
        let userIds: Set<String>
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maxConversations: Int

    init(maxConversations: Int = 50_000) {
        self.maxConversations = maxConversations
    }

    var generation: UInt64 { state.withLock { $0.generation } }

    /// true or false when the conversation is known, nil when it has to be read.
    func contains(tenantId: String, conversationId: String, userId: String) -> Bool? {
        state.withLock { s in
            guard let entry = s.entries[conversationId] else { return nil }
            return entry.tenantId == tenantId && entry.userIds.contains(userId)
        }
    }

    func put(conversationId: String, tenantId: String, userIds: Set<String>, readAt generation: UInt64) {
        guard !userIds.isEmpty else { return }  // unknown conversation: nothing to remember
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.entries.count >= maxConversations { s.entries.removeAll(keepingCapacity: true) }
            s.entries[conversationId] = Entry(tenantId: tenantId, userIds: userIds)
        }
    }

    func invalidate(_ conversationIds: some Sequence<String>) {
        state.withLock { s in
            s.generation &+= 1
            for id in conversationIds { s.entries[id] = nil }
        }
    }
}

/// Recently read history pages, dropped when their conversation changes.
///
/// Every commit that touches a conversation stamps it with a new version before the writers are resumed, so a
/// client that was told its message is saved never reads a page without it. A reader notes the version before it
/// reads the database and may store its page only if the version is still the same, so a page read from a snapshot
/// older than a commit is never stored after that commit's invalidation.
final class HistoryPageCache: Sendable {
    struct Key: Hashable, Sendable {
        let conversationId: String
        let beforeSeq: Int64?
        let limit: Int
    }

    private struct Entry {
        let tenantId: String
        let version: UInt64
        let page: MessagePage
    }

    private struct State {
        var clock: UInt64 = 1
        /// Version of conversations changed since `floor` was set; any other conversation is at `floor`.
        var versions: [String: UInt64] = [:]
        var floor: UInt64 = 1
        var pages: [Key: Entry] = [:]
    }

    private let state = Mutex(State())
    private let maxPages: Int
    private let maxTrackedConversations: Int

    init(maxPages: Int = 20_000, maxTrackedConversations: Int = 100_000) {
        self.maxPages = maxPages
        self.maxTrackedConversations = maxTrackedConversations
    }

    func version(of conversationId: String) -> UInt64 {
        state.withLock { $0.versions[conversationId] ?? $0.floor }
    }

    func get(_ key: Key, tenantId: String) -> MessagePage? {
        state.withLock { s in
            guard let entry = s.pages[key], entry.tenantId == tenantId,
                  entry.version == (s.versions[key.conversationId] ?? s.floor)
            else { return nil }
            return entry.page
        }
    }

    func put(_ key: Key, tenantId: String, version: UInt64, page: MessagePage) {
        state.withLock { s in
            guard version == (s.versions[key.conversationId] ?? s.floor) else { return }
            if s.pages.count >= maxPages { s.pages.removeAll(keepingCapacity: true) }
            s.pages[key] = Entry(tenantId: tenantId, version: version, page: page)
        }
    }

    /// Called after a commit, before its writers resume.
    func invalidate<S: Sequence>(_ conversationIds: S) where S.Element == String {
        state.withLock { s in
            s.clock &+= 1
            if s.versions.count >= maxTrackedConversations {
                // Forget per-conversation versions by moving every conversation to a new version at once; pages
                // and in-flight reads from before are then all refused.
                s.versions.removeAll(keepingCapacity: true)
                s.pages.removeAll(keepingCapacity: true)
                s.floor = s.clock
                return
            }
            for id in conversationIds { s.versions[id] = s.clock }
        }
    }
}

/// People as the writer puts them on their messages. A user row never changes once it exists, so an entry is right
/// for as long as the process lives (a send looked its sender up in every transaction: a sixth of the writer's time
/// when every send in a batch has a different sender). Bounded, and simply emptied when full.
final class UserCache: Sendable {
    private struct Key: Hashable {
        let tenantId: String
        let userId: String
    }

    private let users = Mutex([Key: User]())
    private let maxUsers: Int

    init(maxUsers: Int = 100_000) {
        self.maxUsers = maxUsers
    }

    /// The cached user, or what `load` finds (remembered when found; nil is not remembered).
    func user(tenantId: String, id: String, orLoad load: () throws -> User?) rethrows -> User? {
        let key = Key(tenantId: tenantId, userId: id)
        if let user = users.withLock({ $0[key] }) { return user }
        guard let loaded = try load() else { return nil }
        users.withLock { users in
            if users.count >= maxUsers { users.removeAll(keepingCapacity: true) }
            users[key] = loaded
        }
        return loaded
    }
}
