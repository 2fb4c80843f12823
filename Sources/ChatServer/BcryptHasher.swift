import ChatCore
import HummingbirdBcrypt
import NIOPosix

/// bcrypt on NIO's thread pool: hashing takes tens of milliseconds and must never block an event loop.
public struct BcryptHasher: PasswordHasher {
    public let cost: UInt8
    public let placeholderHash: String

    public init(cost: UInt8) {
        self.cost = cost
        self.placeholderHash = Bcrypt.hash(Secret.make(), cost: cost)
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
