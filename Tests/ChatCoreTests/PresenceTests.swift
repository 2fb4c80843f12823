import ChatCore
import Foundation
import Synchronization
import Testing

@Suite struct PresenceTests {
    func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// The presence events one person's "all my conversations" stream would get: (who, status).
    func heard(_ recorder: Recorder) -> [String] {
        recorder.received.filter { $0.type == .presence }.map { event in
            let data = (try? JSONSerialization.jsonObject(with: Data(buffer: event.envelope)) as? [String: Any])?["data"] as? [String: String]
            return "\(data?["userId"] ?? "?"):\(data?["status"] ?? "?")"
        }
    }

    var quick: PresenceTracker.Settings {
        var settings = PresenceTracker.Settings()
        settings.offlineGrace = .milliseconds(200)
        settings.remoteLifetime = .seconds(2)
        return settings
    }

    @Test(arguments: StoreKind.available) func tabsAwayAndAGracefulOffline(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let dave = try await f.principal("globex", "dave")
        let hub = RoomHub()
        let tracker = PresenceTracker(store: f.store, broker: hub, settings: quick)
        let bobHears = Recorder(), daveHears = Recorder()
        let subscriptions = [
            hub.subscribe(bobHears, to: .user(tenantId: bob.tenantId, userId: bob.userId)),
            hub.subscribe(daveHears, to: .user(tenantId: dave.tenantId, userId: dave.userId)),
        ]
        defer { subscriptions.forEach { $0.cancel() } }
        let a = alice.userId

        let firstTab = tracker.connect(alice)
        #expect(try await eventually { heard(bobHears) == ["\(a):online"] })
        let secondTab = tracker.connect(alice)
        firstTab.setAway(true)
        #expect(tracker.status(tenantId: alice.tenantId, userId: a) == .online, "one active tab is enough")
        secondTab.setAway(true)
        #expect(try await eventually { heard(bobHears) == ["\(a):online", "\(a):away"] })
        secondTab.setAway(false)
        #expect(try await eventually { heard(bobHears).last == "\(a):online" })
        // A reload: the last connection ends and a new one comes within the grace: nobody hears "offline".
        firstTab.end()
        secondTab.end()
        let third = tracker.connect(alice)
        try await Task.sleep(for: .milliseconds(400))
        #expect(!heard(bobHears).contains("\(a):offline"))
        third.end()
        #expect(tracker.status(tenantId: alice.tenantId, userId: a) == .online, "not offline before the grace")
        #expect(try await eventually { heard(bobHears).last == "\(a):offline" })
        #expect(tracker.status(tenantId: alice.tenantId, userId: a) == .offline)
        // Someone of another tenant shares no conversation with alice: never told.
        #expect(heard(daveHears).isEmpty)
    }

    /// A long-poll client opens a connection per poll: its person stays online however the gaps between polls fall
    /// (the grace counts from the last connection's end, not from each one's), and goes offline one grace after the
    /// last poll.
    @Test func aPollerBetweenPollsStaysOnlineUntilAGraceAfterItsLastPoll() async throws {
        let f = try await CoreFixture(.sqlite)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let hub = RoomHub()
        var settings = quick
        settings.offlineGrace = .seconds(1)
        let tracker = PresenceTracker(store: f.store, broker: hub, settings: settings)
        let bobHears = Recorder()
        let subscription = hub.subscribe(bobHears, to: .user(tenantId: bob.tenantId, userId: bob.userId))
        defer { subscription.cancel() }
        let a = alice.userId

        // 2.5 s of polls held 30 ms with 30 ms between them: half of any instant falls between two polls, and the
        // grace passes twice over.
        let churnEnds = ContinuousClock.now + .milliseconds(2500)
        var longestGap: Duration = .zero
        var lastEnded = ContinuousClock.now
        while ContinuousClock.now < churnEnds {
            let poll = tracker.connect(alice)
            longestGap = max(longestGap, ContinuousClock.now - lastEnded)
            try await Task.sleep(for: .milliseconds(30))
            poll.end()
            lastEnded = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(30))
        }
        // A machine so busy that one gap outlasted the grace saw a real offline; otherwise there must be none.
        if longestGap < settings.offlineGrace {
            #expect(heard(bobHears) == ["\(a):online"], "no offline between polls")
        }
        #expect(try await eventually { heard(bobHears).last == "\(a):offline" })
        #expect(ContinuousClock.now - lastEnded >= settings.offlineGrace, "offline only once the grace has passed")
    }

    /// A credential that said "away" over HTTP and then went quiet is forgotten after `awayMemory`, so the marks stay
    /// bounded by the credentials in use; its next connection starts online. Recent marks are kept.
    @Test func awayMarksOfQuietCredentialsAreForgotten() async throws {
        let f = try await CoreFixture(.sqlite)
        defer { f.cleanUp() }
        var settings = quick
        settings.awayMemory = .milliseconds(300)
        let tracker = PresenceTracker(store: f.store, broker: RoomHub(), settings: settings)
        var phone = try await f.principal("acme", "alice")
        phone.credentialHash = "alice-phone"
        let bob = try await f.principal("acme", "bob")
        func status(_ principal: Principal) -> PresenceStatus { tracker.status(tenantId: principal.tenantId, userId: principal.userId) }

        await tracker.setAway(phone, true)
        let poll = tracker.connect(phone)
        #expect(status(phone) == .away)
        poll.end()
        let nextPoll = tracker.connect(phone)
        #expect(status(phone) == .away, "remembered between polls")
        nextPoll.end()
        try await Task.sleep(for: .milliseconds(400))
        // Other credentials say away: enough marks for a sweep, which forgets the quiet phone's.
        for index in 0..<64 {
            var other = bob
            other.credentialHash = "bob-\(index)"
            await tracker.setAway(other, true)
        }
        let later = tracker.connect(phone)
        #expect(status(phone) == .online, "forgotten after awayMemory without a connection")
        later.end()
        var recent = bob
        recent.credentialHash = "bob-7"
        let bobsTab = tracker.connect(recent)
        #expect(status(bob) == .away, "a recent mark is kept")
        bobsTab.end()
    }

    @Test(arguments: StoreKind.available) func severalNodesAgreeOnTheBestViewAndForgetADeadOne(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let hubs = [RoomHub(), RoomHub()]
        let nodes = hubs.map { PresenceTracker(store: f.store, broker: $0, settings: quick) }
        // A bus that delivers every announcement to the other node (what LISTEN/NOTIFY does).
        let alive = Mutex([true, true])
        for (index, node) in nodes.enumerated() {
            let other = nodes[1 - index]
            node.forward { announcements in if alive.withLock({ $0[index] }) { other.receive(announcements) } }
            node.forwardAway { hash, away in other.applyAway(credentialHash: hash, away) }
        }
        let bobOnSecond = Recorder()
        let subscription = hubs[1].subscribe(bobOnSecond, to: .user(tenantId: bob.tenantId, userId: bob.userId))
        defer { subscription.cancel() }
        let a = alice.userId

        let onFirst = nodes[0].connect(alice)
        #expect(try await eventually { heard(bobOnSecond) == ["\(a):online"] })
        let onSecond = nodes[1].connect(alice)
        onSecond.setAway(true)
        await nodes[0].tick()  // the first node repeats its view (its cluster service does every ten seconds)
        #expect(nodes[1].status(tenantId: alice.tenantId, userId: a) == .online, "the first node's view is better")
        // Away through the HTTP API reaches the first node's connection too.
        await nodes[1].setAway(alice, true)
        #expect(try await eventually { heard(bobOnSecond).last == "\(a):away" })
        await nodes[1].setAway(alice, false)
        await nodes[0].tick()
        #expect(try await eventually { heard(bobOnSecond).last == "\(a):online" })
        // The first node dies silently: its view lapses, the second node's (away) remains.
        onSecond.setAway(true)
        alive.withLock { $0[0] = false }
        try await Task.sleep(for: .milliseconds(2300))
        await nodes[1].tick()
        #expect(try await eventually { nodes[1].status(tenantId: alice.tenantId, userId: a) == .away })
        #expect(try await eventually { heard(bobOnSecond).last == "\(a):away" })
        _ = onFirst
    }
}
