import CofferProtocol

/// How a vault (or one call) settles a conflict between this device's edit and the server's.
public enum ConflictPolicy: String, Codable, Sendable, CaseIterable {
    /// The edit with the later modification time (inside the encrypted item) wins; the device id
    /// breaks a tie.
    case lastWriteWins = "last-write-wins"
    /// Keep both: nothing is overwritten and the conflict stays listed until the user resolves it.
    case manual
    /// Field-level three-way merge; a field changed on both sides falls back to the vault's policy.
    case merge
}

/// What to do about one conflict.
public enum ConflictOutcome: Sendable, Equatable {
    /// Push this document over the server's version (`resolve` with strategy `client`).
    case push(ItemDocument)
    /// The server's version stands as it is (`resolve` with strategy `server`).
    case keepServer
    /// Leave both for the user (the conflict is recorded and listed).
    case manual
}

/// The decision of a conflict, and why: what a sync history records.
public struct ConflictDecision: Sendable, Equatable {
    public var outcome: ConflictOutcome
    /// Fields taken from each side by a merge, and fields both sides changed.
    public var fromLocal: [String]
    public var fromServer: [String]
    public var contested: [String]
    public var policy: ConflictPolicy
}

/// Settles conflicts on the device, the only place that can read items (SPEC.md §7). Pure and
/// deterministic: the same inputs always give the same decision on every device.
public enum ConflictResolver {
    /// The fields a merge works on, by name.
    static var fields: [(name: String, path: WritableKeyPath<ItemDocument, String?>)] {
        [("username", \.username), ("password", \.password), ("url", \.url), ("notes", \.notes)]
    }

    /// Decides a conflict between `local` (this device's edit of `base`) and `server` (the
    /// current version on the server). `base` is nil when the server no longer keeps it; a merge
    /// then falls back to `fallback` as if every differing field were contested.
    public static func resolve(
        base: ItemDocument?, local: ItemDocument, server: ItemDocument, policy: ConflictPolicy,
        fallback: ConflictPolicy = .lastWriteWins, localDevice: String, serverDevice: String?
    ) -> ConflictDecision {
        switch policy {
        case .manual:
            return ConflictDecision(outcome: .manual, fromLocal: [], fromServer: [], contested: [], policy: .manual)
        case .lastWriteWins:
            let outcome: ConflictOutcome = localWins(local: local, server: server, localDevice: localDevice, serverDevice: serverDevice) ? .push(local) : .keepServer
            return ConflictDecision(outcome: outcome, fromLocal: [], fromServer: [], contested: [], policy: .lastWriteWins)
        case .merge:
            return merge(base: base, local: local, server: server, fallback: fallback == .merge ? .lastWriteWins : fallback, localDevice: localDevice, serverDevice: serverDevice)
        }
    }

    /// Whether `local` is the later write: modification time first, then the device id.
    static func localWins(local: ItemDocument, server: ItemDocument, localDevice: String, serverDevice: String?) -> Bool {
        if local.modifiedAt != server.modifiedAt { return local.modifiedAt > server.modifiedAt }
        return localDevice > (serverDevice ?? server.modifiedBy ?? "")
    }

    private static func merge(
        base: ItemDocument?, local: ItemDocument, server: ItemDocument, fallback: ConflictPolicy, localDevice: String, serverDevice: String?
    ) -> ConflictDecision {
        var merged = server
        var fromLocal: [String] = []
        var fromServer: [String] = []
        var contested: [String] = []
        func take(_ name: String, local localValue: String?, server serverValue: String?, base baseValue: String??, apply: (String?) -> Void) {
            if localValue == serverValue { return }
            guard let baseValue else {
                contested.append(name)
                return
            }
            if localValue == baseValue {
                fromServer.append(name)
            } else if serverValue == baseValue {
                fromLocal.append(name)
                apply(localValue)
            } else {
                contested.append(name)
            }
        }
        take("title", local: local.title, server: server.title, base: base.map { .some($0.title) }) { merged.title = $0 ?? "" }
        for field in fields {
            take(field.name, local: local[keyPath: field.path], server: server[keyPath: field.path], base: base.map { $0[keyPath: field.path] }) {
                merged[keyPath: field.path] = $0
            }
        }
        guard contested.isEmpty else {
            // The same field changed on both sides: the vault's policy decides the whole item.
            let decided = resolve(base: base, local: local, server: server, policy: fallback, localDevice: localDevice, serverDevice: serverDevice)
            return ConflictDecision(outcome: decided.outcome, fromLocal: fromLocal, fromServer: fromServer, contested: contested, policy: fallback)
        }
        guard !fromLocal.isEmpty else {
            return ConflictDecision(outcome: .keepServer, fromLocal: [], fromServer: fromServer, contested: [], policy: .merge)
        }
        merged.modifiedAt = max(local.modifiedAt, server.modifiedAt)
        merged.modifiedBy = localDevice
        return ConflictDecision(outcome: .push(merged), fromLocal: fromLocal, fromServer: fromServer, contested: [], policy: .merge)
    }
}
