import ChatCore
import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The files of `Public/`, read once at start-up, with an ETag and a gzip copy where it pays.
struct StaticAssets: Sendable {
    struct Asset: Sendable {
        let contentType: String
        let body: ByteBuffer
        let gzipped: ByteBuffer?
        let etag: String
    }

    let assets: [String: Asset]

    static func load(directory: String) throws -> StaticAssets {
        var assets: [String: Asset] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where !name.hasPrefix(".") {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            var buffer = ByteBuffer(bytes: bytes)
            var gzipped: ByteBuffer? = nil
            if bytes.count > 512, var compressed = try? buffer.compress(with: .gzip()), compressed.readableBytes < bytes.count * 9 / 10 {
                gzipped = compressed
                compressed.moveReaderIndex(to: 0)
            }
            buffer.moveReaderIndex(to: 0)
            assets[name] = Asset(
                contentType: contentType(name), body: ByteBuffer(bytes: bytes), gzipped: gzipped,
                etag: "\"" + String(SHA256.digest(bytes).hexString.prefix(16)) + "\"")
        }
        return StaticAssets(assets: assets)
    }

    static func contentType(_ name: String) -> String {
        switch name.split(separator: ".").last ?? "" {
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }

    func addRoutes(to router: Router<ChatRequestContext>) {
        router.get("static/:file") { request, context in
            let name = try context.parameters.require("file")
            guard let asset = assets[name] else { throw ChatError.notFound("file") }
            var headers = HTTPFields()
            headers[.contentType] = asset.contentType
            // No fingerprints in the names: let browsers revalidate cheaply with the ETag.
            headers[.cacheControl] = "public, max-age=300, must-revalidate"
            headers[.eTag] = asset.etag
            headers[.vary] = "Accept-Encoding"
            if request.headers[.ifNoneMatch] == asset.etag {
                return Response(status: .notModified, headers: headers)
            }
            if let gzipped = asset.gzipped, RealtimeController.acceptsGzip(request) {
                headers[.contentEncoding] = "gzip"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: gzipped))
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
        }
    }
}
