import CofferProtocol
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One `/ws` connection (SPEC.md §9): AUTH first (within the configured time, else closed), then
/// SYNC_REQUEST, ITEM_UPDATED pushes applied exactly like HTTP pushes, PING, and AUTH again with
/// a renewed token before the last one expires. Everything the
/// server sends after AUTH goes through the socket's bounded outbox, in order.
struct RealtimeController: Sendable {
    let hub: RealtimeHub
    let authenticator: SessionAuthenticator
    let sync: SyncController
    let store: any Store
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp

    func handle(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, channel: any Channel, logger: Logger) async {
        let session = SocketSession()
        // On shutdown every socket is closed (1001), so clients reconnect elsewhere and the
        // server does not wait on them.
        await withGracefulShutdownHandler {
            await serve(inbound, outbound, session: session, disconnect: { channel.close(promise: nil) }, logger: logger)
        } onGracefulShutdown: {
            if let subscriber = session.subscriber {
                subscriber.outbox.close(.shuttingDown)
            } else {
                Task { try? await outbound.close(.goingAway, reason: "server shutting down") }
            }
        }
    }

    private func serve(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, session: SocketSession, disconnect: @escaping @Sendable () -> Void,
        logger: Logger
    ) async {
        await withTaskGroup(of: Void.self) { group in
            // Watchdog: a socket that has not authenticated in time is closed.
            group.addTask {
                // Clamped before the conversion, which would trap on a huge or non-finite setting.
                let timeout = configuration.realtimeAuthTimeout
                try? await Task.sleep(for: .milliseconds(Int64(timeout.isFinite ? min(max(timeout, 0), 86_400) * 1000 : 0)))
                guard !Task.isCancelled, session.subscriber == nil else { return }
                try? await outbound.write(.text(Self.text(RealtimeServerMessage(type: RealtimeType.authFailed, code: "auth_timeout", error: "send AUTH within \(configuration.realtimeAuthTimeout) s"))))
                try? await outbound.close(.policyViolation, reason: "authentication timed out")
            }
            do {
                for try await message in inbound.messages(maxSize: configuration.maxSyncRequestBody) {
                    guard case .text(let text) = message, let decoded = Self.decode(text) else {
                        let error = Self.text(Self.refusal(message))
                        if let subscriber = session.subscriber {
                            subscriber.send(error)
                        } else {
                            try await outbound.write(.text(error))
                        }
                        continue
                    }
                    guard let subscriber = session.subscriber else {
                        guard let subscriber = try await authenticate(decoded, outbound: outbound, disconnect: disconnect) else { break }
                        session.subscriber = subscriber
                        startWriting(subscriber, outbound: outbound, group: &group)
                        expireWithToken(subscriber, group: &group)
                        continue
                    }
                    await handle(decoded, subscriber: subscriber)
                }
            } catch {
                logger.debug("socket ended", metadata: ["error": "\(String(reflecting: error))"])
            }
            if let subscriber = session.subscriber {
                subscriber.outbox.close(.normal)
                hub.remove(subscriber)
            }
            group.cancelAll()
        }
    }

    /// AUTH: a valid token of an active session, from the device it was issued to.
    private func authenticate(
        _ message: RealtimeClientMessage, outbound: WebSocketOutboundWriter, disconnect: @escaping @Sendable () -> Void
    ) async throws -> RealtimeHub.Subscriber? {
        func fail(_ code: String, _ error: String) async throws -> RealtimeHub.Subscriber? {
            try await outbound.write(.text(Self.text(RealtimeServerMessage(type: RealtimeType.authFailed, code: code, error: error))))
            try await outbound.close(.policyViolation, reason: "authentication failed")
            return nil
        }
        guard message.type == RealtimeType.auth, let token = message.token else {
            return try await fail("auth_required", "the first message must be AUTH with a token")
        }
        let identity: AuthIdentity
        let expiresAt: Timestamp
        do {
            (identity, expiresAt) = try await authenticator.authenticate(token: token)
        } catch {
            return try await fail("unauthorized", "the access token is invalid or expired, or its session has ended")
        }
        guard message.deviceId == nil || message.deviceId?.lowercased() == identity.deviceId else {
            return try await fail("unauthorized", "deviceId is not the device this token was issued to")
        }
        // Where each of the user's vaults stands now: a later catch-up starts there.
        hub.noteRevisions(Dictionary(try await store.vaults(userId: identity.userId).map { ($0.id, $0.revision) }, uniquingKeysWith: max))
        let subscriber = hub.add(identity, tokenExpiresAt: expiresAt, queueLimit: configuration.realtimeQueueLimit, disconnect: disconnect)
        subscriber.send(Self.text(RealtimeServerMessage(type: RealtimeType.authSuccess, userId: identity.userId)))
        return subscriber
    }

    /// AUTH again on an open socket, before its token expires: a renewed token of the same
    /// session and device moves the socket's expiry, so a long-running client stays connected.
    /// Any other token ends the socket, as a failed first AUTH would.
    private func reauthenticate(_ message: RealtimeClientMessage, subscriber: RealtimeHub.Subscriber) async {
        guard let token = message.token else {
            subscriber.send(Self.text(Self.error("invalid_field", "AUTH needs a token")))
            return
        }
        let renewed = try? await authenticator.authenticate(token: token)
        guard let renewed, renewed.0 == subscriber.identity, message.deviceId == nil || message.deviceId?.lowercased() == renewed.0.deviceId else {
            let text = Self.text(
                RealtimeServerMessage(
                    type: RealtimeType.authFailed, code: "unauthorized",
                    error: "the access token is invalid or expired, its session has ended, or it is not this socket's session"
                )
            )
            subscriber.end(.authenticationFailed, last: text)
            return
        }
        subscriber.extendToken(until: renewed.expiresAt)
        subscriber.send(Self.text(RealtimeServerMessage(type: RealtimeType.authSuccess, userId: renewed.0.userId)))
    }

    /// The socket lives no longer than the newest token presented on it: SESSION_REVOKED
    /// `token_expired`, then close, unless a renewed AUTH moved the expiry meanwhile.
    private func expireWithToken(_ subscriber: RealtimeHub.Subscriber, group: inout TaskGroup<Void>) {
        group.addTask { [hub, clock] in
            var expiresAt = subscriber.tokenExpiresAt
            var remaining = max(0, clock().milliseconds(until: expiresAt))
            while true {
                try? await Task.sleep(for: .milliseconds(remaining))
                if Task.isCancelled { return }
                let extended = subscriber.tokenExpiresAt
                guard extended > expiresAt else { break }
                // Counted from the old expiry, not read from the clock (which stands still in tests).
                remaining = expiresAt.milliseconds(until: extended)
                expiresAt = extended
            }
            hub.expire(subscriber)
        }
    }

    /// Drains the outbox into the socket; when the outbox ends for a reason, closes the socket.
    private func startWriting(_ subscriber: RealtimeHub.Subscriber, outbound: WebSocketOutboundWriter, group: inout TaskGroup<Void>) {
        group.addTask {
            for await text in subscriber.outbox.stream {
                do {
                    try await outbound.write(.text(text))
                } catch {
                    break
                }
                subscriber.outbox.sent(text)
            }
            switch subscriber.outbox.ending {
            case .tooSlow: try? await outbound.close(.policyViolation, reason: "too slow: the outbound queue passed its limit")
            case .sessionEnded: try? await outbound.close(.policyViolation, reason: "session ended")
            case .authenticationFailed: try? await outbound.close(.policyViolation, reason: "authentication failed")
            case .shuttingDown: try? await outbound.close(.goingAway, reason: "server shutting down")
            case .normal, nil: break
            }
        }
    }

    private func handle(_ message: RealtimeClientMessage, subscriber: RealtimeHub.Subscriber) async {
        switch message.type {
        case RealtimeType.ping:
            subscriber.send(Self.text(RealtimeServerMessage(type: RealtimeType.pong, timestamp: clock())))
        case RealtimeType.syncRequest:
            subscriber.send(Self.text(await syncResponse(message, identity: subscriber.identity)))
        case RealtimeType.itemUpdated:
            subscriber.send(Self.text(await push(message, identity: subscriber.identity)))
        case RealtimeType.auth:
            await reauthenticate(message, subscriber: subscriber)
        default:
            subscriber.send(Self.text(Self.error("unknown_type", "unknown message type '\(message.type)'")))
        }
    }

    /// SYNC_REQUEST: one page of a readable vault's changes after a cursor or a time.
    private func syncResponse(_ message: RealtimeClientMessage, identity: AuthIdentity) async -> RealtimeServerMessage {
        do {
            guard let vaultId = message.vaultId.flatMap(VaultIdentifiers.normalized), try await store.vault(id: vaultId, userId: identity.userId) != nil else {
                return Self.error("not_found", "no such vault", vaultId: message.vaultId)
            }
            let limit = message.limit ?? 1000
            guard (1...SyncController.maximumPullLimit).contains(limit) else {
                return Self.error("invalid_field", "field 'limit' must be 1…\(SyncController.maximumPullLimit)", vaultId: vaultId)
            }
            let since: Int64
            if let cursor = message.cursor {
                guard Validation.counters.contains(cursor) else {
                    return Self.error("invalid_field", "field 'cursor' must be a revision (\(Validation.describe(Validation.counters)))", vaultId: vaultId)
                }
                since = cursor
            } else if let time = message.lastSyncTimestamp {
                since = try await store.revision(vaultId: vaultId, notAfter: time)
            } else {
                since = 0
            }
            let items = try await store.items(vaultId: vaultId, since: since, limit: limit + 1)
            let page = Array(items.prefix(limit))
            return RealtimeServerMessage(
                type: RealtimeType.syncResponse, vaultId: vaultId, updates: page, cursor: page.last?.revision ?? since, hasMore: items.count > limit
            )
        } catch {
            return Self.error("internal_error", "the server could not read the vault", vaultId: message.vaultId)
        }
    }

    /// ITEM_UPDATED from the client: applied like one HTTP push change; others hear of it.
    private func push(_ message: RealtimeClientMessage, identity: AuthIdentity) async -> RealtimeServerMessage {
        guard let vaultId = message.vaultId, let item = message.item else {
            return Self.error("invalid_field", "ITEM_UPDATED needs vaultId and item {id, baseVersion, encryptedData | deleted}", vaultId: message.vaultId)
        }
        let change = PushChange(vaultId: vaultId, itemId: item.id, baseVersion: item.baseVersion, encryptedData: item.encryptedData, deleted: item.deleted)
        do {
            guard let result = try await sync.apply([change], identity: identity).first else { throw APIError.internalError }
            return RealtimeServerMessage(type: RealtimeType.pushResult, vaultId: vaultId, result: result)
        } catch {
            let apiError = error as? APIError ?? (error as? StoreError).map(APIError.init) ?? .internalError
            return Self.error(apiError.code, apiError.message, vaultId: vaultId)
        }
    }

    /// A client message, or nil when it is not text or not a message.
    static func decode(_ text: String) -> RealtimeClientMessage? {
        try? JSONDecoder().decode(RealtimeClientMessage.self, from: Data(text.utf8))
    }

    /// Why a message was not decoded: the field at fault when there is one (a number out of
    /// range, a wrong type), else that messages are JSON objects with a type.
    static func refusal(_ message: WebSocketMessage) -> RealtimeServerMessage {
        let generic = error("bad_message", "messages are JSON objects with a type")
        guard case .text(let text) = message else { return generic }
        do {
            _ = try JSONDecoder().decode(RealtimeClientMessage.self, from: Data(text.utf8))
            return generic
        } catch let decoding as DecodingError {
            let apiError = Array(text.utf8).withUnsafeBytes { APIError(decoding: decoding, of: $0) }
            return apiError.code == ErrorCode.invalidJSON ? generic : error(apiError.code, apiError.message)
        } catch {
            return generic
        }
    }

    static func error(_ code: String, _ message: String, vaultId: String? = nil) -> RealtimeServerMessage {
        RealtimeServerMessage(type: RealtimeType.error, vaultId: vaultId, code: code, error: message)
    }

    static func text(_ message: RealtimeServerMessage) -> String {
        RealtimeHub.encode(message) ?? #"{"type":"ERROR","code":"internal_error","error":"could not encode a message"}"#
    }
}

/// The subscriber of one socket once it has authenticated, shared with its watchdog.
private final class SocketSession: Sendable {
    private let state = Mutex<RealtimeHub.Subscriber?>(nil)

    var subscriber: RealtimeHub.Subscriber? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
