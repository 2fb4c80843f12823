import ArgumentParser
import ChatCore
import Foundation

/// How an agent is set up, shared by `create-agent` and `update-agent` (which changes only what it is given).
struct AgentOptions: ParsableArguments {
    @Option(help: "builtin (commands and summaries, no model) or openai (an OpenAI-compatible server).") var backend: String?
    @Option(help: ArgumentHelp("The server's base URL up to /v1, e.g. http://127.0.0.1:8081/v1 (openai).", valueName: "url"))
    var baseUrl: String?
    @Option(help: "The model name the server expects (openai).") var model: String?
    @Option(help: ArgumentHelp(
        "The environment variable holding the API key, read by the server when it calls the model; the key is never stored.",
        valueName: "VAR"))
    var apiKeyEnv: String?
    @Option(help: ArgumentHelp("A file with the agent's system prompt.", valueName: "file")) var systemPromptFile: String?
    @Option(help: "Tokens per UTC day (prompt and reply); 0 stops model calls.") var dailyTokenBudget: Int?
    @Option(help: "Model calls per minute (per node); 0 stops model calls.") var requestsPerMinute: Int?

    /// `base` with these options applied, checked.
    func apply(to base: Agent.Settings) throws -> Agent.Settings {
        var settings = base
        if let backend {
            guard let parsed = Agent.Backend(rawValue: backend) else { throw ValidationError("--backend is builtin or openai") }
            settings.backend = parsed
        }
        if let baseUrl {
            guard let url = URL(string: baseUrl), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ValidationError("--base-url must be an http:// or https:// URL")
            }
            settings.baseURL = baseUrl
        }
        if let model { settings.model = model }
        if let apiKeyEnv {
            guard apiKeyEnv.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
                throw ValidationError("--api-key-env names an environment variable (letters, digits, underscores), not the key")
            }
            settings.apiKeyEnv = apiKeyEnv
        }
        if let systemPromptFile {
            let prompt = try String(contentsOfFile: systemPromptFile, encoding: .utf8).trimmingWhitespace()
            guard !prompt.isEmpty, prompt.utf8.count <= 16_000 else { throw ValidationError("the system prompt must be 1 to 16,000 bytes") }
            settings.systemPrompt = prompt
        }
        if let dailyTokenBudget {
            guard dailyTokenBudget >= 0 else { throw ValidationError("--daily-token-budget cannot be negative") }
            settings.dailyTokenBudget = dailyTokenBudget
        }
        if let requestsPerMinute {
            guard requestsPerMinute >= 0 else { throw ValidationError("--requests-per-minute cannot be negative") }
            settings.requestsPerMinute = requestsPerMinute
        }
        if settings.backend == .openai, settings.baseURL == nil { throw ValidationError("an openai agent needs --base-url") }
        return settings
    }
}

func describe(_ agent: Agent) -> String {
    let s = agent.settings
    var line = "\(agent.user.username) (\(agent.id)) \"\(agent.user.displayName)\": \(s.backend.rawValue)"
    if s.backend == .openai { line += " \(s.baseURL ?? "") model \(s.model ?? "(server default)") key from \(s.apiKeyEnv.map { "$\($0)" } ?? "nowhere")" }
    return line + ", \(s.dailyTokenBudget) tokens a day, \(s.requestsPerMinute) calls a minute"
}

func tenantId(_ store: any ChatStore, _ slug: String) async throws -> String {
    guard let tenant = try await store.tenant(slug: slug) else { throw ValidationError("no tenant \(slug)") }
    return tenant.id
}

/// The agent of the tenant with this username.
func agentNamed(_ store: any ChatStore, tenantId: String, _ name: String) async throws -> Agent {
    guard let agent = try await store.agents(tenantId: tenantId).first(where: { $0.user.username.lowercased() == name.lowercased() }) else {
        throw ValidationError("no agent \(name) in this tenant")
    }
    return agent
}

struct CreateAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-agent", abstract: "Create an agent: a bot user of the tenant that answers mentions, direct messages and commands.")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Tenant slug.") var tenant: String
    @Option(help: "The agent's username (people mention it as @name).") var name: String
    @Option(help: "Display name (defaults to the name).") var displayName: String?
    @OptionGroup var options: AgentOptions

    func run() async throws {
        guard name.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
            throw ValidationError("the name must be 1-64 letters, digits, dots, dashes or underscores")
        }
        let settings = try options.apply(to: Agent.Settings())
        let (slug, name, displayName) = (tenant, self.name, self.displayName ?? self.name)
        let agent = try await withStore(db) { store in
            try await store.createAgent(tenantId: try await tenantId(store, slug), username: name, displayName: displayName, settings: settings)
        }
        print("created agent " + describe(agent))
    }
}

struct ListAgents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-agents", abstract: "List a tenant's agents (no keys: only where they are read from).")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Tenant slug.") var tenant: String

    func run() async throws {
        let slug = tenant
        let agents = try await withStore(db) { store in try await store.agents(tenantId: try await tenantId(store, slug)) }
        if agents.isEmpty { print("no agents in \(slug)") }
        for agent in agents { print(describe(agent)) }
    }
}

struct UpdateAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update-agent", abstract: "Change an agent's backend, model, prompt or limits.")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Tenant slug.") var tenant: String
    @Option(help: "The agent's username.") var name: String
    @OptionGroup var options: AgentOptions

    func run() async throws {
        let (slug, name, options) = (tenant, self.name, self.options)
        let agent = try await withStore(db) { store in
            let id = try await tenantId(store, slug)
            let agent = try await agentNamed(store, tenantId: id, name)
            guard let updated = try await store.updateAgent(tenantId: id, userId: agent.id, settings: try options.apply(to: agent.settings)) else {
                throw ValidationError("no agent \(name) in \(slug)")
            }
            return updated
        }
        print("updated agent " + describe(agent))
    }
}

struct DeleteAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-agent", abstract: "Stop an agent: it answers no more; its user stays as the sender of what it said.")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Tenant slug.") var tenant: String
    @Option(help: "The agent's username.") var name: String

    func run() async throws {
        let (slug, name) = (tenant, self.name)
        try await withStore(db) { store in
            let id = try await tenantId(store, slug)
            _ = try await store.deleteAgent(tenantId: id, userId: try await agentNamed(store, tenantId: id, name).id)
        }
        print("deleted agent \(name) of \(slug)")
    }
}
