/// The password KDF and its cost, as the server stores them per account and hands them back at prelogin.
///
/// Wire form: `{"algorithm":"scrypt","n":131072,"r":8,"p":1}` or
/// `{"algorithm":"pbkdf2-sha256","iterations":600000}`; keys that do not apply are omitted.
/// The server is not trusted to choose the cost: `validate()` refuses anything weaker than the
/// minimums below (and anything so expensive it would be a denial of service) whatever it says.
public struct KDFParameters: Codable, Sendable, Equatable, Hashable {
    /// A password KDF Coffer accepts.
    public enum Algorithm: String, Codable, Sendable, Equatable, Hashable, CaseIterable {
        /// scrypt: memory-hard, the default for native clients.
        case scrypt
        /// PBKDF2-HMAC-SHA256: for browser clients, where WebCrypto offers no memory-hard KDF.
        case pbkdf2SHA256 = "pbkdf2-sha256"
    }

    /// Which KDF derives the master key.
    public var algorithm: Algorithm
    /// scrypt cost parameter N (a power of two); nil for PBKDF2.
    public var n: Int?
    /// scrypt block size r; nil for PBKDF2.
    public var r: Int?
    /// scrypt parallelism p; nil for PBKDF2.
    public var p: Int?
    /// PBKDF2 iteration count; nil for scrypt.
    public var iterations: Int?

    /// Parameters exactly as given; call `validate()` before deriving anything from them.
    public init(algorithm: Algorithm, n: Int? = nil, r: Int? = nil, p: Int? = nil, iterations: Int? = nil) {
        self.algorithm = algorithm
        self.n = n
        self.r = r
        self.p = p
        self.iterations = iterations
    }

    /// scrypt parameters.
    public static func scrypt(n: Int, r: Int, p: Int) -> KDFParameters {
        KDFParameters(algorithm: .scrypt, n: n, r: r, p: p)
    }

    /// PBKDF2-HMAC-SHA256 parameters.
    public static func pbkdf2SHA256(iterations: Int) -> KDFParameters {
        KDFParameters(algorithm: .pbkdf2SHA256, iterations: iterations)
    }

    // Minimums from SPEC §5 (OWASP's current guidance); a client never derives with less.

    /// Smallest scrypt N accepted (2^17).
    public static let minimumScryptN = 1 << 17
    /// Smallest scrypt r accepted.
    public static let minimumScryptR = 8
    /// Smallest scrypt p accepted.
    public static let minimumScryptP = 1
    /// Smallest PBKDF2-SHA256 iteration count accepted.
    public static let minimumPBKDF2Iterations = 600_000

    // Ceilings: a hostile server must not be able to make a client allocate gigabytes or spin for
    // hours. Each parameter is bounded on its own, and scrypt's memory (128·N·r bytes) and work
    // (N·r·p) are bounded together, because the individual ceilings multiplied would still be
    // 16 GiB of memory and ~2000 times the recommended work.

    /// Largest scrypt N accepted (2^22).
    public static let maximumScryptN = 1 << 22
    /// Largest scrypt r accepted.
    public static let maximumScryptR = 32
    /// Largest scrypt p accepted.
    public static let maximumScryptP = 16
    /// Largest scrypt memory accepted, 128·N·r bytes (1 GiB, eight times the recommended 128 MiB).
    public static let maximumScryptMemory = 1 << 30
    /// Largest scrypt work accepted, N·r·p (64 times the recommended 2^20).
    public static let maximumScryptWork = 1 << 26
    /// Largest PBKDF2-SHA256 iteration count accepted.
    public static let maximumPBKDF2Iterations = 10_000_000

    /// The default for new accounts: scrypt N=2^17, r=8, p=1.
    public static let recommended = KDFParameters.scrypt(n: minimumScryptN, r: minimumScryptR, p: minimumScryptP)
    /// For clients without scrypt (browsers): PBKDF2-SHA256 with 600 000 iterations.
    public static let browserCompatible = KDFParameters.pbkdf2SHA256(iterations: minimumPBKDF2Iterations)

    /// Throws unless these parameters are complete, unambiguous, at least the minimums and at most the ceilings.
    public func validate() throws(KDFError) {
        switch algorithm {
        case .scrypt:
            if iterations != nil { throw .unexpectedParameter(algorithm: algorithm, key: "iterations") }
            guard let n else { throw .missingParameter(.scryptN) }
            guard let r else { throw .missingParameter(.scryptR) }
            guard let p else { throw .missingParameter(.scryptP) }
            try Self.check(.scryptN, n, minimum: Self.minimumScryptN, maximum: Self.maximumScryptN)
            // scrypt's N must be a power of two; BoringSSL would refuse it later, but say why now.
            guard n & (n - 1) == 0 else { throw .notPowerOfTwo(n: n) }
            try Self.check(.scryptR, r, minimum: Self.minimumScryptR, maximum: Self.maximumScryptR)
            try Self.check(.scryptP, p, minimum: Self.minimumScryptP, maximum: Self.maximumScryptP)
            let memory = Self.saturatingProduct(128, n, r)
            guard memory <= Self.maximumScryptMemory else {
                throw .aboveMaximum(.scryptMemory, value: memory, maximum: Self.maximumScryptMemory)
            }
            let work = Self.saturatingProduct(n, r, p)
            guard work <= Self.maximumScryptWork else {
                throw .aboveMaximum(.scryptWork, value: work, maximum: Self.maximumScryptWork)
            }
        case .pbkdf2SHA256:
            for (key, value) in [("n", n), ("r", r), ("p", p)] where value != nil {
                throw .unexpectedParameter(algorithm: algorithm, key: key)
            }
            guard let iterations else { throw .missingParameter(.pbkdf2Iterations) }
            try Self.check(.pbkdf2Iterations, iterations, minimum: Self.minimumPBKDF2Iterations, maximum: Self.maximumPBKDF2Iterations)
        }
    }

    // 128·N·r can reach 2^34, which overflows a 32-bit Int (watchOS); saturate rather than trap.
    private static func saturatingProduct(_ factors: Int...) -> Int {
        factors.reduce(1) { product, factor in
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            return overflow ? Int.max : result
        }
    }

    private static func check(_ parameter: KDFError.Parameter, _ value: Int, minimum: Int, maximum: Int) throws(KDFError) {
        guard value >= minimum else { throw .belowMinimum(parameter, value: value, minimum: minimum) }
        guard value <= maximum else { throw .aboveMaximum(parameter, value: value, maximum: maximum) }
    }
}
