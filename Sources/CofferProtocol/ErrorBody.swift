/// The JSON body of every error response: `{"error": "<human readable>", "code": "<machine_code>"}`.
public struct ErrorBody: Codable, Sendable, Equatable {
    public var error: String
    public var code: String

    public init(error: String, code: String) {
        self.error = error
        self.code = code
    }
}

/// `{"success": true}`, the body of simple acknowledgements.
public struct SuccessResponse: Codable, Sendable, Equatable {
    public var success: Bool

    public init(success: Bool = true) {
        self.success = success
    }
}
