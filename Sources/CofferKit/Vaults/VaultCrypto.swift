import CofferCrypto
import CofferProtocol
import Crypto
import Foundation

/// A vault's symmetric key and its epoch (1 for the vault's first key, one more per rotation);
/// every item and name of the vault is sealed with the key of the epoch current at the time.
public struct VaultKey: Sendable {
    let key: SymmetricKey
    /// Which key of the vault this is; written in clear into every envelope it seals.
    public let epoch: Int

    /// A fresh random key: a new vault's (epoch 1), or a rotation's.
    public static func random(epoch: Int = 1) -> VaultKey { VaultKey(key: SymmetricKey(size: .bits256), epoch: epoch) }

    init(key: SymmetricKey, epoch: Int = 1) {
        self.key = key
        self.epoch = epoch
    }

    var rawBytes: Data { key.withUnsafeBytes { Data($0) } }
}

/// Every key of a vault this device holds: the current one, which seals, and earlier ones,
/// which only open what was written before a rotation (history, queued changes, conflicts).
public struct VaultKeyRing: Sendable {
    public private(set) var current: VaultKey
    private(set) var earlier: [Int: VaultKey]

    public init(current: VaultKey, earlier: [VaultKey] = []) {
        self.current = current
        self.earlier = [:]
        for key in earlier { add(key) }
    }

    /// The key of `epoch`, if this device holds it.
    public func key(epoch: Int) -> VaultKey? {
        epoch == current.epoch ? current : earlier[epoch]
    }

    /// Every key, oldest first.
    public var all: [VaultKey] { (earlier.values + [current]).sorted { $0.epoch < $1.epoch } }

    /// Adds a key; a later epoch than the current one becomes current.
    public mutating func add(_ key: VaultKey) {
        if key.epoch > current.epoch {
            earlier[current.epoch] = current
            current = key
        } else if key.epoch != current.epoch {
            earlier[key.epoch] = key
        }
    }
}

/// How vault keys, metadata and items are sealed. Each envelope's associated data names what it
/// is and where it belongs, so a server that moves a blob to another item or vault, or serves a
/// vault key as another's, makes decryption fail with a tamper error instead of showing wrong data.
/// Envelopes sealed with a vault key carry its epoch (`Envelope.epochVersion`), and a wrapped
/// vault key is bound to its epoch, so a server cannot present an old key as the current one.
public enum VaultCrypto {
    public static func wrap(_ vaultKey: VaultKey, vaultId: String, accountKey: SymmetricKey, userId: String) throws -> String {
        try Envelope.seal(vaultKey.rawBytes, key: accountKey, context: EnvelopeContext(purpose: "vault-key", owner: userId, object: keyObject(vaultId, epoch: vaultKey.epoch)))
    }

    public static func unwrap(_ wrapped: String, vaultId: String, epoch: Int = 1, accountKey: SymmetricKey, userId: String) throws -> VaultKey {
        let raw = try open(
            wrapped, key: accountKey, context: EnvelopeContext(purpose: "vault-key", owner: userId, object: keyObject(vaultId, epoch: epoch)),
            what: "the key of vault \(vaultId)"
        )
        guard raw.count == 32 else { throw CofferError.tampered("the key of vault \(vaultId) is not a vault key") }
        return VaultKey(key: SymmetricKey(data: raw), epoch: epoch)
    }

    /// What a wrapped key is bound to: the vault, and from the first rotation on its epoch too
    /// (epoch 1 keeps the form keys had before epochs existed, so they still open).
    static func keyObject(_ vaultId: String, epoch: Int) -> String {
        epoch <= 1 ? vaultId : "\(vaultId)@\(epoch)"
    }

    public static func sealMetadata(_ metadata: VaultMetadata, vaultId: String, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(metadata), key: key.key, context: EnvelopeContext(purpose: "vault-metadata", owner: vaultId), keyEpoch: key.epoch)
    }

    public static func openMetadata(_ envelope: String, vaultId: String, key: VaultKey) throws -> VaultMetadata {
        try openMetadata(envelope, vaultId: vaultId, keys: VaultKeyRing(current: key))
    }

    public static func openMetadata(_ envelope: String, vaultId: String, keys: VaultKeyRing) throws -> VaultMetadata {
        let key = try self.key(for: envelope, in: keys, what: "the metadata of vault \(vaultId)")
        let data = try open(envelope, key: key.key, context: EnvelopeContext(purpose: "vault-metadata", owner: vaultId), what: "the metadata of vault \(vaultId)")
        return try JSONDecoder().decode(VaultMetadata.self, from: data)
    }

    /// Seals an item for the version the server will give it (`baseVersion + 1`; 1 for a new
    /// item): the version is in the envelope's context, so a server that serves an old version's
    /// ciphertext as the newest, or moves it to another version number, makes opening fail.
    public static func sealItem(_ document: ItemDocument, itemId: String, vaultId: String, version: Int, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(document), key: key.key, context: itemContext(itemId, vaultId: vaultId, binding: .version(version)), keyEpoch: key.epoch)
    }

    /// Seals an item for this device's offline queue: bound to the item but to no version, since
    /// the version it will get is known only when it is pushed (`rebindQueued`).
    static func sealQueued(_ document: ItemDocument, itemId: String, vaultId: String, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(document), key: key.key, context: itemContext(itemId, vaultId: vaultId, binding: .queued), keyEpoch: key.epoch)
    }

    /// A queued item sealed again (under the current key of `keys`) for the version it is pushed as.
    static func rebindQueued(_ envelope: String, itemId: String, vaultId: String, version: Int, keys: VaultKeyRing) throws -> String {
        let what = "queued item \(itemId) of vault \(vaultId)"
        let key = try self.key(for: envelope, in: keys, what: what)
        let plaintext = try open(envelope, key: key.key, context: itemContext(itemId, vaultId: vaultId, binding: isLegacy(envelope) ? .legacy : .queued), what: what)
        return try Envelope.seal(plaintext, key: keys.current.key, context: itemContext(itemId, vaultId: vaultId, binding: .version(version)), keyEpoch: keys.current.epoch)
    }

    public static func openItem(_ envelope: String, itemId: String, vaultId: String, version: Int, key: VaultKey) throws -> ItemDocument {
        try openItem(envelope, itemId: itemId, vaultId: vaultId, version: version, keys: VaultKeyRing(current: key))
    }

    /// Opens an item as `version` (the version the server lists it at) with whichever key of the
    /// ring its envelope names. A version 1 (legacy, pre-epoch) envelope is bound to no version:
    /// it still opens, and is bound once the item is next written.
    public static func openItem(_ envelope: String, itemId: String, vaultId: String, version: Int, keys: VaultKeyRing) throws -> ItemDocument {
        try openItem(envelope, itemId: itemId, vaultId: vaultId, binding: .version(version), keys: keys)
    }

    /// Opens an item of this device's offline queue (or the local side of a conflict record).
    public static func openQueued(_ envelope: String, itemId: String, vaultId: String, keys: VaultKeyRing) throws -> ItemDocument {
        try openItem(envelope, itemId: itemId, vaultId: vaultId, binding: .queued, keys: keys)
    }

    /// What an item envelope is bound to besides its vault and id.
    enum ItemBinding {
        /// The version the server stores it as.
        case version(Int)
        /// A change in this device's queue, not yet given a version.
        case queued
        /// Envelopes from before versions were bound.
        case legacy
    }

    static func itemContext(_ itemId: String, vaultId: String, binding: ItemBinding) -> EnvelopeContext {
        let object = switch binding {
        case .version(let version): "\(itemId)#\(version)"
        case .queued: "\(itemId)#queued"
        case .legacy: itemId
        }
        return EnvelopeContext(purpose: "item", owner: vaultId, object: object)
    }

    /// Whether `envelope` is a version 1 envelope, written before key epochs and item versions were bound.
    static func isLegacy(_ envelope: String) -> Bool {
        guard let head = Base64URL.decode(String(decoding: envelope.utf8.prefix(4), as: UTF8.self)) else { return false }
        return head.first == Envelope.version
    }

    static func openItem(_ envelope: String, itemId: String, vaultId: String, binding: ItemBinding, keys: VaultKeyRing) throws -> ItemDocument {
        let what = "item \(itemId) of vault \(vaultId)"
        let key = try self.key(for: envelope, in: keys, what: what)
        let context = itemContext(itemId, vaultId: vaultId, binding: isLegacy(envelope) ? .legacy : binding)
        let data: Data
        do {
            data = try Envelope.open(envelope, key: key.key, context: context)
        } catch {
            if case .version(let version) = binding {
                throw CofferError.tampered("\(what) failed to decrypt as version \(version): it was altered, moved, served as another version, or is not for this key")
            }
            throw CofferError.tampered("\(what) failed to decrypt: it was altered, moved, or is not for this key")
        }
        do {
            if let document = data.withUnsafeBytes({ JSONByteReader.handRead(ItemDocument.self, from: $0) }) { return document }
            return try JSONDecoder().decode(ItemDocument.self, from: data)
        } catch {
            throw CofferError.tampered("item \(itemId) decrypted to something that is not an item")
        }
    }

    /// Seals the tombstone of a deletion for the version the deletion will get: who deleted the
    /// item and when, so that a deletion can only come from a holder of the vault key.
    public static func sealTombstone(_ tombstone: ItemTombstone, itemId: String, vaultId: String, version: Int, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(tombstone), key: key.key, context: tombstoneContext(itemId, vaultId: vaultId, version: version), keyEpoch: key.epoch)
    }

    /// Opens the tombstone of `version` of an item; a tamper error when it does not open as one.
    public static func openTombstone(_ envelope: String, itemId: String, vaultId: String, version: Int, keys: VaultKeyRing) throws -> ItemTombstone {
        let what = "the deletion of item \(itemId) of vault \(vaultId)"
        let key = try self.key(for: envelope, in: keys, what: what)
        let data: Data
        do {
            data = try Envelope.open(envelope, key: key.key, context: tombstoneContext(itemId, vaultId: vaultId, version: version))
        } catch {
            throw CofferError.tampered("\(what) (version \(version)) failed to decrypt: it was altered, moved, or is not a deletion sealed with the vault key")
        }
        guard let tombstone = try? JSONDecoder().decode(ItemTombstone.self, from: data), tombstone.deleted else {
            throw CofferError.tampered("\(what) decrypted to something that is not a deletion")
        }
        return tombstone
    }

    static func tombstoneContext(_ itemId: String, vaultId: String, version: Int) -> EnvelopeContext {
        EnvelopeContext(purpose: "item-tombstone", owner: vaultId, object: "\(itemId)#\(version)")
    }

    /// The earlier keys of a vault sealed with its new key, for `RotateVaultKeyRequest.keyHistory`.
    public static func sealKeyHistory(_ earlier: [VaultKey], vaultId: String, key: VaultKey) throws -> String {
        let entries = Dictionary(uniqueKeysWithValues: earlier.map { (String($0.epoch), Base64URL.encode($0.rawBytes)) })
        return try Envelope.seal(try JSONEncoder().encode(entries), key: key.key, context: EnvelopeContext(purpose: "vault-key-history", owner: vaultId), keyEpoch: key.epoch)
    }

    /// Opens a vault's key history with its current key; every key must be older than it.
    public static func openKeyHistory(_ envelope: String, vaultId: String, key: VaultKey) throws -> [VaultKey] {
        guard Envelope.keyEpoch(of: envelope) == key.epoch else { throw CofferError.tampered("the key history of vault \(vaultId) is not sealed with its current key") }
        let data = try open(envelope, key: key.key, context: EnvelopeContext(purpose: "vault-key-history", owner: vaultId), what: "the key history of vault \(vaultId)")
        guard let entries = try? JSONDecoder().decode([String: String].self, from: data) else { throw CofferError.tampered("the key history of vault \(vaultId) is malformed") }
        return try entries.map { epochText, keyText in
            guard let epoch = Int(epochText), epoch >= 1, epoch < key.epoch, let raw = Base64URL.decode(keyText), raw.count == 32 else {
                throw CofferError.tampered("the key history of vault \(vaultId) is malformed")
            }
            return VaultKey(key: SymmetricKey(data: raw), epoch: epoch)
        }
    }

    /// The key of `keys` that `envelope` names; a tamper error when it is not an envelope, and
    /// `CofferError.unknownKeyEpoch` when this device does not hold that key (yet).
    static func key(for envelope: String, in keys: VaultKeyRing, what: @autoclosure () -> String) throws -> VaultKey {
        guard let epoch = Envelope.keyEpoch(of: envelope) else {
            throw CofferError.tampered("\(what()) failed to decrypt: it was altered, moved, or is not for this key")
        }
        guard let key = keys.key(epoch: epoch) else { throw CofferError.unknownKeyEpoch(what: what(), epoch: epoch, known: keys.current.epoch) }
        return key
    }

    private static func open(_ envelope: String, key: SymmetricKey, context: EnvelopeContext, what: @autoclosure () -> String) throws -> Data {
        do {
            return try Envelope.open(envelope, key: key, context: context)
        } catch {
            throw CofferError.tampered("\(what()) failed to decrypt: it was altered, moved, or is not for this key")
        }
    }
}
