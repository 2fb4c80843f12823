import ChatCore
import Foundation

/// One message as the MessageBubble partial shows it.
struct MessageView {
    let id: String
    let conversationId: String
    let seq: Int64
    let senderId: String
    let senderName: String
    let senderIsBot: Bool
    let initials: String
    let content: String
    let createdISO: String
    let createdExact: String
    let createdRelative: String
    let replyCount: Int
    let hasReplies: Bool
    let replyLabel: String
    let replyCountText: String
    let threadLink: String?
    let mine: Bool
    let anchor: Bool
    let deleted: Bool
    /// When it was last edited (nil: never, or deleted).
    let editedISO: String?
    let editedExact: String?
    /// The viewer's own message, not deleted: it shows Edit and Delete.
    let canChange: Bool
    /// Where the edit and delete forms go back to.
    let editLink: String
    /// The reactions as toggle buttons (the viewer's own are pressed).
    let reactionChips: [ReactionChip]
    let reactLink: String
    /// The content as text and `@username` segments (rendered as text either way).
    let segments: [Segment]
    /// The viewer is among the people it mentions.
    let mentionsMe: Bool
    let attachments: [AttachmentView]
    let hasAttachments: Bool

    struct AttachmentView {
        let name: String
        let url: String
        let isImage: Bool
        let sizeText: String
    }

    struct Segment {
        let text: String
        let mention: Bool
        let me: Bool
    }

    struct ReactionChip {
        let code: String
        let emoji: String
        let name: String
        let count: Int
        let mine: Bool
        let pressed: String
    }

    /// `usernames`: id → username of (at least) the people the message mentions.
    init(_ message: Message, viewerId: String, now: Timestamp, threadLinks: Bool, anchor: Bool = true, usernames: [String: String] = [:]) {
        id = message.id
        conversationId = message.conversationId
        seq = message.seq
        senderId = message.senderId
        senderName = message.sender.displayName
        senderIsBot = message.sender.isBot
        initials = Self.initials(message.sender.displayName)
        content = message.content
        createdISO = message.createdAt.description
        createdExact = TimeText.exact(message.createdAt)
        createdRelative = TimeText.relative(message.createdAt, now: now)
        replyCount = message.replyCount
        hasReplies = message.replyCount > 0
        replyLabel = Self.replyLabel(message.replyCount)
        replyCountText = Self.replyCountText(message.replyCount)
        threadLink = threadLinks && message.threadParentId == nil ? "/chat/\(message.conversationId)/thread/\(message.id)" : nil
        mine = message.senderId == viewerId
        self.anchor = anchor
        deleted = message.isDeleted
        editedISO = message.isDeleted ? nil : message.editedAt?.description
        editedExact = message.isDeleted ? nil : message.editedAt.map(TimeText.exact)
        canChange = mine && !message.isDeleted
        editLink = "/chat/\(message.conversationId)/messages/\(message.id)/edit"
        reactionChips = message.reactions.map { reaction in
            let mine = reaction.userIds.contains(viewerId)
            return ReactionChip(
                code: reaction.emoji, emoji: Reactions.emoji(reaction.emoji),
                name: Reactions.all.first { $0.code == reaction.emoji }?.name ?? reaction.emoji, count: reaction.count, mine: mine,
                pressed: mine ? "true" : "false")
        }
        reactLink = "/chat/\(message.conversationId)/messages/\(message.id)/react"
        mentionsMe = message.mentions.contains(viewerId)
        attachments = message.attachments.map {
            AttachmentView(name: $0.name, url: "/api/chat/files/\($0.id)", isImage: $0.isImage, sizeText: Self.sizeText($0.size))
        }
        hasAttachments = !attachments.isEmpty
        let mine = usernames[viewerId]?.lowercased()
        let named = Set(message.mentions.compactMap { usernames[$0]?.lowercased() })
        segments = Mentions.segments(message.content, usernames: named).map { part in
            Segment(text: part.text, mention: part.mention, me: part.mention && part.text.dropFirst().lowercased() == mine)
        }
    }

    static func sizeText(_ bytes: Int) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        if bytes < 1024 * 1024 { return "\((bytes + 512) / 1024) KB" }
        return String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }

    /// The word after a bubble's reply count: at zero the link is the action itself, "Reply".
    static func replyLabel(_ count: Int) -> String {
        count == 0 ? "Reply" : (count == 1 ? "reply" : "replies")
    }

    /// The thread panel's count (Public/app.js words it the same way when it changes live).
    static func replyCountText(_ count: Int) -> String {
        count == 0 ? "No replies yet" : (count == 1 ? "1 reply" : "\(count) replies")
    }

    static func initials(_ name: String) -> String {
        let parts = name.split(separator: " ").prefix(2)
        return parts.compactMap { $0.first.map { String($0).uppercased() } }.joined()
    }
}

/// One row of the ConversationList.
struct ConversationItemView {
    let id: String
    let displayTitle: String
    let participantNames: String
    let activityISO: String
    let activityExact: String
    let activityRelative: String
    let lastMessagePreview: String
    let lastMessageId: String?
    let unreadCount: Int
    let hasUnread: Bool
    let mentionCount: Int
    let hasMentions: Bool
    let closed: Bool
    let active: Bool
    /// A conversation of two: the other person, whose presence the list shows.
    let presence: PresenceView?

    init(
        _ conversation: Conversation, lastMessage: Message?, viewerId: String, activeId: String?, now: Timestamp,
        presence status: (String) -> PresenceStatus = { _ in .offline }
    ) {
        id = conversation.id
        displayTitle = ConversationText.title(conversation, viewerId: viewerId)
        participantNames = ConversationText.people(conversation)
        let activity = conversation.lastMessageAt ?? conversation.updatedAt
        activityISO = activity.description
        activityExact = TimeText.exact(activity)
        activityRelative = TimeText.relative(activity, now: now)
        if let lastMessage {
            let text = lastMessage.isDeleted
                ? "message deleted"
                : lastMessage.content.count > 80 ? String(lastMessage.content.prefix(80)) + "…" : lastMessage.content
            lastMessagePreview = "\(lastMessage.sender.displayName): \(text)"
        } else {
            lastMessagePreview = "No messages yet"
        }
        lastMessageId = lastMessage?.id
        unreadCount = conversation.unreadCount
        hasUnread = conversation.unreadCount > 0
        mentionCount = conversation.mentionCount
        hasMentions = conversation.mentionCount > 0
        closed = conversation.isClosed
        active = conversation.id == activeId
        if conversation.participantCount == 2, let other = conversation.participants.first(where: { $0.id != viewerId }) {
            presence = PresenceView(other, status(other.id))
        } else {
            presence = nil
        }
    }
}

/// Someone's presence as a dot with its words (the dot is never the only sign: the label says it).
struct PresenceView {
    let userId: String
    let status: String
    let label: String

    init(_ user: User, _ status: PresenceStatus) {
        userId = user.id
        self.status = status.rawValue
        label = "\(user.displayName) is \(status.rawValue)"
    }

    /// The chat header's line: the other person's status in a conversation of two, how many others are online in
    /// a bigger one (of the listed participants).
    static func headerLine(_ conversation: Conversation, viewerId: String, status: (String) -> PresenceStatus) -> String {
        let others = conversation.participants.filter { $0.id != viewerId }
        if conversation.participantCount == 2, let other = others.first { return "\(other.displayName) is \(status(other.id).rawValue)" }
        let online = others.filter { status($0.id) == .online }.count
        return online == 0 ? "Nobody else online" : "\(online) online"
    }
}

enum ConversationText {
    /// The title, or the other participants' names for an untitled conversation.
    static func title(_ conversation: Conversation, viewerId: String) -> String {
        if !conversation.title.isEmpty { return conversation.title }
        let others = conversation.participants.filter { $0.id != viewerId }.map(\.displayName)
        return others.isEmpty ? "Just you" : others.joined(separator: ", ")
    }

    /// Who is in it: every name up to three, else "Alice, Bob and 4,998 others".
    static func people(_ conversation: Conversation) -> String {
        let names = conversation.participants.map(\.displayName)
        guard conversation.participantCount > 3, names.count >= 2 else { return names.joined(separator: ", ") }
        let others = conversation.participantCount - 2
        return "\(names[0]), \(names[1]) and \(others.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))) others"
    }
}

/// Readable timestamps: relative on the page, exact on hover.
enum TimeText {
    static func relative(_ time: Timestamp, now: Timestamp) -> String {
        let seconds = max(0, (now.milliseconds - time.milliseconds) / 1000)
        switch seconds {
        case ..<45: return "just now"
        case ..<3600: return "\(max(1, seconds / 60)) min ago"
        case ..<86_400: return "\(seconds / 3600) h ago"
        case ..<(7 * 86_400): return "\(seconds / 86_400) d ago"
        default: return String(time.description.prefix(10))
        }
    }

    static func exact(_ time: Timestamp) -> String {
        let text = time.description
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(8)) + " UTC"
    }
}

/// A conversation summary as the summary page (and the ChatWindow's summary panel, in Public/app.js) shows it.
struct SummaryView {
    struct Line {
        let seq: Int64
        let who: String
        let excerpt: String
        let link: String
    }
    struct Person {
        let displayName: String
        let countText: String
    }

    /// The model's prose, paragraph by paragraph (method llm); for the extractive digest its first line.
    let paragraphs: [String]
    let highlights: [Line]
    let hasHighlights: Bool
    let questions: [Line]
    let hasQuestions: Bool
    let people: [Person]
    let methodText: String
    let rangeText: String
    let generatedISO: String
    let generatedExact: String

    init(_ summary: ConversationSummary) {
        let names = Dictionary(summary.participants.map { ($0.userId, $0.displayName) }, uniquingKeysWith: { first, _ in first })
        let link = { (id: String) in "/chat/\(summary.conversationId)/thread/\(id)" }
        switch summary.method {
        case .extractive:
            paragraphs = summary.text.split(separator: "\n").prefix(1).map(String.init)
            methodText = "Extractive digest: chosen from the messages, no model"
        case .llm:
            paragraphs = summary.text.components(separatedBy: "\n\n").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
            methodText = "Written by \(summary.model ?? "the workspace's model")"
        }
        highlights = summary.highlights.map { Line(seq: $0.seq, who: names[$0.senderId] ?? "Someone", excerpt: $0.excerpt, link: link($0.messageId)) }
        hasHighlights = !highlights.isEmpty
        questions = summary.openQuestions.map { Line(seq: $0.seq, who: "", excerpt: $0.excerpt, link: link($0.messageId)) }
        hasQuestions = !questions.isEmpty
        people = summary.participants.map { Person(displayName: $0.displayName, countText: $0.messageCount == 1 ? "1 message" : "\($0.messageCount) messages") }
        rangeText = summary.messageCount == 0
            ? "No messages yet"
            : "Messages #\(summary.fromSeq) to #\(summary.throughSeq) (\(summary.messageCount) in all)\(summary.cached ? ", unchanged since it was made" : "")"
        generatedISO = summary.generatedAt.description
        generatedExact = TimeText.exact(summary.generatedAt)
    }
}
