#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A change to who is in a conversation, or to its name.
public enum MembershipChange: Sendable, Equatable {
    case rename(String)
    /// Adds people of the tenant; those already in are skipped.
    case add([String])
    /// Removes one participant; removing yourself is leaving.
    case remove(String)
}

/// The one rule for membership changes, kept by every store inside its transaction.
///
/// Anyone in the conversation may rename it and add people (as in a Slack channel); only its creator may remove
/// someone else; anyone may leave. A closed conversation keeps its name and people, but anyone may still leave it.
/// Someone added reads the whole history, like a member of a Slack channel; their unread count starts at zero.
public enum Membership {
    /// nil when `actorId` may make `change` in `conversation` (which the store read with the actor as viewer; nil
    /// when the actor is not in it); the refusal otherwise.
    public static func check(_ change: MembershipChange, actorId: String, conversation: Conversation?) -> ChatError? {
        guard let conversation else { return ChatError.notFound("conversation") }
        switch change {
        case .rename, .add:
            if conversation.isClosed { return ChatError.conversationClosed }
        case .remove(let userId):
            if userId != actorId && conversation.createdBy != actorId {
                return ChatError(.forbidden, "not_allowed", "Only the conversation's creator may remove someone else; anyone may leave.")
            }
        }
        return nil
    }

    /// The users a membership event names (`participantIds` of the event): those added or the one removed. Read
    /// from the logged data, so another node relaying the event names the same users.
    public static func namedUsers(type: EventType, data: some Collection<UInt8>) -> [String]? {
        switch type {
        case .participantsAdded:
            return (try? JSONDecoder().decode(Added.self, from: Data(data)))?.userIds
        case .participantRemoved:
            return (try? JSONDecoder().decode(Removed.self, from: Data(data))).map { [$0.userId] }
        default:
            return nil
        }
    }

    private struct Added: Decodable { let userIds: [String] }
    private struct Removed: Decodable { let userId: String }

    /// `{"actorId","conversation","userIds"}`: the conversation as it is after the change.
    public static func addedPayload(conversation: Conversation, userIds: [String], actorId: String) throws -> [UInt8] {
        try JSONText.encode(AddedPayload(actorId: actorId, conversation: conversation, userIds: userIds))
    }

    /// `{"actorId","conversation","userId"}`: the conversation as it is after the removal.
    public static func removedPayload(conversation: Conversation, userId: String, actorId: String) throws -> [UInt8] {
        try JSONText.encode(RemovedPayload(actorId: actorId, conversation: conversation, userId: userId))
    }

    private struct AddedPayload: Encodable {
        let actorId: String
        let conversation: Conversation
        let userIds: [String]
    }

    private struct RemovedPayload: Encodable {
        let actorId: String
        let conversation: Conversation
        let userId: String
    }
}
