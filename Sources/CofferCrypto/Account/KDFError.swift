/// Why the client refuses to derive a master key: unsafe or unusable KDF parameters, salt or password.
public enum KDFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A bounded quantity of the KDF parameters.
    public enum Parameter: String, Sendable, Equatable, CaseIterable {
        /// scrypt's cost N.
        case scryptN = "scrypt N"
        /// scrypt's block size r.
        case scryptR = "scrypt r"
        /// scrypt's parallelism p.
        case scryptP = "scrypt p"
        /// scrypt's memory, 128·N·r bytes.
        case scryptMemory = "scrypt memory"
        /// scrypt's work, N·r·p.
        case scryptWork = "scrypt work N·r·p"
        /// PBKDF2-SHA256's iteration count.
        case pbkdf2Iterations = "pbkdf2-sha256 iterations"

        /// The algorithm this parameter belongs to.
        public var algorithm: KDFParameters.Algorithm {
            self == .pbkdf2Iterations ? .pbkdf2SHA256 : .scrypt
        }

        /// The JSON key carrying this parameter, for the ones that have one.
        public var key: String? {
            switch self {
            case .scryptN: "n"
            case .scryptR: "r"
            case .scryptP: "p"
            case .pbkdf2Iterations: "iterations"
            case .scryptMemory, .scryptWork: nil
            }
        }

        fileprivate func rendered(_ value: Int) -> String {
            switch self {
            case .scryptMemory: "scrypt memory 128·N·r=\(value) bytes"
            default: "\(rawValue)=\(value)"
            }
        }
    }

    /// A parameter the algorithm needs is absent.
    case missingParameter(Parameter)
    /// A parameter of the other algorithm is present, which makes the parameters ambiguous.
    case unexpectedParameter(algorithm: KDFParameters.Algorithm, key: String)
    /// A parameter is below the minimum: the key would be weak.
    case belowMinimum(Parameter, value: Int, minimum: Int)
    /// A parameter is above the ceiling: deriving would exhaust the device.
    case aboveMaximum(Parameter, value: Int, maximum: Int)
    /// scrypt's N is not a power of two.
    case notPowerOfTwo(n: Int)
    /// The salt is shorter than the minimum.
    case saltTooShort(byteCount: Int, minimum: Int)
    /// The password is empty.
    case emptyPassword

    /// A human message naming the offending value and why it is refused.
    public var description: String {
        switch self {
        case .missingParameter(let parameter):
            "the \(parameter.algorithm.rawValue) KDF parameters lack \"\(parameter.key ?? parameter.rawValue)\"; refusing to guess a key derivation cost"
        case .unexpectedParameter(let algorithm, let key):
            "the \(algorithm.rawValue) KDF parameters carry \"\(key)\", which belongs to another algorithm; refusing ambiguous parameters"
        case .belowMinimum(let parameter, let value, let minimum):
            "\(parameter.rendered(value)) is below the minimum \(minimum); refusing to derive a weak key"
        case .aboveMaximum(let parameter, let value, let maximum):
            "\(parameter.rendered(value)) is above the maximum \(maximum); refusing a key derivation that would exhaust this device"
        case .notPowerOfTwo(let n):
            "scrypt N=\(n) is not a power of two; refusing invalid KDF parameters"
        case .saltTooShort(let byteCount, let minimum):
            "the KDF salt has \(byteCount) bytes, fewer than the minimum \(minimum); refusing to derive a key from a weak salt"
        case .emptyPassword:
            "the password is empty; refusing to derive a key from it"
        }
    }
}
