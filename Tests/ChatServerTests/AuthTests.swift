@testable import ChatServer
import ChatCore
import ChatSQLite
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct AuthTests {
    @Test func loginSetsAHardenedSessionCookie() async throws {
        try await withApp { client, _ in
            let response = try await client.call(.post, "/api/auth/login", json: ["tenant": "acme", "username": "alice", "password": "demo-password"])
            #expect(response.status == .ok)
            #expect(response.json["user"]["username"].string == "alice")
            #expect(response.json["user"].keys == ["id", "username", "displayName", "tenantId", "isBot"])
            #expect(response.json["csrfToken"].string?.isEmpty == false)
            let cookie = try #require(setCookie(response.headers))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(cookie.contains("Path=/"))
            #expect(!cookie.contains("Secure"))
            // Anyone can send X-Forwarded-Proto: without --trusted-proxy it changes nothing.
            let forged = try await client.call(
                .post, "/api/auth/login", json: ["tenant": "acme", "username": "alice", "password": "demo-password"],
                headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(setCookie(forged.headers)?.contains("Secure") == false)
        }
    }

    @Test func behindATrustedTLSProxyTheCookieIsSecure() async throws {
        var config = testConfiguration()
        config.proxyTrust = try ProxyTrust(["127.0.0.0/8", "::1"])
        try await withApp(.live, config: config) { client, _ in
            let https = try await client.call(
                .post, "/api/auth/login", json: ["tenant": "acme", "username": "alice", "password": "demo-password"],
                headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(https.status == .ok)
            #expect(setCookie(https.headers)?.contains("Secure") == true)
        }
    }

    @Test func jsonLoginWithALiveSessionCookieSignsInAfresh() async throws {
        try await withApp { client, _ in
            let alice = try await client.browserSignIn("acme", "alice")
            guard case .browser(let aliceCookie, _) = alice else { return }
            // No X-CSRF-Token: signing in is not an action of the session the browser still holds.
            let asBob = try await client.call(
                .post, "/api/auth/login", as: .browser(cookie: aliceCookie, csrf: nil),
                json: ["tenant": "acme", "username": "bob", "password": "demo-password"])
            #expect(asBob.status == .ok)
            #expect(asBob.json["user"]["username"].string == "bob")
            let bobCookie = try #require(sessionCookie(asBob.headers))
            #expect(bobCookie != aliceCookie)
            #expect(try await client.call(.get, "/api/auth/me", as: .browser(cookie: bobCookie, csrf: nil)).json["user"]["username"].string == "bob")
            // Nothing else is invalidated: the old session still works.
            #expect(try await client.call(.get, "/api/auth/me", as: alice).json["user"]["username"].string == "alice")
            // The same for a token, and the cross-site check still applies.
            let token = try await client.call(
                .post, "/api/auth/token", as: alice, json: ["tenant": "acme", "username": "alice", "password": "demo-password"])
            #expect(token.status == .ok)
            #expect(setCookie(token.headers) == nil)
            let crossSite = try await client.call(
                .post, "/api/auth/login", as: alice, json: ["tenant": "acme", "username": "bob", "password": "demo-password"],
                headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(crossSite.status == .forbidden)
            #expect(crossSite.json["error"]["code"].string == "origin_rejected")
            // A wrong password answers exactly as without the cookie.
            let wrongWithCookie = try await client.call(
                .post, "/api/auth/login", as: alice, json: ["tenant": "acme", "username": "bob", "password": "nope"])
            let wrongWithout = try await client.call(.post, "/api/auth/login", json: ["tenant": "acme", "username": "bob", "password": "nope"])
            #expect(wrongWithCookie.status == .unauthorized)
            #expect(String(buffer: wrongWithCookie.raw) == String(buffer: wrongWithout.raw))
        }
    }

    @Test func wrongTenantUserOrPasswordGetTheSameAnswer() async throws {
        try await withApp { client, _ in
            var bodies: Set<String> = []
            for (tenant, user, password) in [("nope", "alice", "demo-password"), ("acme", "nobody", "demo-password"), ("acme", "alice", "wrong"), ("globex", "alice", "demo-password")] {
                let response = try await client.call(.post, "/api/auth/login", json: ["tenant": tenant, "username": user, "password": password])
                #expect(response.status == .unauthorized)
                #expect(setCookie(response.headers) == nil)
                bodies.insert(String(buffer: response.raw))
            }
            #expect(bodies.count == 1)
        }
    }

    @Test func loginIssuesAFreshSessionAndIgnoresAPlantedOne() async throws {
        try await withApp { client, _ in
            let planted = "attacker-chosen-session-value-0000000000000"
            let response = try await client.call(
                .post, "/api/auth/login", json: ["tenant": "acme", "username": "alice", "password": "demo-password"],
                headers: [.cookie: "chat_session=\(planted)"])
            let issued = try #require(sessionCookie(response.headers))
            #expect(issued != planted)
            #expect(try await client.call(.get, "/api/auth/me", as: .browser(cookie: planted, csrf: nil)).status == .unauthorized)
            #expect(try await client.call(.get, "/api/auth/me", as: .browser(cookie: issued, csrf: nil)).status == .ok)
            // A second login gets a different session again.
            let second = try await client.browserSignIn("acme", "alice")
            guard case .browser(let secondCookie, _) = second else { return }
            #expect(secondCookie != issued)
        }
    }

    @Test func logoutKillsTheSessionOnTheServer() async throws {
        try await withApp { client, _ in
            let alice = try await client.browserSignIn("acme", "alice")
            #expect(try await client.call(.get, "/api/auth/me", as: alice).status == .ok)
            let out = try await client.call(.post, "/api/auth/logout", as: alice)
            #expect(out.status == .noContent)
            #expect(setCookie(out.headers)?.contains("Max-Age=0") == true)
            // The old cookie, replayed, is dead.
            #expect(try await client.call(.get, "/api/auth/me", as: alice).status == .unauthorized)

            let token = try await client.tokenSignIn("acme", "bob")
            #expect(try await client.call(.post, "/api/auth/logout", as: token).status == .noContent)
            #expect(try await client.call(.get, "/api/auth/me", as: token).status == .unauthorized)
        }
    }

    @Test func tokensAuthenticateAPIClientsWithoutCookies() async throws {
        try await withApp { client, _ in
            let response = try await client.call(.post, "/api/auth/token", json: ["tenant": "globex", "username": "dave", "password": "demo-password"])
            #expect(response.status == .ok)
            #expect(setCookie(response.headers) == nil)
            #expect(Timestamp(rfc3339: response.json["expiresAt"].string ?? "") != nil)
            let me = try await client.call(.get, "/api/auth/me", as: .bearer(response.json["token"].string!))
            #expect(me.json["user"]["username"].string == "dave")
            #expect(me.json["tenant"]["slug"].string == "globex")
            #expect(try await client.call(.get, "/api/auth/me", as: .bearer("made-up")).status == .unauthorized)
            // A cookie session secret is not a bearer token.
            guard case .browser(let cookie, _) = try await client.browserSignIn("globex", "dave") else { return }
            #expect(try await client.call(.get, "/api/auth/me", as: .bearer(cookie)).status == .unauthorized)
        }
    }

    @Test func sessionsAndTokensAreStoredOnlyAsHashes() async throws {
        try await withApp { client, deps in
            guard case .bearer(let token) = try await client.tokenSignIn("acme", "alice") else { return }
            let stored = try await (deps.store as! SQLiteChatStore).pool.read { db in try String.fetchAll(db, sql: "SELECT hash FROM credentials") }
            #expect(!stored.contains(token))
            #expect(stored.contains(SHA256.hex(token)))
        }
    }

    @Test func sessionsSurviveARestart() async throws {
        let database = try testDatabasePath()
        let alice = try await withApp(database: database) { client, _ in try await client.browserSignIn("acme", "alice") }
        try await withApp(database: database) { client, _ in
            let me = try await client.call(.get, "/api/auth/me", as: alice)
            #expect(me.status == .ok)
            #expect(me.json["user"]["username"].string == "alice")
        }
    }

    @Test func repeatedFailuresAreRateLimited() async throws {
        try await withApp { client, _ in
            for _ in 0..<10 {
                let r = try await client.call(.post, "/api/auth/login", json: ["tenant": "acme", "username": "carol", "password": "guess"])
                #expect(r.status == .unauthorized)
            }
            let limited = try await client.call(.post, "/api/auth/login", json: ["tenant": "acme", "username": "carol", "password": "demo-password"])
            #expect(limited.status == .tooManyRequests)
            #expect(limited.json["error"]["code"].string == "rate_limited")
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 > 0)
            // Other accounts are unaffected.
            #expect(try await client.call(.post, "/api/auth/login", json: ["tenant": "acme", "username": "bob", "password": "demo-password"]).status == .ok)
        }
    }

    @Test func cookieStateChangesNeedTheCSRFTokenAndASameOrigin() async throws {
        try await withApp { client, deps in
            let alice = try await client.browserSignIn("acme", "alice")
            guard case .browser(let cookie, let csrf) = alice else { return }
            let room = try await client.conversationId("General", as: alice)
            let before = try await snapshot(deps.store)
            let send: [String: Any] = ["conversationId": room, "content": "csrf?"]

            let missing = try await client.call(.post, "/api/chat/send", as: .browser(cookie: cookie, csrf: nil), json: send)
            #expect(missing.status == .forbidden)
            #expect(missing.json["error"]["code"].string == "csrf_failed")
            let wrong = try await client.call(.post, "/api/chat/send", as: .browser(cookie: cookie, csrf: "nope"), json: send)
            #expect(wrong.status == .forbidden)
            let crossSite = try await client.call(.post, "/api/chat/send", as: alice, json: send, headers: [.origin: "https://evil.example"])
            #expect(crossSite.status == .forbidden)
            #expect(crossSite.json["error"]["code"].string == "origin_rejected")
            let fetchMeta = try await client.call(.post, "/api/chat/send", as: alice, json: send, headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(fetchMeta.status == .forbidden)
            #expect(try await snapshot(deps.store) == before)

            #expect(try await client.call(.post, "/api/chat/send", as: .browser(cookie: cookie, csrf: csrf), json: send).status == .created)
            // Bearer clients need no CSRF token.
            let token = try await client.tokenSignIn("acme", "alice")
            #expect(try await client.call(.post, "/api/chat/send", as: token, json: send).status == .created)
        }
    }

    @Test func everyAPIEndpointNeedsAuthentication() async throws {
        try await withApp { client, _ in
            let endpoints: [(HTTPRequest.Method, String)] = [
                (.get, "/api/auth/me"), (.post, "/api/auth/logout"), (.get, "/api/users"), (.post, "/api/chat/start"),
                (.get, "/api/chat/conversations"), (.post, "/api/chat/send"), (.get, "/api/chat/cnv_x/messages"),
                (.post, "/api/chat/thread/msg_x/reply"), (.get, "/api/chat/thread/msg_x"), (.post, "/api/chat/cnv_x/close"),
                (.post, "/api/chat/cnv_x/reopen"), (.post, "/api/chat/cnv_x/read"), (.post, "/api/chat/cnv_x/typing"),
            ]
            for (method, path) in endpoints {
                let response = try await client.call(method, path, json: [:] as [String: String])
                #expect(response.status == .unauthorized, "\(method) \(path)")
                #expect(response.json["error"]["code"].string == "unauthenticated", "\(method) \(path)")
            }
        }
    }
}
