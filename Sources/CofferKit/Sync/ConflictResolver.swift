import CofferProtocol

/// How a vault (or one call) settles a conflict between this device's edit and the server's.
public enum ConflictPolicy: String, Codable, Sendable, CaseIterable {
    /// The edit with the later modification time (inside the encrypted item) wins; the device id
    /// breaks a tie.
    case lastWriteWins = "last-write-wins"
    /// Keep both: nothing is overwritten and the conflict stays listed until the user resolves it.
    case manual
    /// Field-level three-way merge: a field changed on one side is kept; one changed on both sides
    /// goes by the tie-break of last-write-wins (or is left to the user when the fallback is manual).
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

/// One field of an item, as a merge and the history see it.
public enum ItemField: String, Sendable, Codable, CaseIterable {
    case title, username, password, url, notes

    /// The field's value in `document` (a title is never nil).
    public func value(in document: ItemDocument) -> String? {
        switch self {
        case .title: document.title
        case .username: document.username
        case .password: document.password
        case .url: document.url
        case .notes: document.notes
        }
    }

    public func set(_ value: String?, in document: inout ItemDocument) {
        switch self {
        case .title: document.title = value ?? ""
        case .username: document.username = value
        case .password: document.password = value
        case .url: document.url = value
        case .notes: document.notes = value
        }
    }

    /// The fields whose values differ between two documents (modification time and device aside).
    public static func differing(_ a: ItemDocument, _ b: ItemDocument) -> [ItemField] {
        allCases.filter { $0.value(in: a) != $0.value(in: b) }
    }
}

/// The two sides of a conflict.
public enum ConflictSide: String, Sendable, Codable {
    /// This device's edit.
    case local
    /// The version on the server.
    case server
}

/// A value a contested field lost to the tie-break; the conflict record keeps it.
public struct LostValue: Sendable, Equatable {
    public var field: ItemField
    public var side: ConflictSide
    public var value: String?

    public init(field: ItemField, side: ConflictSide, value: String?) {
        self.field = field
        self.side = side
        self.value = value
    }
}

/// The decision of a conflict, and why: what a sync history records.
public struct ConflictDecision: Sendable, Equatable {
    public var outcome: ConflictOutcome
    /// Fields taken from each side by a merge, and fields both sides changed to different values.
    public var fromLocal: [String]
    public var fromServer: [String]
    public var contested: [String]
    public var policy: ConflictPolicy
    /// Which side's values the contested fields took; nil when nothing was contested or the user decides.
    public var contestedWinner: ConflictSide? = nil
    /// The values the contested fields lost (the other side of `contestedWinner`).
    public var lost: [LostValue] = []

    /// What a conflict record keeps of a merge; nil for other policies.
    public var summary: MergeSummary? {
        guard policy == .merge || !contested.isEmpty else { return nil }
        return MergeSummary(fromLocal: fromLocal, fromServer: fromServer, contested: contested, contestedWinner: contestedWinner)
    }
}

/// How a merge settled each field, as a conflict record keeps it (field names only, no values).
public struct MergeSummary: Sendable, Codable, Equatable {
    public var fromLocal: [String]
    public var fromServer: [String]
    public var contested: [String]
    /// Whose values the contested fields took; nil when they were left to the user.
    public var contestedWinner: ConflictSide?

    public init(fromLocal: [String], fromServer: [String], contested: [String], contestedWinner: ConflictSide?) {
        self.fromLocal = fromLocal
        self.fromServer = fromServer
        self.contested = contested
        self.contestedWinner = contestedWinner
    }
}

/// Settles conflicts on the device, the only place that can read items (SPEC.md §7). Pure and
/// deterministic: the same inputs always give the same decision on every device.
public enum ConflictResolver {
    /// Decides a conflict between `local` (this device's edit of `base`) and `server` (the
    /// current version on the server). `base` is nil when the server no longer keeps it; a merge
    /// then treats every differing field as contested.
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
            return merge(base: base, local: local, server: server, fallback: fallback, localDevice: localDevice, serverDevice: serverDevice)
        }
    }

    /// Whether `local` is the later write: modification time first, then the device id.
    static func localWins(local: ItemDocument, server: ItemDocument, localDevice: String, serverDevice: String?) -> Bool {
        if local.modifiedAt != server.modifiedAt { return local.modifiedAt > server.modifiedAt }
        return localDevice > (serverDevice ?? server.modifiedBy ?? "")
    }

    /// Field by field: a field changed on one side only takes that side's value, one changed on
    /// both sides to the same value takes it, and one changed on both sides to different values
    /// is contested. Contested fields go by the tie-break of last-write-wins (the later document's
    /// value, the device id breaking a tie), so every device reaches the same result; with a
    /// `manual` fallback they are left to the user instead, and nothing is merged.
    private static func merge(
        base: ItemDocument?, local: ItemDocument, server: ItemDocument, fallback: ConflictPolicy, localDevice: String, serverDevice: String?
    ) -> ConflictDecision {
        var fromLocal: [String] = []
        var fromServer: [String] = []
        var contested: [ItemField] = []
        for field in ItemField.allCases {
            let localValue = field.value(in: local)
            let serverValue = field.value(in: server)
            if localValue == serverValue { continue }
            if let base, localValue == field.value(in: base) {
                fromServer.append(field.rawValue)
            } else if let base, serverValue == field.value(in: base) {
                fromLocal.append(field.rawValue)
            } else {
                contested.append(field)
            }
        }
        if !contested.isEmpty && fallback == .manual {
            return ConflictDecision(outcome: .manual, fromLocal: fromLocal, fromServer: fromServer, contested: contested.map(\.rawValue), policy: .manual)
        }
        let winner: ConflictSide = localWins(local: local, server: server, localDevice: localDevice, serverDevice: serverDevice) ? .local : .server
        var merged = server
        for name in fromLocal {
            let field = ItemField(rawValue: name)!
            field.set(field.value(in: local), in: &merged)
        }
        if winner == .local {
            for field in contested { field.set(field.value(in: local), in: &merged) }
        }
        let loser = winner == .local ? server : local
        let lost = contested.map { LostValue(field: $0, side: winner == .local ? .server : .local, value: $0.value(in: loser)) }
        var decision = ConflictDecision(
            outcome: .keepServer, fromLocal: fromLocal, fromServer: fromServer, contested: contested.map(\.rawValue), policy: .merge,
            contestedWinner: contested.isEmpty ? nil : winner, lost: lost
        )
        // Nothing of this side's survives: the server's version stands as it is.
        guard !ItemField.differing(merged, server).isEmpty else { return decision }
        merged.modifiedAt = max(local.modifiedAt, server.modifiedAt)
        merged.modifiedBy = localDevice
        decision.outcome = .push(merged)
        return decision
    }
}
