/// Why a login proof cannot be signed.
public enum LoginProofError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The action or the email contains a newline, which would make the signed message ambiguous.
    case newlineInField(String)

    /// A human message for the failure.
    public var description: String {
        switch self {
        case .newlineInField(let field):
            "the \(field) of a login proof must not contain a newline; refusing to sign an ambiguous message"
        }
    }
}
