#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HTTPTypes
import Hummingbird

/// Which peers may speak for the client through `X-Forwarded-For`, `-Host` and `-Proto`. Anyone can send those
/// headers, so they count only when the TCP peer is one of the operator's proxies (`--trusted-proxy`); with none
/// configured they are ignored everywhere.
public struct ProxyTrust: Sendable {
    let networks: [IPNetwork]

    /// Parses `--trusted-proxy` values: addresses (`127.0.0.1`, `::1`) or networks (`10.0.0.0/8`, `fd00::/8`).
    public init(_ values: [String]) throws {
        networks = try values.map { value in
            guard let network = IPNetwork(value) else { throw ProxyTrustError(value: value) }
            return network
        }
    }

    public static let none = try! ProxyTrust([])

    func trusts(_ address: String?) -> Bool {
        guard let address, !networks.isEmpty, let bytes = IPNetwork.parse(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// How the request looked where it entered the operator's network: the client's address, the host and the
    /// scheme the browser used. Forwarded headers are read only from a trusted peer.
    func client(of request: Request, peer: String?, overTLS: Bool = false) -> ForwardedClient {
        let host = request.head.authority
        let scheme = overTLS || request.uri.scheme == .https ? "https" : "http"
        guard trusts(peer) else { return ForwardedClient(address: peer, host: host, scheme: scheme, viaTrustedProxy: false) }
        // The right-most hop that is not one of our proxies is the client; a chain of only proxies ends at its left.
        var address = peer
        let hops = request.headers[values: .xForwardedFor].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !hop.isEmpty {
            address = hop
            if !trusts(hop) { break }
        }
        // Several comma-separated values come from several proxies: the first was set nearest the client.
        func first(_ name: HTTPField.Name) -> String? {
            request.headers[name]?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        let forwardedScheme = first(.xForwardedProto)?.lowercased()
        return ForwardedClient(
            address: address, host: first(.xForwardedHost) ?? host,
            scheme: forwardedScheme == "https" || forwardedScheme == "http" ? forwardedScheme! : scheme, viaTrustedProxy: true)
    }
}

struct ProxyTrustError: Error, CustomStringConvertible {
    let value: String
    var description: String { "--trusted-proxy \(value): expected an IP address or a network such as 10.0.0.0/8" }
}

/// The client as the operator's edge saw it.
struct ForwardedClient: Sendable {
    /// The client's IP address (the TCP peer unless a trusted proxy forwarded another).
    var address: String?
    /// The `Host` the browser sent (`X-Forwarded-Host` from a trusted proxy, else the request's own).
    var host: String?
    /// `http` or `https` as the browser used it.
    var scheme: String
    var viaTrustedProxy: Bool
}

/// An IPv4 or IPv6 network; IPv4 is kept in its IPv6-mapped form so that `::ffff:10.0.0.1` and `10.0.0.1` agree.
struct IPNetwork: Sendable {
    let bytes: [UInt8]
    let prefix: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parse(String(parts[0])) else { return nil }
        let isV4 = !parts[0].contains(":")
        var prefix = 128
        if parts.count == 2 {
            guard let bits = Int(parts[1]), bits >= 0, bits <= (isV4 ? 32 : 128) else { return nil }
            prefix = isV4 ? 96 + bits : bits
        }
        self.bytes = bytes
        self.prefix = prefix
    }

    func contains(_ address: [UInt8]) -> Bool {
        var remaining = prefix
        for index in 0..<16 where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if address[index] & mask != bytes[index] & mask { return false }
            remaining -= 8
        }
        return true
    }

    /// 16 bytes for an IPv6 address, or an IPv4 address mapped into IPv6; nil for anything else.
    static func parse(_ text: String) -> [UInt8]? {
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + withUnsafeBytes(of: &v4) { Array($0) }
        }
        return nil
    }
}

/// Fills in the request context's view of the client (address, host, scheme) once, before anything reads it.
struct ForwardedHeadersMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext
    let trust: ProxyTrust
    /// The server itself terminates TLS (`--tls-certificate`).
    let overTLS: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.client = trust.client(of: request, peer: context.peerAddress, overTLS: overTLS)
        // One id per request on every log line and in the answer: the trusted proxy's `X-Request-Id` (so its logs
        // and ours line up), else the id Hummingbird made.
        let requestId = context.client.viaTrustedProxy ? request.headers[.xRequestId].flatMap(Self.plausibleId) ?? context.id : context.id
        context.requestId = requestId
        context.logger[metadataKey: "request_id"] = .string(requestId)
        if let address = context.client.address { context.logger[metadataKey: "client_address"] = .string(address) }
        var response = try await next(request, context)
        response.headers[.xRequestId] = requestId
        // Browsers that reached us over HTTPS stay on HTTPS (HSTS); over plain HTTP the header means nothing.
        if context.client.scheme == "https" { response.headers[.strictTransportSecurity] = "max-age=31536000" }
        return response
    }
}

extension ForwardedHeadersMiddleware {
    /// A forwarded request id we pass on: short, printable ASCII, no spaces (it goes into logs and a header).
    static func plausibleId(_ value: String) -> String? {
        guard !value.isEmpty, value.utf8.count <= 128, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return value
    }
}

extension HTTPField.Name {
    static let xRequestId = HTTPField.Name("X-Request-Id")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xForwardedHost = HTTPField.Name("X-Forwarded-Host")!
    static let strictTransportSecurity = HTTPField.Name("Strict-Transport-Security")!
}
