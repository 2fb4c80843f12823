import Foundation
import NIOSSL
import PostgresNIO

/// How to reach PostgreSQL and how long the write path may wait, from a `postgres://` URL and options.
public struct PostgresSettings: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// `disable`, `prefer` (the default, as libpq) or `require` (`?sslmode=` in the URL).
    public var sslMode: String
    /// Connections in the pool.
    public var poolSize = 16
    /// Set on every write transaction, so that a stuck transaction cannot freeze a tenant for long.
    public var lockTimeoutMilliseconds = 5_000
    public var statementTimeoutMilliseconds = 15_000
    public var idleInTransactionTimeoutMilliseconds = 15_000
    public var connectTimeoutSeconds = 10
    /// The longest any call into the database may take, pool wait included (above the statement timeout).
    public var requestTimeoutSeconds = 20

    /// True for `postgres://` and `postgresql://` URLs: the value selects the PostgreSQL store.
    public static func isPostgresURL(_ value: String) -> Bool {
        value.hasPrefix("postgres://") || value.hasPrefix("postgresql://")
    }

    /// Parses `postgres://user:password@host:port/database?sslmode=require`. Query parameters: `sslmode`,
    /// `pool_size`, `lock_timeout`, `statement_timeout`, `idle_in_transaction_session_timeout` (milliseconds),
    /// `connect_timeout` and `request_timeout` (seconds).
    public init(url: String) throws {
        guard Self.isPostgresURL(url), let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw PostgresSettingsError("not a postgres:// URL: \(Self.redacted(url))")
        }
        self.host = host
        port = components.port ?? 5432
        username = components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? username : path
        sslMode = "prefer"
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(value) else {
                    throw PostgresSettingsError("sslmode must be disable, prefer or require")
                }
                sslMode = value
            case "pool_size":
                poolSize = try Self.positive(item)
            case "lock_timeout":
                lockTimeoutMilliseconds = try Self.positive(item)
            case "statement_timeout":
                statementTimeoutMilliseconds = try Self.positive(item)
            case "idle_in_transaction_session_timeout":
                idleInTransactionTimeoutMilliseconds = try Self.positive(item)
            case "connect_timeout":
                connectTimeoutSeconds = try Self.positive(item)
            case "request_timeout":
                requestTimeoutSeconds = try Self.positive(item)
            default:
                break
            }
        }
    }

    private static func positive(_ item: URLQueryItem) throws -> Int {
        guard let value = item.value.flatMap(Int.init), value > 0 else {
            throw PostgresSettingsError("\(item.name) must be a positive whole number")
        }
        return value
    }

    /// The URL without its password, for logs and error messages.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "postgres://…"
    }

    var clientConfiguration: PostgresClient.Configuration {
        get throws {
            var config = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: try clientTLS)
            config.options.maximumConnections = poolSize
            config.options.minimumConnections = 1
            config.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
            return config
        }
    }

    public var connectionConfiguration: PostgresConnection.Configuration {
        get throws {
            let tls: PostgresConnection.Configuration.TLS = switch try tlsMode {
            case .disable: .disable
            case .prefer(let configuration): .prefer(try NIOSSLContext(configuration: configuration))
            case .require(let configuration): .require(try NIOSSLContext(configuration: configuration))
            }
            var config = PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
            config.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
            return config
        }
    }

    private var clientTLS: PostgresClient.Configuration.TLS {
        get throws {
            switch try tlsMode {
            case .disable: .disable
            case .prefer(let configuration): .prefer(configuration)
            case .require(let configuration): .require(configuration)
            }
        }
    }

    /// `sslmode` as one decision, for the pool and for the listener's own connection alike.
    private enum TLSMode {
        case disable
        case prefer(TLSConfiguration)
        case require(TLSConfiguration)
    }

    private var tlsMode: TLSMode {
        get throws {
            switch sslMode {
            case "disable", "allow": .disable
            case "prefer": .prefer(Self.tlsConfiguration(verify: false))
            default: .require(Self.tlsConfiguration(verify: sslMode.hasPrefix("verify")))
            }
        }
    }

    /// libpq's `require` encrypts without checking the certificate; `verify-ca`/`verify-full` check it.
    private static func tlsConfiguration(verify: Bool) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if !verify { tls.certificateVerification = .none }
        return tls
    }
}

public struct PostgresSettingsError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
