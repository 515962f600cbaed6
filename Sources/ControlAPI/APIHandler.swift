import CRealtime
import CellControl
import CellCore
import CellService
import ControlAPIClient
import Foundation
import Ledger
import Logging
import NIOCore
import NIOHTTP1
import PackML
import Synchronization

/// An answer ready to be written.
struct APIResponse {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []
    /// Close the connection after this answer.
    var close = false
    /// The panel's Content-Security-Policy for this answer, when not the panel's own (`PanelAssets.pagePolicy`).
    var contentSecurityPolicy: String?

    static func json<T: Encodable>(_ status: HTTPResponseStatus, _ value: T) -> APIResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)).map { Array($0) + [0x0A] } ?? Array("{}\n".utf8)
        return APIResponse(status: status, contentType: "application/json", body: body)
    }

    static func error(
        _ status: HTTPResponseStatus, _ word: String, _ message: String, state: String? = nil, mode: String? = nil
    ) -> APIResponse {
        json(status, APIErrorBody(status: Int(status.code), error: word, message: message, state: state, mode: mode))
    }
}

/// Who is at the other end of a connection, and so how commands are authorised.
enum APICaller {
    /// The Unix socket: the peer's credentials as the kernel recorded them at connect (root or the command group
    /// may command).
    case socket(PeerCredentials?)
    /// The operator panel over TCP: reading is open; commands need a login session and its CSRF token.
    case panel(PanelAccess, remote: String)
}

/// The HTTP side of one connection: request limits and deadline, routing, access control, the blocking jobs
/// (commands, ledger queries) on the thread pool, and Server-Sent Events for `/v1/watch`.
/// Thread: the connection's event loop only.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        /// Waiting for a request head (new or keep-alive connection).
        case idle
        /// Head received; collecting the body.
        case receiving
        /// The request is complete; its answer is being prepared or written.
        case responding
        /// An answer went out before the request ended (413, 408); the connection closes after it.
        case closing
        /// `/v1/watch`: events are being streamed.
        case streaming
    }

    private let shared: APIShared
    private let caller: APICaller
    private var phase = Phase.idle
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var deadline: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    // Watch state.
    private var watchIntervalNanoseconds: UInt64 = 0
    private var watchLastSignature: Int?
    private var watchLastSentNanoseconds: UInt64 = 0
    private var watchUnwritableSinceNanoseconds: UInt64?
    private var watchTask: Scheduled<Void>?

    init(shared: APIShared, caller: APICaller) {
        self.shared = shared
        self.caller = caller
    }

    /// The other end, for logs.
    private var peerDescription: String {
        switch caller {
        case .socket(let peer): peer?.description ?? "an unidentified peer"
        case .panel(_, let remote): "panel client \(remote)"
        }
    }

    private var isPanel: Bool {
        if case .panel = caller { return true }
        return false
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        watchTask?.cancel()
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            guard phase == .idle else { return }
            phase = .receiving
            head = requestHead
            body.clear()
            if let length = requestHead.headers.first(name: "content-length").flatMap({ Int($0) }),
                length > shared.configuration.maximumBodyBytes
            {
                answerEarly(
                    .error(
                        .payloadTooLarge, "payload_too_large",
                        "the request body is \(length) bytes; at most \(shared.configuration.maximumBodyBytes) are accepted"),
                    context: context)
            }
        case .body(var part):
            guard phase == .receiving else { return }
            if body.readableBytes + part.readableBytes > shared.configuration.maximumBodyBytes {
                answerEarly(
                    .error(
                        .payloadTooLarge, "payload_too_large",
                        "the request body exceeds \(shared.configuration.maximumBodyBytes) bytes"),
                    context: context)
                return
            }
            body.writeBuffer(&part)
        case .end:
            guard phase == .receiving, let requestHead = head else { return }
            deadline?.cancel()
            deadline = nil
            phase = .responding
            route(requestHead, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        guard phase == .idle || phase == .receiving else {
            context.close(promise: nil)
            return
        }
        let response: APIResponse
        switch parserError {
        case .headerOverflow:
            response = .error(
                .requestHeaderFieldsTooLarge, "headers_too_large",
                "the request line and headers exceed \(shared.configuration.maximumHeaderBytes) bytes or "
                    + "\(shared.configuration.maximumHeaderCount) fields")
        default:
            response = .error(.badRequest, "bad_request", "malformed HTTP request: \(parserError)")
        }
        answerEarly(response, context: context)
    }

    // MARK: - Deadline

    /// The next request must have arrived whole by the deadline.
    private func armDeadline(context: ChannelHandlerContext) {
        deadline?.cancel()
        let timeout = TimeAmount.milliseconds(shared.configuration.requestTimeoutMilliseconds)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            deadlinePassed()
        }
    }

    private func deadlinePassed() {
        guard let context else { return }
        switch phase {
        case .idle:
            // Nothing (or only part of a request line/headers) arrived: idle or slow client; close without a word
            // (the HTTP state allows no answer before a request head).
            shared.logger.debug("API: closing idle or slow connection (\(peerDescription))")
            context.close(promise: nil)
        case .receiving:
            answerEarly(
                .error(
                    .requestTimeout, "request_timeout",
                    "the request did not arrive within \(shared.configuration.requestTimeoutMilliseconds) ms"),
                context: context)
        case .responding, .closing, .streaming:
            break
        }
    }

    // MARK: - Answers

    /// Answers before the request is complete, then closes.
    private func answerEarly(_ response: APIResponse, context: ChannelHandlerContext) {
        guard phase == .idle || phase == .receiving else { return }
        deadline?.cancel()
        phase = .closing
        var closing = response
        closing.close = true
        write(closing, keepAlive: false, context: context)
    }

    private func respond(_ response: APIResponse) {
        guard let context, phase == .responding else { return }
        let keepAlive = (head?.isKeepAlive ?? false) && !response.close
        write(response, keepAlive: keepAlive, context: context)
        if keepAlive {
            phase = .idle
            head = nil
            armDeadline(context: context)
        } else {
            phase = .closing
        }
    }

    private func write(_ response: APIResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if isPanel {
            PanelAssets.addSecurityHeaders(&headers, contentSecurityPolicy: response.contentSecurityPolicy)
        }
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let version = head?.version ?? .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
        shared.countAnswer(response.status)
    }

    // MARK: - Routing

    private func route(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard let components = URLComponents(string: request.uri), request.uri.hasPrefix("/") else {
            respond(.error(.badRequest, "bad_request", "malformed request target: \(request.uri)"))
            return
        }
        let path = components.path
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let query = components.queryItems ?? []
        let method = request.method

        func only(_ allowed: [HTTPMethod], _ handle: () -> Void) {
            if allowed.contains(method) {
                handle()
            } else {
                var response = APIResponse.error(
                    .methodNotAllowed, "method_not_allowed",
                    "\(method.rawValue) is not allowed on \(path); allowed: \(allowed.map(\.rawValue).joined(separator: ", "))")
                response.headers.append(("Allow", allowed.map(\.rawValue).joined(separator: ", ")))
                respond(response)
            }
        }

        if case .panel(let access, _) = caller {
            let host = request.headers.first(name: "host")
            guard PanelAccess.isAllowedHost(host) else {
                respond(
                    .error(
                        .misdirectedRequest, "misdirected_request",
                        "the panel answers requests to its IP address or localhost, not to Host \(host ?? "(none)")"))
                return
            }
            if routePanel(segments, method: method, access: access, only: only) { return }
        }
        switch segments {
        case ["v1", "status"]:
            only([.GET]) { respond(statusResponse()) }
        case ["v1", "watch"]:
            only([.GET]) { startWatch(query: query, context: context) }
        case ["metrics"]:
            only([.GET]) { respond(metricsResponse()) }
        case ["v1", "lamps"]:
            only([.GET]) { queryLamps(query) }
        case ["v1", "cell"]:
            only([.GET]) {
                if let description = shared.cellDescription {
                    respond(.json(.ok, description))
                } else {
                    respond(.error(.serviceUnavailable, "unavailable", "the cell's description is not attached to the API"))
                }
            }
        case ["v1", "cycletimes"]:
            only([.GET]) { respond(.json(.ok, shared.status.recentCycleTimes())) }
        case ["v1", "alarms"]:
            only([.GET]) { alarms(query) }
        case ["v1", "report"]:
            only([.GET]) { report(query) }
        case let parts where parts.count == 3 && parts[0] == "v1" && parts[1] == "lamps":
            only([.GET]) { lamp(serial: parts[2]) }
        case let parts where parts.count == 3 && parts[0] == "v1" && parts[1] == "commands":
            guard let command = PackMLCommand.allCases.first(where: { $0.description.lowercased() == parts[2] }) else {
                respond(
                    .error(
                        .notFound, "not_found",
                        "no such command: \(parts[2]); commands: \(CommandWord.all.joined(separator: ", "))"))
                return
            }
            only([.POST]) { authorized { submit(.command(command), describing: command.description, actor: $0) } }
        case let parts where parts.count == 3 && parts[0] == "v1" && parts[1] == "mode":
            guard let mode = UnitMode.allCases.first(where: { $0.description.lowercased() == parts[2] }) else {
                respond(
                    .error(
                        .notFound, "not_found", "no such mode: \(parts[2]); modes: \(ModeWord.all.joined(separator: ", "))"))
                return
            }
            only([.POST]) { authorized { submit(.mode(mode), describing: "mode \(mode.description)", actor: $0) } }
        case ["v1", "order"]:
            only([.POST, .DELETE]) {
                authorized { actor in
                    if method == .DELETE {
                        submit(.cancelOrder, describing: "cancel order", actor: actor)
                    } else {
                        placeOrder(actor: actor)
                    }
                }
            }
        default:
            respond(.error(.notFound, "not_found", "no such path: \(path)"))
        }
    }

    /// Answers 403 to a request a page of another site sent (`origin`), and logs it.
    private func refuseCrossSite(_ origin: String) {
        shared.logger.warning("API: cross-site request from \(origin) refused (\(peerDescription))")
        respond(.error(.forbidden, "forbidden", "cross-site request refused: Origin \(origin) is not this panel"))
    }

    /// Runs `body` with the name of who commands when the caller may command the cell; answers 401/403 else.
    private func authorized(_ body: (String) -> Void) {
        if case .panel(let access, let remote) = caller {
            switch access.authorize(head?.headers ?? HTTPHeaders()) {
            case .success(let session):
                body("\(session.operatorName) (panel \(remote))")
            case .failure(.crossSite(let origin)):
                refuseCrossSite(origin)
            case .failure(.noSession):
                respond(
                    .error(
                        .unauthorized, "unauthorized",
                        "commanding the cell from the panel needs an operator login (POST /v1/session)"))
            case .failure(.badToken):
                respond(
                    .error(
                        .forbidden, "forbidden",
                        "the request lacks the session's \(PanelAccess.csrfHeader) header (cross-site request forgery?)"))
            }
            return
        }
        guard case .socket(let peer) = caller, let peer, shared.policy.allows(peer) else {
            var who = "an unidentified peer"
            if case .socket(let peer?) = caller { who = "uid \(peer.userID)" }
            respond(
                .error(
                    .forbidden, "forbidden",
                    "commanding the cell needs root or membership in group '\(shared.policy.groupName)'"
                        + (shared.policy.groupID == nil ? " (which does not exist on this system)" : "")
                        + "; you are \(who)"))
            return
        }
        body(peer.description)
    }

    private func statusResponse() -> APIResponse {
        APIResponse(status: .ok, contentType: "application/json", body: shared.status.current().json + [0x0A])
    }

    private func metricsResponse() -> APIResponse {
        let document = shared.status.current().document
        return APIResponse(
            status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
            body: shared.metrics.render(document, openConnections: shared.openConnections))
    }

    // MARK: - Commands and orders (blocking: thread pool)

    private func placeOrder(actor: String) {
        let order: OrderRequestBody
        do {
            order = try JSONDecoder().decode(OrderRequestBody.self, from: Data(body.readableBytesView))
        } catch {
            respond(.error(.badRequest, "bad_request", "order body: \(Self.describe(error))"))
            return
        }
        guard let variant = Variant.allCases.first(where: { $0.name == order.variant.uppercased() }) else {
            respond(.error(.badRequest, "bad_request", "order body: field 'variant' is \(order.variant); expected LEFT or RIGHT"))
            return
        }
        guard order.quantity >= 1, order.quantity <= Int(UInt32.max) else {
            respond(.error(.badRequest, "bad_request", "order body: field 'quantity' is \(order.quantity); expected 1…\(UInt32.max)"))
            return
        }
        guard let recipeIndex = shared.recipeVariants.firstIndex(of: variant) else {
            respond(.error(.badRequest, "bad_request", "order body: the cell has no recipe for variant \(variant.name)"))
            return
        }
        let production: ProductionOrder
        do {
            production = try ProductionOrder(id: order.id, variantCode: variant.rawValue, quantity: UInt32(order.quantity))
        } catch {
            respond(.error(.badRequest, "bad_request", error.description))
            return
        }
        submit(.order(production, recipeIndex: recipeIndex), describing: "order \(order.id)", actor: actor)
    }

    /// Runs `request` on the thread pool (it waits for the control thread's reply) and answers 200, 409 or 503.
    /// Every command, mode change and order is logged with who asked and what came of it, and recorded in the
    /// event history with the same words.
    private func submit(_ request: ControllerRequest, describing what: String, actor who: String) {
        let cell = shared.cell
        let shared = self.shared
        runBlocking {
            let startedNanoseconds = Int64(lampcell_realtime_ns())
            func record(_ outcome: String) {
                shared.logger.notice("API: \(what) by \(who): \(outcome)")
                shared.recordEvent(
                    CellEvent(
                        kind: .command, code: what, source: "cell", message: "\(what) by \(who)", detail: outcome,
                        actor: who, startedWallNanoseconds: startedNanoseconds, endedWallNanoseconds: startedNanoseconds))
            }
            guard let reply = cell.request(request) else {
                record("no answer from the control thread")
                return APIResponse.error(
                    .serviceUnavailable, "unavailable",
                    "the control thread did not answer \(what) within \(cell.requestTimeoutNanoseconds / 1_000_000) ms")
            }
            let unit = Self.snapshotAfterReply(cell).unit
            if let refusal = reply.refusal {
                record("refused: \(refusal.description)")
                return APIResponse.error(
                    .conflict, "refused", refusal.description, state: refusal.state.description,
                    mode: refusal.mode.description)
            }
            if let message = reply.message {
                record("refused: \(message)")
                return APIResponse.error(
                    .conflict, "refused", "\(what) is refused: \(message)", state: unit.state.description,
                    mode: unit.machine.mode.description)
            }
            record("accepted, state \(unit.state.description), mode \(unit.machine.mode.description)")
            return APIResponse.json(.ok, AcceptedBody(accepted: true, request: what, state: unit.state.description))
        }
    }

    /// The first snapshot published after the period that answered: the reply is queued during the step, the
    /// snapshot of that period only at its end. Waits at most `maximumWaitPeriods` periods. Blocking-job threads.
    static func snapshotAfterReply(_ cell: any ControlledCell) -> CellSnapshot {
        let maximumWaitPeriods: UInt64 = 3
        let seen = cell.snapshot().periodIndex
        let deadline = lampcell_monotonic_ns() + maximumWaitPeriods * cell.periodNanoseconds
        while lampcell_monotonic_ns() < deadline {
            let snapshot = cell.snapshot()
            if snapshot.periodIndex > seen { return snapshot }
            usleep(500)
        }
        return cell.snapshot()
    }

    private func runBlocking(_ job: @escaping @Sendable () -> APIResponse) {
        guard let context else { return }
        guard shared.beginBlockingJob() else {
            respond(.error(.serviceUnavailable, "busy", "too many requests are waiting for the controller or the ledger; try again"))
            return
        }
        let shared = self.shared
        let future = shared.threadPool.runIfActive(eventLoop: context.eventLoop) { () -> APIResponse in
            defer { shared.endBlockingJob() }
            APIServer.lowerPriority(shared.configuration.threadNice)
            return job()
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let response): respond(response)
            case .failure(let error):
                respond(.error(.serviceUnavailable, "unavailable", "the API is shutting down: \(error)"))
            }
        }
    }

    // MARK: - Lamps (blocking: thread pool)

    private func lamp(serial: String) {
        guard let lamps = shared.lamps else {
            respond(.error(.serviceUnavailable, "unavailable", "no lamp ledger is attached to the API"))
            return
        }
        runBlocking {
            do {
                guard let row = try lamps.lamp(serial: serial) else {
                    return .error(.notFound, "not_found", "no lamp with serial \(serial) in the ledger")
                }
                return .json(.ok, row)
            } catch {
                return .error(.serviceUnavailable, "unavailable", "ledger: \(error)")
            }
        }
    }

    private func queryLamps(_ items: [URLQueryItem]) {
        var query = LampQuery()
        for item in items {
            let value = item.value ?? ""
            switch item.name {
            case "lot":
                guard let lot = UInt32(value) else {
                    respond(.error(.badRequest, "bad_request", "query parameter 'lot' is \(value); expected a lot number"))
                    return
                }
                query.lot = lot
            case "from", "to":
                guard let time = time(item) else { return }
                if item.name == "from" { query.fromWallNanoseconds = time } else { query.toWallNanoseconds = time }
            case "verdict":
                guard let verdict = [LampVerdict.ok, .ng, .scrapped].first(where: { $0.name == value.uppercased() }) else {
                    respond(.error(.badRequest, "bad_request", "query parameter 'verdict' is \(value); expected OK, NG or SCRAPPED"))
                    return
                }
                query.verdict = verdict
            case "limit":
                guard let limit = Int(value), (1...LampQuery.maximumLimit).contains(limit) else {
                    respond(.error(.badRequest, "bad_request", "query parameter 'limit' is \(value); expected 1…\(LampQuery.maximumLimit)"))
                    return
                }
                query.limit = limit
            default:
                respond(
                    .error(
                        .badRequest, "bad_request",
                        "unknown query parameter '\(item.name)'; known: lot, from, to, verdict, limit"))
                return
            }
        }
        guard let lamps = shared.lamps else {
            respond(.error(.serviceUnavailable, "unavailable", "no lamp ledger is attached to the API"))
            return
        }
        let finalQuery = query
        runBlocking {
            do {
                return .json(.ok, try Array(lamps.lamps(matching: finalQuery).prefix(finalQuery.limit)))
            } catch {
                return .error(.serviceUnavailable, "unavailable", "ledger: \(error)")
            }
        }
    }

    // MARK: - Alarm history and the shift report (blocking: thread pool)

    /// A time query parameter (`from`, `to`) in wall ns; answers 400 naming it and returns nil when it is none.
    private func time(_ item: URLQueryItem) -> UInt64? {
        if let time = RFC3339.wallNanoseconds(item.value ?? "") { return time }
        respond(
            .error(
                .badRequest, "bad_request",
                "query parameter '\(item.name)' is \(item.value ?? ""); expected RFC 3339 (2026-11-28T09:00:00Z), a date or Unix seconds, 1970…2099"))
        return nil
    }

    /// The window of `from`/`to` query parameters (RFC 3339, a date or Unix seconds); by default the last
    /// `defaultWindowHours` up to now. Answers 400 and returns nil on a bad parameter.
    private func window(_ items: [URLQueryItem], defaultWindowHours: UInt64) -> (from: UInt64, to: UInt64)? {
        let now = lampcell_realtime_ns()
        var from = now - defaultWindowHours * 3_600_000_000_000
        var to = now
        for item in items {
            guard item.name == "from" || item.name == "to" else {
                respond(.error(.badRequest, "bad_request", "unknown query parameter '\(item.name)'; known: from, to"))
                return nil
            }
            guard let time = time(item) else { return nil }
            if item.name == "from" { from = time } else { to = time }
        }
        guard from < to else {
            respond(.error(.badRequest, "bad_request", "query parameters: 'from' must be before 'to'"))
            return nil
        }
        return (from, to)
    }

    private func alarms(_ items: [URLQueryItem]) {
        guard let history = shared.events else {
            respond(.error(.serviceUnavailable, "unavailable", "no event history is attached to the API"))
            return
        }
        guard let (from, to) = window(items, defaultWindowHours: Self.defaultWindowHours) else { return }
        runBlocking {
            do {
                let now = Int64(lampcell_realtime_ns())
                let entry = { (event: CellEvent) in Self.historyEntry(event, now: now) }
                let pareto = try history.stopPareto(
                    fromWallNanoseconds: Int64(from), toWallNanoseconds: Int64(to), nowWallNanoseconds: now)
                let total = pareto.reduce(0) { $0 + $1.downtimeSeconds }
                var cumulative = 0.0
                let rows = pareto.map { row -> AlarmsDocument.ParetoRow in
                    cumulative += row.downtimeSeconds
                    return AlarmsDocument.ParetoRow(
                        code: row.code, message: row.message, stops: row.stops, downtimeSeconds: row.downtimeSeconds,
                        cumulativeShare: total > 0 ? cumulative / total : 0)
                }
                let document = AlarmsDocument(
                    from: RFC3339.text(wallNanoseconds: from), to: RFC3339.text(wallNanoseconds: to),
                    active: try history.active().map(entry),
                    history: try history.events(
                        fromWallNanoseconds: Int64(from), toWallNanoseconds: Int64(to),
                        kinds: [.alarm, .stop, .command, .login], limit: Self.maximumHistoryRows
                    ).map(entry),
                    pareto: rows)
                return .json(.ok, document)
            } catch {
                return .error(.serviceUnavailable, "unavailable", "event history: \(error)")
            }
        }
    }

    /// History rows `GET /v1/alarms` returns at most (newest first).
    static let maximumHistoryRows = 500
    /// The window of `/v1/alarms` and `/v1/report` without `from`: the last hours of a shift.
    static let defaultWindowHours: UInt64 = 8
    /// The longest window `/v1/report` reads (a month of lamps is about 100,000 ledger rows).
    static let maximumReportWindowDays: UInt64 = 31

    /// One history row as the API shows it; active alarms and stops last until `now` (wall ns). Any thread.
    static func historyEntry(_ event: CellEvent, now: Int64) -> HistoryEntry {
        HistoryEntry(
            kind: event.kind.rawValue, code: event.code, source: event.source, message: event.message,
            detail: event.detail, actor: event.actor,
            startedAt: RFC3339.text(wallNanoseconds: UInt64(max(0, event.startedWallNanoseconds))),
            endedAt: event.endedWallNanoseconds.map { RFC3339.text(wallNanoseconds: UInt64(max(0, $0))) },
            durationSeconds: event.durationSeconds(nowWallNanoseconds: now))
    }

    private func report(_ items: [URLQueryItem]) {
        guard let reports = shared.reports else {
            respond(.error(.serviceUnavailable, "unavailable", "no shift report source is attached to the API"))
            return
        }
        guard let (from, to) = window(items, defaultWindowHours: Self.defaultWindowHours) else { return }
        guard to - from <= Self.maximumReportWindowDays * 86_400_000_000_000 else {
            respond(
                .error(.badRequest, "bad_request", "a report covers at most \(Self.maximumReportWindowDays) days; ask for a shorter window"))
            return
        }
        runBlocking {
            do {
                let html = try reports(from, to)
                var response = APIResponse(status: .ok, contentType: "text/html; charset=utf-8", body: Array(html.utf8))
                response.contentSecurityPolicy = PanelAssets.reportPolicy
                return response
            } catch {
                return .error(.serviceUnavailable, "unavailable", "shift report: \(error)")
            }
        }
    }

    // MARK: - Panel: assets and login (TCP only)

    /// Routes what only the panel serves (its page, script and style; the login session); returns false for the
    /// common API routes. Event loop.
    private func routePanel(
        _ segments: [String], method: HTTPMethod, access: PanelAccess, only: ([HTTPMethod], () -> Void) -> Void
    ) -> Bool {
        switch segments {
        case []:
            only([.GET]) {
                var response = APIResponse(status: .seeOther, contentType: "text/plain", body: Array("/hmi/\n".utf8))
                response.headers.append(("Location", "/hmi/"))
                respond(response)
            }
        case ["hmi"], ["hmi", "index.html"]:
            only([.GET]) { respond(APIResponse(status: .ok, contentType: "text/html; charset=utf-8", body: PanelAssets.page)) }
        case ["hmi", "panel.js"]:
            only([.GET]) {
                respond(APIResponse(status: .ok, contentType: "text/javascript; charset=utf-8", body: PanelAssets.script))
            }
        case ["hmi", "panel.css"]:
            only([.GET]) { respond(APIResponse(status: .ok, contentType: "text/css; charset=utf-8", body: PanelAssets.style)) }
        case ["v1", "session"]:
            only([.GET, .POST, .DELETE]) { session(method: method, access: access) }
        default:
            return false
        }
        return true
    }

    private func session(method: HTTPMethod, access: PanelAccess) {
        let headers = head?.headers ?? HTTPHeaders()
        let idleSeconds = access.configuration.sessionIdleSeconds
        switch method {
        case .GET:
            guard let session = access.session(headers) else {
                respond(.error(.unauthorized, "unauthorized", "no operator is logged in on this panel"))
                return
            }
            respond(
                .json(
                    .ok,
                    SessionBody(operator: session.operatorName, csrfToken: session.csrfToken, idleTimeoutSeconds: idleSeconds)))
        case .DELETE:
            if let origin = PanelAccess.foreignOrigin(headers) {
                refuseCrossSite(origin)
                return
            }
            if let name = access.logout(headers) {
                shared.logger.notice("API: operator \(name) logged out (\(peerDescription))")
                let now = Int64(lampcell_realtime_ns())
                let shared = self.shared
                let remote = peerDescription
                runBlocking {
                    shared.recordEvent(
                        CellEvent(
                            kind: .login, code: "logout", source: "panel", message: "\(name) logged out",
                            detail: remote, actor: name, startedWallNanoseconds: now, endedWallNanoseconds: now))
                    var response = APIResponse.json(.ok, ["loggedOut": name])
                    response.headers.append(("Set-Cookie", PanelAccess.expiredCookie))
                    return response
                }
            } else {
                var response = APIResponse.json(.ok, ["loggedOut": ""])
                response.headers.append(("Set-Cookie", PanelAccess.expiredCookie))
                respond(response)
            }
        default:
            if let origin = PanelAccess.foreignOrigin(headers) {
                refuseCrossSite(origin)
                return
            }
            let login: LoginRequestBody
            do {
                login = try JSONDecoder().decode(LoginRequestBody.self, from: Data(body.readableBytesView))
            } catch {
                respond(.error(.badRequest, "bad_request", "login body: \(Self.describe(error))"))
                return
            }
            let shared = self.shared
            let remote = peerDescription
            guard case .panel(_, let address) = caller else { return }
            runBlocking {
                let now = Int64(lampcell_realtime_ns())
                do throws(OperatorAccountsError) {
                    let (token, session) = try access.login(name: login.operator, password: login.password, remote: address)
                    shared.logger.notice("API: operator \(login.operator) logged in (\(remote))")
                    shared.recordEvent(
                        CellEvent(
                            kind: .login, code: "login", source: "panel", message: "\(login.operator) logged in",
                            detail: remote, actor: login.operator, startedWallNanoseconds: now, endedWallNanoseconds: now))
                    var response = APIResponse.json(
                        .ok,
                        SessionBody(operator: session.operatorName, csrfToken: session.csrfToken, idleTimeoutSeconds: idleSeconds))
                    response.headers.append(("Set-Cookie", PanelAccess.sessionCookie(token)))
                    return response
                } catch {
                    let name = OperatorAccounts.nameProblem(login.operator) == nil ? login.operator : "(invalid name)"
                    shared.logger.warning("API: login of \(name) refused: \(error) (\(remote))")
                    shared.recordEvent(
                        CellEvent(
                            kind: .login, code: "login_refused", source: "panel", message: "login of \(name) refused",
                            detail: "\(error.description) (\(remote))", actor: name, startedWallNanoseconds: now,
                            endedWallNanoseconds: now))
                    return .error(.unauthorized, "unauthorized", error.description)
                }
            }
        }
    }

    // MARK: - Watch (Server-Sent Events)

    private func startWatch(query: [URLQueryItem], context: ChannelHandlerContext) {
        let configuration = shared.configuration
        var interval = configuration.watchDefaultIntervalMilliseconds
        for item in query {
            guard item.name == "interval_ms" else {
                respond(.error(.badRequest, "bad_request", "unknown query parameter '\(item.name)'; known: interval_ms"))
                return
            }
            let range = configuration.watchMinimumIntervalMilliseconds...configuration.watchMaximumIntervalMilliseconds
            guard let value = Int64(item.value ?? ""), range.contains(value) else {
                respond(
                    .error(
                        .badRequest, "bad_request",
                        "query parameter 'interval_ms' is \(item.value ?? ""); expected \(range.lowerBound)…\(range.upperBound)"))
                return
            }
            interval = value
        }
        phase = .streaming
        watchIntervalNanoseconds = UInt64(interval) * 1_000_000
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/event-stream")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "keep-alive")
        headers.add(name: "X-Accel-Buffering", value: "no")
        let version = head?.version ?? .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        var hello = context.channel.allocator.buffer(capacity: 64)
        hello.writeString("retry: 1000\n: lampcell watch, at most one event every \(interval) ms\n\n")
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(hello))), promise: nil)
        shared.countAnswer(.ok)
        watchTick()
    }

    private func watchTick() {
        guard let context, phase == .streaming else { return }
        let now = lampcell_monotonic_ns()
        if !context.channel.isWritable {
            // The client does not read: skip events; drop it once it has stalled too long.
            let since = watchUnwritableSinceNanoseconds ?? now
            watchUnwritableSinceNanoseconds = since
            if now - since > UInt64(shared.configuration.watchStalledClientMilliseconds) * 1_000_000 {
                shared.logger.debug("API: dropping a stalled watcher (\(peerDescription))")
                context.close(promise: nil)
                return
            }
        } else {
            watchUnwritableSinceNanoseconds = nil
            let published = shared.status.current()
            var event: ByteBuffer?
            if published.signature != watchLastSignature {
                var buffer = context.channel.allocator.buffer(capacity: published.json.count + 32)
                buffer.writeString("event: status\ndata: ")
                buffer.writeBytes(published.json)
                buffer.writeString("\n\n")
                event = buffer
                watchLastSignature = published.signature
            } else if now - watchLastSentNanoseconds > UInt64(shared.configuration.watchKeepAliveMilliseconds) * 1_000_000 {
                var buffer = context.channel.allocator.buffer(capacity: 16)
                buffer.writeString(": keep-alive\n\n")
                event = buffer
            }
            if let event {
                watchLastSentNanoseconds = now
                shared.countWatchEvent()
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(event)))).whenFailure { [channel = context.channel] _ in
                    channel.close(promise: nil)
                }
            }
        }
        watchTask = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(watchIntervalNanoseconds))) {
            [self] in
            watchTick()
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "field '\(key.stringValue)' is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "field '\(field)' has the wrong type (\(context.debugDescription))"
        case DecodingError.dataCorrupted(let context):
            return "not valid JSON (\(context.underlyingError.map { "\($0)" } ?? context.debugDescription))"
        default:
            return "\(error)"
        }
    }
}
