import CofferCrypto
import CofferProtocol
import Crypto
import Foundation

/// A vault's symmetric key; every item of the vault is encrypted with it.
public struct VaultKey: Sendable {
    let key: SymmetricKey

    /// A fresh random key for a new vault.
    public static func random() -> VaultKey { VaultKey(key: SymmetricKey(size: .bits256)) }

    init(key: SymmetricKey) { self.key = key }
}

/// How vault keys, metadata and items are sealed. Each envelope's associated data names what it
/// is and where it belongs, so a server that moves a blob to another item or vault, or serves a
/// vault key as another's, makes decryption fail with a tamper error instead of showing wrong data.
public enum VaultCrypto {
    public static func wrap(_ vaultKey: VaultKey, vaultId: String, accountKey: SymmetricKey, userId: String) throws -> String {
        try vaultKey.key.withUnsafeBytes { bytes in
            try Envelope.seal(Data(bytes), key: accountKey, context: EnvelopeContext(purpose: "vault-key", owner: userId, object: vaultId))
        }
    }

    public static func unwrap(_ wrapped: String, vaultId: String, accountKey: SymmetricKey, userId: String) throws -> VaultKey {
        let raw = try open(wrapped, key: accountKey, context: EnvelopeContext(purpose: "vault-key", owner: userId, object: vaultId), what: "the key of vault \(vaultId)")
        return VaultKey(key: SymmetricKey(data: raw))
    }

    public static func sealMetadata(_ metadata: VaultMetadata, vaultId: String, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(metadata), key: key.key, context: EnvelopeContext(purpose: "vault-metadata", owner: vaultId))
    }

    public static func openMetadata(_ envelope: String, vaultId: String, key: VaultKey) throws -> VaultMetadata {
        let data = try open(envelope, key: key.key, context: EnvelopeContext(purpose: "vault-metadata", owner: vaultId), what: "the metadata of vault \(vaultId)")
        return try JSONDecoder().decode(VaultMetadata.self, from: data)
    }

    public static func sealItem(_ document: ItemDocument, itemId: String, vaultId: String, key: VaultKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(document), key: key.key, context: EnvelopeContext(purpose: "item", owner: vaultId, object: itemId))
    }

    public static func openItem(_ envelope: String, itemId: String, vaultId: String, key: VaultKey) throws -> ItemDocument {
        let data = try open(envelope, key: key.key, context: EnvelopeContext(purpose: "item", owner: vaultId, object: itemId), what: "item \(itemId) of vault \(vaultId)")
        do {
            if let document = data.withUnsafeBytes({ JSONByteReader.handRead(ItemDocument.self, from: $0) }) { return document }
            return try JSONDecoder().decode(ItemDocument.self, from: data)
        } catch {
            throw CofferError.tampered("item \(itemId) decrypted to something that is not an item")
        }
    }

    private static func open(_ envelope: String, key: SymmetricKey, context: EnvelopeContext, what: @autoclosure () -> String) throws -> Data {
        do {
            return try Envelope.open(envelope, key: key, context: context)
        } catch {
            throw CofferError.tampered("\(what()) failed to decrypt: it was altered, moved, or is not for this key")
        }
    }
}
