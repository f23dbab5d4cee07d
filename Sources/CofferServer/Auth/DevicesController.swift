import CofferProtocol
import Foundation
import Hummingbird

/// `GET /api/devices`, `DELETE /api/devices/:id`, and the audit log `GET /api/audit`.
struct DevicesController {
    let store: any Store
    let clock: @Sendable () -> Timestamp
    let audit: AuditLog
    let events: RealtimeEvents

    func addRoutes(to authenticated: RouterGroup<AppRequestContext>) {
        authenticated.get("devices", use: list)
        authenticated.delete("devices/:id", use: revoke)
        authenticated.get("audit", use: auditEvents)
    }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/devices", [.get]), ("/api/devices/:id", [.delete]), ("/api/audit", [.get]),
    ]

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let devices = try await store.devices(userId: identity.userId).map { device in
            DeviceSummary(
                id: device.id, name: device.name, platform: device.platform, createdAt: device.createdAt,
                lastSeenAt: device.lastSeenAt, current: device.id == identity.deviceId, revoked: device.revokedAt != nil
            )
        }
        return try JSONResponse.ok(DevicesResponse(devices: devices))
    }

    @Sendable func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let deviceId = try context.parameters.require("id").lowercased()
        // Another user's device id answers exactly like a missing one.
        guard UUID(uuidString: deviceId) != nil, try await store.revokeDevice(userId: identity.userId, deviceId: deviceId, at: clock()) else {
            throw APIError(.notFound, code: ErrorCode.notFound, message: "no such device")
        }
        await audit.record(AuditEventType.deviceRevoked, userId: identity.userId, deviceId: identity.deviceId, detail: deviceId)
        await events.sessionsRevoked(userId: identity.userId, deviceId: deviceId, reason: "this device was revoked")
        return try JSONResponse.ok(SuccessResponse())
    }

    @Sendable func auditEvents(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let query = request.uri.queryParameters
        var limit = 50
        if let text = query["limit"].map(String.init) {
            guard let value = Validation.integer(text, in: 1...500).map(Int.init) else { throw APIError.invalidQuery("limit", "must be 1–500") }
            limit = value
        }
        var before: Int64?
        if let text = query["before"].map(String.init) {
            guard let value = Validation.integer(text, in: 1...Validation.maximumCounter) else {
                throw APIError.invalidQuery("before", "must be an event id (1…\(Validation.maximumCounter))")
            }
            before = value
        }
        let events = try await store.auditEvents(userId: identity.userId, before: before, limit: limit + 1)
        let page = events.prefix(limit).map {
            AuditEvent(id: $0.id, type: $0.type, createdAt: $0.createdAt, deviceId: $0.deviceId, detail: $0.detail)
        }
        return try JSONResponse.ok(AuditResponse(events: Array(page), nextCursor: events.count > limit ? page.last?.id : nil))
    }
}
