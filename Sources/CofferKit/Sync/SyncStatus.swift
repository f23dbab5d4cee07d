import CofferProtocol

/// Where the sync engine stands, as an app shows it.
public struct SyncStatus: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case idle
        case syncing
        /// The server cannot be reached; changes wait in the queue.
        case offline
        /// The last round failed for a reason retrying will not fix (see `lastError`).
        case error
    }

    public var state: State
    /// Local changes not yet accepted by the server.
    public var pending: Int
    /// When a round last completed.
    public var lastSync: Timestamp?
    public var openConflicts: Int
    public var lastError: String?
    /// Vaults the last round kept out because they failed verification.
    public var refusedVaults: [RefusedVault]
    /// Vaults whose access the server says was lost, kept read-only on this device.
    public var keptVaults: [String]

    public init(
        state: State, pending: Int, lastSync: Timestamp?, openConflicts: Int, lastError: String? = nil, refusedVaults: [RefusedVault] = [],
        keptVaults: [String] = []
    ) {
        self.state = state
        self.pending = pending
        self.lastSync = lastSync
        self.openConflicts = openConflicts
        self.lastError = lastError
        self.refusedVaults = refusedVaults
        self.keptVaults = keptVaults
    }
}

/// Something a sync round did, for live displays (`coffer sync --watch`).
public enum SyncEvent: Sendable, Equatable {
    /// An item changed on the server and was pulled; `document` is nil for a deletion.
    case pulled(vaultId: String, itemId: String, version: Int, document: ItemDocument?, deviceId: String?)
    case pushed(vaultId: String, itemId: String, version: Int)
    /// A conflict was met and settled (or left open when `outcome` is `manual`).
    case conflict(itemId: String, outcome: String)
    case rejected(itemId: String, reason: String)
    case gainedVault(String)
    case lostVault(String)
    /// Bytes or items so far out of a total, during a large pull.
    case progress(done: Int, total: Int?)
    case connected
    case disconnected(String)
}

/// What one round did.
public struct SyncReport: Sendable, Equatable, Codable {
    public var pulled = 0
    public var pushed = 0
    public var conflicts = 0
    public var rejected = 0
    public var gainedVaults = 0
    public var lostVaults = 0
    public var pending = 0
    public var openConflicts = 0
    /// Vaults kept out of this round because they failed verification (the others synced).
    public var refusedVaults: [RefusedVault] = []
    /// Vaults whose access the server said was lost this round, kept read-only on this device.
    public var keptVaults: [String] = []

    public init() {}

    /// Whether the round changed anything on either side.
    public var quiet: Bool { pulled == 0 && pushed == 0 && conflicts == 0 && rejected == 0 && gainedVaults == 0 && lostVaults == 0 }
}
