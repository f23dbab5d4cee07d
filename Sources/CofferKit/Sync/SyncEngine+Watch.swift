import CofferProtocol
import Foundation

extension SyncEngine {
    /// Syncs in the background until cancelled: on local changes, on the server's WebSocket
    /// events (reconnecting with backoff and catching up from the stored cursors), and on a timer.
    /// The socket is authenticated again with a renewed access token before each one expires, so
    /// it stays connected for as long as the session lives. Network and server failures are
    /// retried with backoff and jitter; a rollback or an ended session (a refresh refused with
    /// 401, SESSION_REVOKED other than an expired token) stops it with that error.
    public func watch(client: CofferClient) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.listen(client: client) }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.configuration.timerInterval)
                    await self.requestSync()
                }
            }
            group.addTask { try await self.syncOnTrigger() }
            trigger.yield()
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func syncOnTrigger() async throws {
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        for await _ in triggers {
            if Task.isCancelled { return }
            do {
                _ = try await sync()
                attempt = 0
            } catch {
                switch RetryPolicy.classify(error) {
                case .offline, .backoff:
                    attempt += 1
                    try await Task.sleep(for: configuration.retry.delay(attempt: attempt, using: &random))
                    trigger.yield()
                case .after(let wait):
                    attempt += 1
                    try await Task.sleep(for: wait)
                    trigger.yield()
                case .stop:
                    if error is SyncError { throw error }
                    if let error = error as? CofferClientError, error.status == 401 { throw error }
                    // Refused (4xx): retrying now would be refused again; wait for the next trigger.
                }
            }
        }
    }

    private func listen(client: CofferClient) async throws {
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        let server = client.api.baseURL
        while !Task.isCancelled {
            var reason = "closed"
            var reconnectAtOnce = false
            do {
                let grant = try await client.freshAccessGrant()
                let connection = try await RealtimeConnection.open(server: server)
                try await connection.send(.auth(token: grant.token, deviceId: deviceId))
                // Authenticates again with a renewed token before this one expires.
                let renewal = Task { try await self.keepAuthenticated(connection, client: client, renewAt: grant.renewAt) }
                defer { renewal.cancel() }
                var authenticated = false
                for await message in connection.messages {
                    switch message.type {
                    case RealtimeType.authSuccess:
                        // A renewed AUTH answers AUTH_SUCCESS again; only the first one is a (re)connection.
                        guard !authenticated else { break }
                        authenticated = true
                        attempt = 0
                        emit(.connected)
                        // Catch up on whatever happened while disconnected, from the stored cursors.
                        trigger.yield()
                    case RealtimeType.vaultUpdated:
                        vaultsStale = true
                        trigger.yield()
                    case RealtimeType.itemUpdated, RealtimeType.accessRevoked:
                        trigger.yield()
                    case RealtimeType.sessionRevoked where message.code == "token_expired":
                        // Only the socket's token ran out (a renewal was late, or the server does not
                        // take renewed AUTH): the session lives on, so connect again with a fresh token.
                        reason = "the access token expired"
                        reconnectAtOnce = true
                    case RealtimeType.sessionRevoked:
                        await connection.close()
                        throw CofferClientError.server(status: 401, code: ErrorCode.unauthorized, message: "this device's session was revoked")
                    case RealtimeType.authFailed:
                        reason = "authentication failed"
                    default:
                        break
                    }
                }
                renewal.cancel()
                // A renewal that found the session ended closed the socket: that ends the watch.
                if case .failure(let error) = await renewal.result, Self.endsSession(error) { throw error }
                if let code = connection.closeCode, !reconnectAtOnce { reason = "closed (\(code))" }
            } catch where Self.endsSession(error) {
                throw error
            } catch {
                reason = "\(error)"
            }
            emit(.disconnected(reason))
            if reconnectAtOnce { continue }
            attempt += 1
            try await Task.sleep(for: configuration.retry.delay(attempt: attempt, using: &random))
        }
    }

    /// Until cancelled: when the token is due, gets a renewed one (the client's single refresh,
    /// shared with the sync rounds and other processes) and sends AUTH with it on the open socket.
    /// A refresh refused with 401 means the session really ended: the socket is closed and the
    /// error returned. Other failures are retried with backoff while the socket lives.
    private func keepAuthenticated(_ connection: RealtimeConnection, client: CofferClient, renewAt first: Timestamp) async throws {
        var renewAt = first
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            // Never a busy loop, whatever the clock says.
            try await Task.sleep(for: .milliseconds(max(100, Timestamp.now.milliseconds(until: renewAt))))
            do {
                let grant = try await client.freshAccessGrant()
                try await connection.send(.auth(token: grant.token, deviceId: deviceId))
                renewAt = grant.renewAt
                attempt = 0
            } catch where Self.endsSession(error) {
                await connection.close()
                throw error
            } catch {
                attempt += 1
                try await Task.sleep(for: configuration.retry.delay(attempt: attempt, using: &random))
            }
        }
    }

    /// A refused refresh or a revoked session (401), or a logout by another command.
    private static func endsSession(_ error: any Error) -> Bool {
        if let error = error as? CofferClientError { return error.status == 401 }
        return error as? CofferError == .notLoggedIn
    }
}
