import Foundation

/// The summary that needs no model: the conversation's most central messages (TextRank over the messages, each
/// message's words enriched by its thread's replies, boosted by how many replies it drew), the questions nobody
/// answered, who said how much and over what time. Deterministic: the same messages give the same digest.
///
/// It rolls: `State` carries the best candidates, the open questions and the counts, so an update reads only the
/// messages after `throughSeq`. While a conversation has no more top-level messages than `carried`, rolling and
/// computing from scratch give the same digest.
public enum ExtractiveDigest {
    /// Highlights shown.
    public static let highlights = 5
    /// Candidates carried from one update to the next.
    public static let carried = 24
    /// Open questions shown (the newest) and kept.
    public static let questionsShown = 5
    static let questionsKept = 20
    /// Characters of a message quoted in an excerpt.
    public static let excerptLength = 200

    struct Candidate: Codable, Equatable {
        var messageId: String
        var seq: Int64
        var senderId: String
        var excerpt: String
        /// Content words of the message and of its thread's replies (sorted, unique).
        var terms: [String]
        var replies: Int
    }

    struct PendingQuestion: Codable, Equatable {
        var messageId: String
        var seq: Int64
        var senderId: String
        var excerpt: String
        var terms: [String]
        /// Top-level messages by others since it was asked.
        var laterByOthers: Int
    }

    public struct State: Codable, Equatable {
        var fromSeq: Int64 = 0
        var throughSeq: Int64 = 0
        var messageCount = 0
        var from: Timestamp?
        var to: Timestamp?
        /// In order of first message.
        var participants: [ConversationSummary.Participant] = []
        var candidates: [Candidate] = []
        var questions: [PendingQuestion] = []

        public init() {}
    }

    /// `state` advanced by `messages` (those after `state.throughSeq`, in `seq` order; others are ignored).
    public static func update(_ state: State, with messages: [Message]) -> State {
        var state = state
        var candidates = state.candidates
        for message in messages.sorted(by: { $0.seq < $1.seq }) where message.seq > state.throughSeq {
            if state.messageCount == 0 {
                state.fromSeq = message.seq
                state.from = message.createdAt
            }
            state.messageCount += 1
            state.throughSeq = message.seq
            state.to = message.createdAt
            if let index = state.participants.firstIndex(where: { $0.userId == message.senderId }) {
                state.participants[index].messageCount += 1
                state.participants[index].displayName = message.sender.displayName
            } else {
                state.participants.append(.init(userId: message.senderId, displayName: message.sender.displayName, messageCount: 1))
            }
            // Commands to agents ("/summary") are counted but are not what a conversation is about.
            if message.content.hasPrefix("/") { continue }
            let terms = Self.terms(message.content)
            if let rootId = message.threadParentId {
                // A reply counts toward its root: more weight, and its words join the root's.
                if let index = candidates.firstIndex(where: { $0.messageId == rootId }) {
                    candidates[index].replies += 1
                    candidates[index].terms = Array(Set(candidates[index].terms).union(terms)).sorted()
                }
                if message.senderId != state.questions.first(where: { $0.messageId == rootId })?.senderId {
                    state.questions.removeAll { $0.messageId == rootId }
                }
                continue
            }
            // A question counts as answered by someone else's next message, or a later one on its subject (sharing a
            // content word); a question is never an answer.
            let asks = Self.isQuestion(message.content)
            for index in state.questions.indices.reversed() where state.questions[index].senderId != message.senderId {
                state.questions[index].laterByOthers += 1
                if !asks, state.questions[index].laterByOthers == 1 || !Set(state.questions[index].terms).isDisjoint(with: terms) {
                    state.questions.remove(at: index)
                }
            }
            let excerpt = Self.excerpt(message.content)
            if asks {
                state.questions.append(.init(
                    messageId: message.id, seq: message.seq, senderId: message.senderId, excerpt: excerpt, terms: terms, laterByOthers: 0))
                if state.questions.count > questionsKept { state.questions.removeFirst(state.questions.count - questionsKept) }
            }
            candidates.append(.init(messageId: message.id, seq: message.seq, senderId: message.senderId, excerpt: excerpt, terms: terms, replies: 0))
        }
        state.candidates = Array(ranked(candidates).prefix(carried)).sorted { $0.seq < $1.seq }
        return state
    }

    /// The summary of `state`.
    public static func summary(of state: State, conversationId: String, generatedAt: Timestamp) -> ConversationSummary {
        let top = ranked(state.candidates).prefix(highlights).sorted { $0.seq < $1.seq }
        let names = Dictionary(state.participants.map { ($0.userId, $0.displayName) }, uniquingKeysWith: { first, _ in first })
        let questions = state.questions.suffix(questionsShown)
        var participants = state.participants
        // Most messages first; among equals, who spoke first.
        participants = participants.enumerated().sorted { ($1.element.messageCount, $0.offset) < ($0.element.messageCount, $1.offset) }.map(\.element)

        var lines: [String] = []
        if let from = state.from, let to = state.to {
            let people = participants.count == 1 ? "1 person" : "\(participants.count) people"
            let messages = state.messageCount == 1 ? "1 message" : "\(state.messageCount) messages"
            lines.append("\(messages) from \(people), \(Self.minute(from)) to \(Self.minute(to)) (#\(state.fromSeq)–#\(state.throughSeq)).")
        } else {
            lines.append("No messages yet.")
        }
        if !top.isEmpty {
            lines.append("Key points:")
            for candidate in top { lines.append("• \(names[candidate.senderId] ?? "Someone") (#\(candidate.seq)): \(candidate.excerpt)") }
        }
        if !questions.isEmpty {
            lines.append("Open questions:")
            for question in questions { lines.append("• \(names[question.senderId] ?? "Someone") (#\(question.seq)): \(question.excerpt)") }
        }
        return ConversationSummary(
            conversationId: conversationId, fromSeq: state.fromSeq, throughSeq: state.throughSeq, messageCount: state.messageCount,
            method: .extractive, model: nil, text: lines.joined(separator: "\n"),
            highlights: top.map { .init(messageId: $0.messageId, seq: $0.seq, senderId: $0.senderId, excerpt: $0.excerpt) },
            participants: participants,
            openQuestions: questions.map { .init(messageId: $0.messageId, seq: $0.seq, excerpt: $0.excerpt) },
            timeSpan: state.from.flatMap { from in state.to.map { .init(from: from, to: $0) } },
            cached: false, generatedAt: generatedAt)
    }

    // MARK: Ranking

    /// Candidates best first: TextRank centrality (PageRank over word-overlap similarity), times a boost for the
    /// replies a message drew, halved for messages of fewer than three content words ("ok", "thanks!"). Ties go to
    /// the earlier message.
    static func ranked(_ candidates: [Candidate]) -> [Candidate] {
        let n = candidates.count
        guard n > 1 else { return candidates }
        let sets = candidates.map { Set($0.terms) }
        var weights = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        var outgoing = [Double](repeating: 0, count: n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                let overlap = sets[i].intersection(sets[j]).count
                guard overlap > 0 else { continue }
                let weight = Double(overlap) / (log(1 + Double(sets[i].count)) + log(1 + Double(sets[j].count)))
                weights[i][j] = weight
                weights[j][i] = weight
                outgoing[i] += weight
                outgoing[j] += weight
            }
        }
        let damping = 0.85
        var rank = [Double](repeating: 1 / Double(n), count: n)
        for _ in 0..<40 {
            var next = [Double](repeating: (1 - damping) / Double(n), count: n)
            for j in 0..<n where outgoing[j] > 0 {
                let share = damping * rank[j] / outgoing[j]
                for i in 0..<n where weights[j][i] > 0 { next[i] += share * weights[j][i] }
            }
            // Rank of messages that share no word with any other is spread evenly (the usual dangling-node rule).
            let dangling = (0..<n).filter { outgoing[$0] == 0 }.reduce(0) { $0 + rank[$1] }
            for i in 0..<n { next[i] += damping * dangling / Double(n) }
            rank = next
        }
        let scores = (0..<n).map { i in
            rank[i] * (1 + log2(1 + Double(candidates[i].replies))) * (candidates[i].terms.count < 3 ? 0.5 : 1)
        }
        return (0..<n).sorted { (scores[$0], -candidates[$0].seq) > (scores[$1], -candidates[$1].seq) }.map { candidates[$0] }
    }

    // MARK: Text

    /// Content words: folded (case and accents), split at anything not a letter or digit, without common English
    /// words and words under three letters, a plural "s" dropped.
    static func terms(_ content: String) -> [String] {
        var result: Set<String> = []
        for word in Directory.fold(content).split(whereSeparator: { !$0.isLetter && !$0.isNumber }) {
            var term = String(word)
            guard term.count >= 3, !stopWords.contains(term) else { continue }
            if term.count > 4, term.hasSuffix("s"), !term.hasSuffix("ss") { term.removeLast() }
            result.insert(term)
        }
        return result.sorted()
    }

    static func isQuestion(_ content: String) -> Bool {
        content.split(whereSeparator: { $0.isNewline }).contains { String($0).trimmingWhitespace().hasSuffix("?") }
            || content.contains("? ")
    }

    /// The message's first `excerptLength` characters on one line, cut at a word.
    public static func excerptOf(_ content: String) -> String { excerpt(content) }

    static func excerpt(_ content: String) -> String {
        let words = content.split(whereSeparator: { $0.isWhitespace })
        var text = ""
        for word in words {
            let next = text.isEmpty ? String(word) : text + " " + word
            if next.count > excerptLength {
                if text.isEmpty { text = String(word.prefix(excerptLength)) }
                return text + "…"
            }
            text = next
        }
        return text
    }

    /// "2026-12-02 14:05 UTC".
    static func minute(_ time: Timestamp) -> String {
        let text = time.description
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(5)) + " UTC"
    }

    static let stopWords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out", "has", "have",
        "him", "his", "how", "its", "let", "may", "who", "did", "get", "got", "yes", "yet", "too", "use", "she", "way", "why", "what",
        "when", "where", "which", "while", "with", "will", "would", "could", "should", "this", "that", "these", "those", "there",
        "their", "they", "them", "then", "than", "from", "into", "onto", "about", "above", "after", "again", "also", "just", "like",
        "more", "most", "much", "must", "only", "other", "over", "same", "some", "such", "very", "here", "been", "being", "does",
        "doing", "each", "few", "both", "because", "before", "below", "between", "during", "under", "until", "upon", "your", "yours",
        "ours", "mine", "were", "well", "okay", "sure", "thanks", "thank", "think", "know", "going", "gonna", "need", "want", "make",
        "still", "really", "maybe", "something", "anything", "everything", "nothing", "now", "today", "tomorrow", "yesterday",
        "lol", "yeah", "hey", "hello", "hi", "please", "see", "say", "said", "able", "off", "own", "via", "per", "etc", "i'm",
    ]
}
