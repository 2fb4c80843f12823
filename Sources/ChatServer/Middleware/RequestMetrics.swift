import Dispatch
import HTTPTypes
import Hummingbird
import Metrics
import Synchronization

/// Request metrics under the names and labels of Hummingbird's `MetricsMiddleware` (`hb.requests`,
/// `http.server.request.duration`, `hb.request.errors`, `http.server.active_requests`), timed until the answer is
/// ready instead of until it is written.
///
/// Hummingbird's middleware wraps every body in a closure to time its write, and an answer whose body is a closure
/// is written as three parts, each its own hop to the event loop and its own flush, where a one-buffer answer is
/// written in one: with metrics on, `/health` served a third fewer requests per second (BENCHMARKS, session 11).
/// An answer streamed with no length (SSE) is still timed to its end, and leaves the active count then.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let cache = RequestMetricsCache()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let active = cache.active(request.method)
        active.increment()
        do {
            var response = try await next(request, context)
            let endpoint = cache.endpoint(.init(route: context.endpointPath ?? "Unknown", method: request.method, status: response.status))
            guard response.body.contentLength == nil else {
                endpoint.record(since: start)
                active.decrement()
                return response
            }
            let body = response.body
            response.body = ResponseBody { writer in
                defer {
                    endpoint.record(since: start)
                    active.decrement()
                }
                try await body.write(writer)
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            cache.endpoint(.init(route: context.endpointPath ?? "NotFound", method: request.method, status: status)).recordError()
            active.decrement()
            throw error
        }
    }
}

/// The metric objects of each method and each route, method and status, made once (a lookup in the metrics
/// backend per request would cost more than the recording).
final class RequestMetricsCache: Sendable {
    struct Key: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: HTTPResponse.Status
    }

    struct Endpoint: Sendable {
        let requests: Counter
        let duration: Timer
        let errors: Counter

        init(_ key: Key) {
            let dimensions = [("http.route", key.route), ("http.request.method", key.method.rawValue)]
            requests = Counter(label: "hb.requests", dimensions: dimensions + [("http.response.status_code", String(key.status.code))])
            duration = Timer(
                label: "http.server.request.duration", dimensions: dimensions + [("http.response.status_code", String(key.status.code))],
                preferredDisplayUnit: .seconds)
            errors = Counter(label: "hb.request.errors", dimensions: dimensions + [("error.type", String(key.status.code))])
        }

        func record(since start: UInt64) {
            requests.increment()
            duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        }

        func recordError() {
            requests.increment()
            errors.increment()
        }
    }

    private let endpoints = Mutex<[Key: Endpoint]>([:])
    private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])

    func endpoint(_ key: Key) -> Endpoint {
        endpoints.withLock { cache in
            if let endpoint = cache[key] { return endpoint }
            let endpoint = Endpoint(key)
            cache[key] = endpoint
            return endpoint
        }
    }

    func active(_ method: HTTPRequest.Method) -> Meter {
        methods.withLock { cache in
            if let meter = cache[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
            cache[method] = meter
            return meter
        }
    }
}
