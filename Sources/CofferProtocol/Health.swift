/// `GET /health`.
public struct HealthResponse: Codable, Sendable, Equatable {
    public var status: String
    public var database: String
    public var version: String

    public init(status: String, database: String, version: String) {
        self.status = status
        self.database = database
        self.version = version
    }
}

/// The Coffer release this build belongs to.
public enum CofferVersion {
    public static let current = "0.1.0"
}
