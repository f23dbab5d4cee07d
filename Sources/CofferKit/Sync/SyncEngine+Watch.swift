import CofferProtocol
import Foundation

extension SyncEngine {
    /// Syncs in the background until cancelled: on local changes, on the server's WebSocket
    /// events (reconnecting with backoff and catching up from the stored cursors), and on a timer.
    /// Network and server failures are retried with backoff and jitter; a rollback or an ended
    /// session stops it with that error.
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
            do {
                let token = try await client.freshAccessToken()
                let connection = try await RealtimeConnection.open(server: server)
                try await connection.send(.auth(token: token, deviceId: deviceId))
                for await message in connection.messages {
                    switch message.type {
                    case RealtimeType.authSuccess:
                        attempt = 0
                        emit(.connected)
                        // Catch up on whatever happened while disconnected, from the stored cursors.
                        trigger.yield()
                    case RealtimeType.vaultUpdated:
                        vaultsStale = true
                        trigger.yield()
                    case RealtimeType.itemUpdated, RealtimeType.accessRevoked:
                        trigger.yield()
                    case RealtimeType.sessionRevoked:
                        await connection.close()
                        throw CofferClientError.server(status: 401, code: ErrorCode.unauthorized, message: "this device's session was revoked")
                    case RealtimeType.authFailed:
                        reason = "authentication failed"
                    default:
                        break
                    }
                }
                if let code = connection.closeCode { reason = "closed (\(code))" }
            } catch let error as CofferClientError where error.status == 401 {
                throw error
            } catch {
                reason = "\(error)"
            }
            emit(.disconnected(reason))
            attempt += 1
            try await Task.sleep(for: configuration.retry.delay(attempt: attempt, using: &random))
        }
    }
}
