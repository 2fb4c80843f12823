import HTTPTypes
import Hummingbird
import NIOCore
import Testing

@testable import ChatServer

/// Who counts as "our own page" for a cookie session, with and without a proxy in front.
@Suite struct OriginPolicyTests {
    func request(host: String = "127.0.0.1:8080", _ fields: [(String, String)]) -> Request {
        var headers = HTTPFields()
        for (name, value) in fields { headers.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return Request(
            head: HTTPRequest(method: .post, scheme: nil, authority: host, path: "/chat/start", headerFields: headers),
            body: RequestBody(buffer: ByteBuffer()))
    }

    func allows(_ request: Request, peer: String = "127.0.0.1", trust: ProxyTrust = .none, allowed: [String] = []) -> Bool {
        OriginPolicy(allowedOrigins: allowed).isSameSiteOrAllowed(request, client: trust.client(of: request, peer: peer))
    }

    @Test func theBrowsersFetchMetadataDecidesWhenPresent() {
        // Behind a plain proxy_pass: Host is the upstream's, Origin the proxy's; the browser says same-origin.
        #expect(allows(request([("Origin", "http://localhost:8088"), ("Sec-Fetch-Site", "same-origin")])))
        #expect(!allows(request([("Origin", "http://localhost:8088"), ("Sec-Fetch-Site", "cross-site")])))
        #expect(!allows(request([("Origin", "http://127.0.0.1:8080"), ("Sec-Fetch-Site", "cross-site")])))
        // same-site (a sibling subdomain) only when that origin is allowed.
        #expect(!allows(request([("Origin", "https://other.example.com"), ("Sec-Fetch-Site", "same-site")])))
        #expect(allows(
            request([("Origin", "https://other.example.com"), ("Sec-Fetch-Site", "same-site")]), allowed: ["https://other.example.com/"]))
        #expect(!allows(request([("Sec-Fetch-Site", "something-new")])))
    }

    @Test func withoutFetchMetadataOriginOrRefererMustNameTheHost() {
        #expect(allows(request([("Origin", "http://127.0.0.1:8080")])))
        #expect(allows(request(host: "chat.example.com", [("Origin", "https://chat.example.com:443")])))
        // A forged Origin and no Sec-Fetch-Site: refused.
        #expect(!allows(request([("Origin", "http://evil.example")])))
        #expect(!allows(request([("Origin", "null")])))
        #expect(allows(request([("Referer", "http://127.0.0.1:8080/chat?x=1")])))
        #expect(!allows(request([("Referer", "http://evil.example/page")])))
        // Two Origin headers are never a browser's.
        #expect(!allows(request([("Origin", "http://127.0.0.1:8080"), ("Origin", "http://127.0.0.1:8080")])))
        // No signal at all (curl): left to the CSRF token.
        #expect(allows(request([])))
    }

    @Test func forwardedHostCountsOnlyFromATrustedProxy() throws {
        let proxied = request([("Origin", "https://chat.example.com"), ("X-Forwarded-Host", "chat.example.com"), ("X-Forwarded-Proto", "https")])
        #expect(!allows(proxied))
        let trust = try ProxyTrust(["127.0.0.1"])
        #expect(allows(proxied, trust: trust))
        #expect(!allows(proxied, peer: "10.1.2.3", trust: trust))
        // The forwarded scheme must match as well.
        let downgraded = request([("Origin", "http://chat.example.com"), ("X-Forwarded-Host", "chat.example.com"), ("X-Forwarded-Proto", "https")])
        #expect(!allows(downgraded, trust: trust))
    }

    @Test func theClientAddressIsTheRightMostUntrustedHop() throws {
        let trust = try ProxyTrust(["10.0.0.0/8", "::1"])
        let chain = request([("X-Forwarded-For", "203.0.113.9, 198.51.100.7"), ("X-Forwarded-For", "10.0.0.5")])
        #expect(trust.client(of: chain, peer: "10.0.0.1").address == "198.51.100.7")
        #expect(trust.client(of: chain, peer: "::1").address == "198.51.100.7")
        // From an untrusted peer the header is ignored.
        #expect(trust.client(of: chain, peer: "192.0.2.1").address == "192.0.2.1")
        #expect(ProxyTrust.none.client(of: chain, peer: "10.0.0.1").address == "10.0.0.1")
        // Only proxies in the chain: the left-most hop.
        #expect(trust.client(of: request([("X-Forwarded-For", "10.9.9.9")]), peer: "10.0.0.1").address == "10.9.9.9")
        #expect(trust.trusts("::ffff:10.1.1.1"))
        #expect(throws: (any Error).self) { try ProxyTrust(["not-an-address"]) }
        #expect(throws: (any Error).self) { try ProxyTrust(["10.0.0.0/33"]) }
    }
}
