import Foundation

/// The one normalisation of an account email, used wherever an email is bound into cryptography.
public enum AccountEmail {
    /// Trimmed, lowercased and NFC-normalised, so that "Alice@Example.com " and "alice@example.com" name one account.
    public static func normalized(_ email: String) -> String {
        // NFC as well, because the email is bound into envelopes and signatures as UTF-8 bytes: the same
        // address typed with a combining accent on another device must not look like another owner.
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().precomposedStringWithCanonicalMapping
    }
}
