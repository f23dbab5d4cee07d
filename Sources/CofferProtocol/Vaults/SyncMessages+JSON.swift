// Hand-written JSON for the pull answer, the response every device asks for most often.
// Same bytes as `JSONEncoder` (see `JSONByteWriter`); a new field must be added here too,
// which the comparison tests catch.

extension PullResponse {
    /// This answer as JSON, without `JSONEncoder`.
    public func jsonBytes() -> [UInt8] {
        let itemCount = vaults.reduce(0) { $0 + $1.items.count }
        var writer = JSONByteWriter(capacity: 256 + itemCount * 512 + gained.count * 512)
        writer.raw(#"{"vaults":"#)
        writer.array(vaults) { $1.write(to: &$0) }
        writer.raw(#","gained":"#)
        writer.array(gained) { $1.write(to: &$0) }
        writer.raw(#","lost":"#)
        writer.array(lost) { $0.string($1) }
        writer.raw(#","serverTime":"#)
        writer.string(serverTime.iso8601)
        writer.raw("}")
        return writer.bytes
    }
}

extension VaultChanges {
    func write(to writer: inout JSONByteWriter) {
        writer.raw(#"{"vaultId":"#)
        writer.string(vaultId)
        writer.raw(#","items":"#)
        writer.array(items) { $1.write(to: &$0) }
        writer.raw(#","cursor":"#)
        writer.integer(cursor)
        writer.raw(#","hasMore":"#)
        writer.bool(hasMore)
        writer.raw("}")
    }
}

extension Item {
    func write(to writer: inout JSONByteWriter) {
        writer.raw(#"{"id":"#)
        writer.string(id)
        writer.raw(#","vaultId":"#)
        writer.string(vaultId)
        if let encryptedData {
            writer.raw(#","encryptedData":"#)
            writer.string(encryptedData)
        }
        writer.raw(#","version":"#)
        writer.integer(version)
        writer.raw(#","revision":"#)
        writer.integer(revision)
        writer.raw(#","deleted":"#)
        writer.bool(deleted)
        writer.raw(#","createdAt":"#)
        writer.string(createdAt.iso8601)
        writer.raw(#","updatedAt":"#)
        writer.string(updatedAt.iso8601)
        if let deviceId {
            writer.raw(#","deviceId":"#)
            writer.string(deviceId)
        }
        writer.raw("}")
    }
}

extension VaultSummary {
    func write(to writer: inout JSONByteWriter) {
        writer.raw(#"{"id":"#)
        writer.string(id)
        writer.raw(#","ownerId":"#)
        writer.string(ownerId)
        writer.raw(#","role":"#)
        writer.string(role.rawValue)
        writer.raw(#","encryptedMetadata":"#)
        writer.string(encryptedMetadata)
        writer.raw(#","wrappedKey":"#)
        writer.string(wrappedKey)
        writer.raw(#","revision":"#)
        writer.integer(revision)
        writer.raw(#","createdAt":"#)
        writer.string(createdAt.iso8601)
        writer.raw(#","updatedAt":"#)
        writer.string(updatedAt.iso8601)
        if let keySealedBy {
            writer.raw(#","keySealedBy":"#)
            writer.string(keySealedBy)
        }
        writer.raw("}")
    }
}
