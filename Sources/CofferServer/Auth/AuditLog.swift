import CofferProtocol
import Logging

/// Records security events. A failure to record is logged but never fails the user's request:
/// the event itself (a login, a revocation) has already happened.
struct AuditLog: Sendable {
    let store: any Store
    let clock: @Sendable () -> Timestamp
    let logger: Logger

    func record(_ type: String, userId: String, deviceId: String?, detail: String? = nil) async {
        do {
            try await store.appendAudit(AuditEventRecord(userId: userId, type: type, deviceId: deviceId, detail: detail, createdAt: clock()))
        } catch {
            logger.error("could not record audit event", metadata: ["type": "\(type)", "error": "\(String(reflecting: error))"])
        }
    }
}

extension AuditEventType {
    /// An account made before identity keys set its identity (`PUT /api/auth/identity`).
    static let identitySet = "identity_set"
}
