import CofferProtocol

/// A conflict's sides, decrypted: what `coffer conflicts show` prints.
public struct ConflictSides: Sendable, Equatable {
    /// This device's side; nil when this device deleted the item.
    public var local: ItemDocument?
    /// The server's side the conflict was met against; nil when the server had deleted the item,
    /// or when the record does not hold it (`serverRecorded` false: a refused change, or a record
    /// written before both sides were kept).
    public var server: ItemDocument?
    public var serverRecorded: Bool
    /// The version both sides were edited from, when the server still kept it.
    public var base: ItemDocument?
    /// The item as this device holds it now: the settled result, or what came after it.
    public var current: LocalItem?
}

extension SyncEngine {
    /// Decrypts every side a conflict record holds, with the engine's keys.
    public func sides(of record: ConflictRecord) async throws -> ConflictSides {
        ConflictSides(
            local: try await open(optional: record.localData, itemId: record.itemId, vaultId: record.vaultId, binding: .queued),
            server: try await open(optional: record.serverData, itemId: record.itemId, vaultId: record.vaultId, binding: .version(record.serverVersion)),
            serverRecorded: record.hasServerSide,
            base: try await open(optional: record.baseData, itemId: record.itemId, vaultId: record.vaultId, binding: .version(record.baseVersion)),
            current: try await item(id: record.itemId)
        )
    }
}
