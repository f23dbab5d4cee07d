/// Why the engine stopped.
public enum SyncError: Error, Equatable, CustomStringConvertible {
    /// The server answered with a vault revision below one this device already saw: it was
    /// restored from an old backup, or is replaying old answers. Nothing was changed locally.
    case rollback(vaultId: String, seen: Int64, answered: Int64)
    /// The server offered an item at a version below one this device already holds (an old
    /// version replayed as current). Nothing was changed locally.
    case itemRollback(itemId: String, vaultId: String, seen: Int, answered: Int)
    /// A change in the queue refers to something the cache no longer knows.
    case unknownItem(String)
    case unknownVault(String)
    /// This account may only read the vault.
    case readOnly(vaultName: String, role: String)
    /// The server says this account lost the vault; this device keeps its copy, read-only.
    case accessLost(vaultName: String)
    /// `vault forget` applies only to a vault the server no longer serves to this account.
    case stillServed(String)

    public var description: String {
        switch self {
        case .rollback(let vaultId, let seen, let answered):
            "rollback detected: the server answered revision \(answered) for vault \(vaultId), but this device already saw revision \(seen); "
                + "the server may have been restored from an old backup or is replaying old answers. Nothing was changed locally."
        case .itemRollback(let itemId, let vaultId, let seen, let answered):
            "rollback detected: the server offered item \(itemId) of vault \(vaultId) at version \(answered), but this device already holds version \(seen); "
                + "an old version was replayed as current. Nothing was changed locally."
        case .unknownItem(let id): "no item \(id) in the local cache"
        case .unknownVault(let id): "no vault \(id) in the local cache"
        case .readOnly(let name, let role): "your role in vault \"\(name)\" is \(role): you can read its items but not change them"
        case .accessLost(let name):
            "access to vault \"\(name)\" was lost — kept on this device, read-only (`coffer vault forget \"\(name)\"` drops the local copy)"
        case .stillServed(let id):
            "vault \(id) is still served to this account: `coffer vault forget` only drops the copy of a vault whose access was lost or that was refused"
        }
    }
}
