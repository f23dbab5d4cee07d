/// Why an envelope did not open. Callers report both as a security failure, never skip the data.
public enum EnvelopeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not an envelope at all: not base64url, shorter than 29 bytes, or an unknown version.
    case malformed
    /// Authentication failed: wrong key, wrong context, or modified bytes.
    case tampered

    /// A human message for the failure.
    public var description: String {
        switch self {
        case .malformed:
            "the data is not a Coffer envelope (base64url of a version 1 or 2 envelope of at least 29 or 33 bytes)"
        case .tampered:
            "the envelope failed authentication: wrong key, wrong context, or the data was modified; refusing to decrypt it"
        }
    }
}
