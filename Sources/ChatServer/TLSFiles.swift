import HummingbirdTLS
import NIOSSL

/// HTTPS and WSS straight from the server: a PEM certificate chain and its PEM private key.
enum TLSFiles {
    static func serverConfiguration(certificate: String, key: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw TLSFilesError(description: "cannot read the certificate chain \(certificate): \(error)")
        }
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw TLSFilesError(description: "cannot read the private key \(key): \(error)")
        }
        guard !chain.isEmpty else { throw TLSFilesError(description: "no certificate in \(certificate)") }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}

struct TLSFilesError: Error, CustomStringConvertible {
    let description: String
}
