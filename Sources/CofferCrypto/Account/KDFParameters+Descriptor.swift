import CofferProtocol
import Foundation

extension KDFParameters {
    /// The parameters a wire `KDFDescriptor` names; throws when the algorithm is unknown.
    /// Minimums are not checked here: call `validate()`.
    public init(descriptor: KDFDescriptor) throws {
        self = try JSONDecoder().decode(KDFParameters.self, from: JSONEncoder().encode(descriptor))
    }

    /// These parameters as they travel.
    public var descriptor: KDFDescriptor {
        KDFDescriptor(algorithm: algorithm.rawValue, iterations: iterations, n: n, r: r, p: p)
    }
}
