import ArgumentParser
import Foundation

/// Every option of `serve` can also come from the environment (`CHAT_PORT`, `CHAT_DATABASE`, …): a command-line
/// value wins over the environment, the environment over the default. Lists are comma separated.
enum Env {
    static let values = ProcessInfo.processInfo.environment

    static func string(_ name: String, _ fallback: String) -> String {
        values[name].flatMap { $0.isEmpty ? nil : $0 } ?? fallback
    }

    static func int<T: FixedWidthInteger>(_ name: String, _ fallback: T) -> T {
        values[name].flatMap { T($0.trimmingCharacters(in: .whitespaces)) } ?? fallback
    }

    static func flag(_ name: String) -> Bool {
        guard let value = values[name]?.lowercased() else { return false }
        return ["1", "true", "yes", "on"].contains(value)
    }

    static func list(_ name: String) -> [String] {
        (values[name] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// Where the templates and static files are: `--resources DIR` (or `CHAT_RESOURCES`), else an install layout beside
/// the binary (`<prefix>/bin/chat-server` with `<prefix>/share/chat-server/{templates,Public}`), else the checkout the
/// binary was built in (`.build/…/chat-server` under the repository), else the working directory. Whatever is found
/// must hold every template and the static files, or start-up stops saying what is missing and where it looked.
enum Resources {
    static let marker = ["templates/layout_start.mustache", "Public/app.js"]

    static func locate(_ explicit: String?) throws -> URL {
        if let explicit {
            let folder = URL(fileURLWithPath: explicit).standardizedFileURL
            guard holdsResources(folder) else {
                throw ValidationError("--resources \(explicit) must contain templates/ and Public/ (missing \(missing(folder).joined(separator: ", ")))")
            }
            return folder
        }
        var candidates: [URL] = []
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let binFolder = executable.deletingLastPathComponent()
        candidates.append(binFolder.deletingLastPathComponent().appendingPathComponent("share/chat-server"))
        candidates.append(binFolder.appendingPathComponent("share/chat-server"))
        var folder = binFolder
        for _ in 0..<5 {
            candidates.append(folder)
            folder = folder.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        if let found = candidates.first(where: holdsResources) { return found.standardizedFileURL }
        throw ValidationError(
            "cannot find the templates and static files; give --resources DIR (a folder with templates/ and Public/). Looked in: "
                + candidates.map(\.path).joined(separator: ", "))
    }

    static func holdsResources(_ folder: URL) -> Bool { missing(folder).isEmpty }

    static func missing(_ folder: URL) -> [String] {
        marker.filter { !FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
    }
}
