import CofferProtocol

/// Numbers from the server are checked before the SDK computes with them: a version or key
/// epoch at the end of its range (or outside it) is an invalid answer, never an arithmetic trap.
enum ServerNumbers {
    /// The version a write on top of `version` gets.
    static func version(after version: Int, of item: String) throws -> Int {
        guard Validation.versions.contains(version), version < Validation.versions.upperBound else {
            throw CofferClientError.invalidResponse("item \(item) has version \(version), outside \(Validation.describe(Validation.versions))")
        }
        return version + 1
    }

    /// The key epoch a rotation from `epoch` gets.
    static func keyEpoch(after epoch: Int, of vault: String) throws -> Int {
        guard Validation.keyEpochs.contains(epoch), epoch < Validation.keyEpochs.upperBound else {
            throw CofferClientError.invalidResponse("vault \(vault) has key epoch \(epoch), outside \(Validation.describe(Validation.keyEpochs))")
        }
        return epoch + 1
    }
}
