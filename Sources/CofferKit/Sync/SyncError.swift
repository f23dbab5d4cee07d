/// Why the engine stopped.
public enum SyncError: Error, Equatable, CustomStringConvertible {
    /// The server answered with a vault revision below one this device already saw: it was
    /// restored from an old backup, or is replaying old answers. Nothing was changed locally.
    case rollback(vaultId: String, seen: Int64, answered: Int64)
    /// A change in the queue refers to something the cache no longer knows.
    case unknownItem(String)
    case unknownVault(String)
    /// This account may only read the vault.
    case readOnly(vaultName: String, role: String)

    public var description: String {
        switch self {
        case .rollback(let vaultId, let seen, let answered):
            "rollback detected: the server answered revision \(answered) for vault \(vaultId), but this device already saw revision \(seen); "
                + "the server may have been restored from an old backup or is replaying old answers. Nothing was changed locally."
        case .unknownItem(let id): "no item \(id) in the local cache"
        case .unknownVault(let id): "no vault \(id) in the local cache"
        case .readOnly(let name, let role): "your role in vault \"\(name)\" is \(role): you can read its items but not change them"
        }
    }
}
