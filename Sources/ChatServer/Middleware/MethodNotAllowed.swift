import HTTPTypes
import Hummingbird

/// A known path called with a method it does not support: 405 with `Allow` (RFC 9110), not 404.
struct MethodNotAllowed: Error {
    let allow: [String]

    var allowHeader: String { allow.joined(separator: ", ") }
}

/// Turns the router's "no route" into 405 when the path exists for other methods. Added to the router after every
/// route, so it wraps only the router's not-found answer, never a handler's own 404.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each served path pattern with its methods; HEAD is served wherever GET is (the router generates it).
    private let routes: [(pattern: [RouterPath.Element], methods: Set<HTTPRequest.Method>)]

    init(routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: (pattern: [RouterPath.Element], methods: Set<HTTPRequest.Method>)] = [:]
        for route in routes {
            byPath[route.path.description, default: (route.path.components, [])].methods.insert(route.method)
            if route.method == .get { byPath[route.path.description]!.methods.insert(.head) }
        }
        self.routes = Array(byPath.values)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let methods = allowedMethods(path: request.uri.path), !methods.contains(request.method) else { throw error }
            let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
            throw MethodNotAllowed(allow: order.filter(methods.contains).map(\.rawValue))
        }
    }

    /// The methods of the route the router would pick for `path` (literal segments beat captures, left to right).
    func allowedMethods(path: String) -> Set<HTTPRequest.Method>? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: (rank: [Bool], methods: Set<HTTPRequest.Method>)?
        for route in routes where route.pattern.count == segments.count {
            var rank: [Bool] = []
            var matches = true
            for (element, segment) in zip(route.pattern, segments) {
                if element.description.hasPrefix("{") {  // a capture, `{name}`
                    rank.append(false)
                } else if element == segment {
                    rank.append(true)
                } else {
                    matches = false
                    break
                }
            }
            guard matches else { continue }
            if let current = best {
                if current.rank == rank {
                    best!.methods.formUnion(route.methods)
                    continue
                }
                // A literal segment outranks a capture at the first place they differ.
                if !current.rank.lexicographicallyPrecedes(rank, by: { !$0 && $1 }) { continue }
            }
            best = (rank, route.methods)
        }
        return best?.methods
    }
}
