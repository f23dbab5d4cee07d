// Hand-written JSON for the pull answer, the response every device asks for most often:
// written by the server, read by the client.
// The writer matches `JSONEncoder` and the reader `JSONDecoder` (see `JSONByteWriter` and
// `JSONByteReader`); a new field must be added here too, which the round-trip tests catch.

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
        writer.raw(#","keyEpoch":"#)
        writer.integer(Int64(keyEpoch))
        if let keyHistory {
            writer.raw(#","keyHistory":"#)
            writer.string(keyHistory)
        }
        writer.raw("}")
    }
}

extension PullResponse: JSONByteReadable {
    /// Reads a pull answer without `JSONDecoder`; throws on anything unexpected (see `JSONByteReader`).
    public init(jsonBytes: UnsafeRawBufferPointer) throws {
        self = try JSONByteReader.read(jsonBytes) { reader in
            var vaults: [VaultChanges]?
            var gained: [VaultSummary]?
            var lost: [String]?
            var serverTime: Timestamp?
            try reader.object { reader, key in
                switch key {
                case "vaults": vaults = try reader.array { try VaultChanges(reading: &$0) }
                case "gained": gained = try reader.array { try VaultSummary(reading: &$0) }
                case "lost": lost = try reader.array { try $0.string() }
                case "serverTime": serverTime = try Timestamp(reading: &reader)
                default: try reader.skipValue()
                }
            }
            guard let vaults, let gained, let lost, let serverTime else { throw JSONByteReader.Malformed() }
            return PullResponse(vaults: vaults, gained: gained, lost: lost, serverTime: serverTime)
        }
    }
}

extension PullRequest: JSONByteReadable {
    /// Reads a pull request without `JSONDecoder` (see `JSONByteReader`).
    public init(jsonBytes: UnsafeRawBufferPointer) throws {
        self = try JSONByteReader.read(jsonBytes) { reader in
            var request = PullRequest()
            try reader.object { reader, key in
                switch key {
                case "vaults":
                    if try reader.isNull() { return }
                    var vaults: [String: Int64] = [:]
                    try reader.object { reader, vaultId in vaults[vaultId] = try reader.int64() }
                    request.vaults = vaults
                case "limit": request.limit = try reader.isNull() ? nil : try reader.int()
                default: try reader.skipValue()
                }
            }
            return request
        }
    }
}

extension VaultChanges {
    init(reading reader: inout JSONByteReader) throws {
        var vaultId: String?
        var items: [Item]?
        var cursor: Int64?
        var hasMore: Bool?
        try reader.object { reader, key in
            switch key {
            case "vaultId": vaultId = try reader.string()
            case "items": items = try reader.array { try Item(reading: &$0) }
            case "cursor": cursor = try reader.int64()
            case "hasMore": hasMore = try reader.bool()
            default: try reader.skipValue()
            }
        }
        guard let vaultId, let items, let cursor, let hasMore else { throw JSONByteReader.Malformed() }
        self.init(vaultId: vaultId, items: items, cursor: cursor, hasMore: hasMore)
    }
}

extension Item {
    init(reading reader: inout JSONByteReader) throws {
        var id: String?
        var vaultId: String?
        var encryptedData: String?
        var version: Int?
        var revision: Int64?
        var deleted: Bool?
        var createdAt: Timestamp?
        var updatedAt: Timestamp?
        var deviceId: String?
        try reader.object { reader, key in
            switch key {
            case "id": id = try reader.string()
            case "vaultId": vaultId = try reader.string()
            case "encryptedData": encryptedData = try reader.optionalString()
            case "version": version = try reader.int()
            case "revision": revision = try reader.int64()
            case "deleted": deleted = try reader.bool()
            case "createdAt": createdAt = try Timestamp(reading: &reader)
            case "updatedAt": updatedAt = try Timestamp(reading: &reader)
            case "deviceId": deviceId = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
        guard let id, let vaultId, let version, let revision, let deleted, let createdAt, let updatedAt else { throw JSONByteReader.Malformed() }
        self.init(
            id: id, vaultId: vaultId, encryptedData: encryptedData, version: version, revision: revision, deleted: deleted,
            createdAt: createdAt, updatedAt: updatedAt, deviceId: deviceId
        )
    }
}

extension VaultSummary {
    init(reading reader: inout JSONByteReader) throws {
        var id: String?
        var ownerId: String?
        var role: VaultRole?
        var encryptedMetadata: String?
        var wrappedKey: String?
        var revision: Int64?
        var createdAt: Timestamp?
        var updatedAt: Timestamp?
        var keySealedBy: String?
        var keyEpoch: Int64 = 1
        var keyHistory: String?
        try reader.object { reader, key in
            switch key {
            case "id": id = try reader.string()
            case "ownerId": ownerId = try reader.string()
            case "role":
                guard let value = VaultRole(rawValue: try reader.string()) else { throw JSONByteReader.Malformed() }
                role = value
            case "encryptedMetadata": encryptedMetadata = try reader.string()
            case "wrappedKey": wrappedKey = try reader.string()
            case "revision": revision = try reader.int64()
            case "createdAt": createdAt = try Timestamp(reading: &reader)
            case "updatedAt": updatedAt = try Timestamp(reading: &reader)
            case "keySealedBy": keySealedBy = try reader.optionalString()
            case "keyEpoch": keyEpoch = try reader.int64()
            case "keyHistory": keyHistory = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
        guard let id, let ownerId, let role, let encryptedMetadata, let wrappedKey, let revision, let createdAt, let updatedAt else {
            throw JSONByteReader.Malformed()
        }
        self.init(
            id: id, ownerId: ownerId, role: role, encryptedMetadata: encryptedMetadata, wrappedKey: wrappedKey, revision: revision,
            createdAt: createdAt, updatedAt: updatedAt, keySealedBy: keySealedBy,
            keyEpoch: Int(clamping: keyEpoch), keyHistory: keyHistory
        )
    }
}

extension Timestamp {
    /// Reads the wire form (a string, see `iso8601`).
    public init(reading reader: inout JSONByteReader) throws {
        guard let value = Timestamp(iso8601: try reader.string()) else { throw JSONByteReader.Malformed() }
        self = value
    }
}
