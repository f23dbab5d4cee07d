import Foundation

/// What an envelope's ciphertext is and whose it is; authenticated with it, never stored in it.
///
/// The context is bound into the AEAD as associated data, so a ciphertext only opens under the
/// context it was sealed for: a server that moves a blob to another item, another user or another
/// purpose (say, an item blob presented as the wrapped account key) makes decryption fail instead
/// of making the client trust misplaced data.
public struct EnvelopeContext: Sendable, Hashable {
    /// What the plaintext is, e.g. "account-key", "sharing-private-key", "item".
    public var purpose: String
    /// Whose it is, e.g. the normalised account email or a vault id.
    public var owner: String
    /// Which object it is, e.g. an item id; nil when the purpose and owner already name a single thing.
    public var object: String?

    /// A context; the strings are bound exactly as given (normalise emails with `AccountEmail.normalized` first).
    public init(purpose: String, owner: String, object: String? = nil) {
        self.purpose = purpose
        self.owner = owner
        self.object = object
    }

    /// `"coffer/v1|" + purpose + "|" + owner + "|" + (object ?? "")`, with "%" and "|" in each field escaped.
    ///
    /// The escaping ("%" → "%25", then "|" → "%7C") keeps the encoding injective: an email may legally
    /// contain "|", and without it owner "a|b" + object "c" would authenticate as owner "a" + object
    /// "b|c". Fields without "%" or "|" (all of Coffer's purposes and ids) appear verbatim. A nil
    /// object and an empty one are the same context.
    public var canonicalString: String {
        "coffer/v1|" + Self.escaped(purpose) + "|" + Self.escaped(owner) + "|" + Self.escaped(object ?? "")
    }

    private static func escaped(_ field: String) -> String {
        // Scanned as bytes: "%" and "|" are ASCII, and a Character scan costs as much as the AES-GCM it feeds.
        guard field.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "|") }) else { return field }
        return field.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "|", with: "%7C")
    }
}
