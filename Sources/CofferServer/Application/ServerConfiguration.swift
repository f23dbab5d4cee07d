import Logging

/// Everything the server can be configured with; built once (by `coffer serve` from flags and
/// environment) and passed down. Defaults are the documented ones.
public struct ServerConfiguration: Sendable {
    /// Interface to bind.
    public var host = "127.0.0.1"
    /// TCP port; 0 picks a free one.
    public var port = 8080
    /// Where data lives.
    public var database: DatabaseLocation = .sqlite(path: "./coffer-data/coffer.sqlite")
    /// Most PostgreSQL connections one instance opens.
    public var databasePoolSize = 16
    /// Browser origins allowed by CORS (`*` allows any).
    public var corsAllowedOrigins: [String] = []
    /// Largest backup accepted, in bytes of ciphertext.
    public var maxBackupSize = 5 * 1024 * 1024
    /// Backup versions kept per storage key, the current one included.
    public var backupVersionsKept = 10
    /// Item versions kept per item.
    public var itemVersionsKept = 20
    /// Largest item blob, in bytes of its envelope text.
    public var maxItemSize = 1024 * 1024
    /// Largest vault metadata envelope.
    public var maxVaultMetadataSize = 64 * 1024
    /// Largest request body on sync routes (a push carries many items).
    public var maxSyncRequestBody = 32 * 1024 * 1024
    /// Largest request body on routes other than backup saves.
    public var maxRequestBody = 1024 * 1024
    /// Writes allowed per storage key (counted in the database).
    public var backupWriteLimits: [RateLimit] = [RateLimit(count: 5, window: .hour), RateLimit(count: 20, window: .day)]
    /// New storage keys a user id may gain (counted in the database).
    public var backupNewKeyLimits: [RateLimit] = [RateLimit(count: 3, window: .hour), RateLimit(count: 10, window: .day)]
    /// New storage keys one client address may create, over all users.
    public var backupNewKeyAddressLimits: [RateLimit] = [RateLimit(count: 10, window: .hour)]
    /// Requests per client address on every route.
    public var addressLimits: [RateLimit] = [RateLimit(count: 600, window: .minute)]
    /// Registrations per client address (stricter than other routes).
    public var registerAddressLimits: [RateLimit] = [RateLimit(count: 10, window: .hour)]
    /// Secrets that verify backup request signatures; several allow rotation.
    public var backupSignatureSecrets: [String] = []
    /// When true, backup requests without a valid signature are refused.
    public var requireBackupSignatures = false
    /// How far a signature timestamp may be from the server clock, in seconds.
    public var signatureWindowSeconds = 300
    /// When true, backup data must look like ciphertext (422 otherwise).
    public var requireCiphertext = false
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy.
    public var trustForwardedHeaders = false
    /// Lifetime of access tokens, in seconds.
    public var accessTokenLifetime = 15 * 60
    /// Lifetime of refresh tokens (and so of an idle session), in seconds.
    public var refreshTokenLifetime = 30 * 24 * 3600
    /// A new token signing key is made when the newest is older than this, in seconds.
    public var signingKeyRotation = 7 * 24 * 3600
    /// Login attempts per client address.
    public var loginAddressLimits: [RateLimit] = [RateLimit(count: 20, window: .minute), RateLimit(count: 200, window: .hour)]
    /// Login attempts per account; a short window, so nobody can lock an owner out for long.
    public var loginAccountLimits: [RateLimit] = [RateLimit(count: 10, window: .minute)]
    /// Seconds a new `/ws` socket has to send AUTH.
    public var realtimeAuthTimeout: Double = 10
    /// Bytes a socket may have queued for sending before it is disconnected as too slow.
    public var realtimeQueueLimit = 1 << 20
    /// Seconds between WebSocket pings; a socket that does not answer one by the next is closed.
    public var realtimePingInterval = 30
    /// User lookups (`GET /api/users/lookup`) per account, so the directory cannot be scraped.
    public var lookupLimits: [RateLimit] = [RateLimit(count: 30, window: .minute), RateLimit(count: 200, window: .day)]
    /// Request head size and connection timeouts, enforced before any route runs.
    public var connectionLimits = ConnectionLimits()
    /// Log level.
    public var logLevel: Logger.Level = .info
    /// Log format.
    public var logFormat: LogFormat = .text

    public init() {}

    /// Upper bound on the body of `POST /api/backup`: base64 of the cap plus room for the JSON around it.
    public var maxBackupRequestBody: Int {
        (maxBackupSize + 2) / 3 * 4 + 64 * 1024
    }
}

/// Where the server keeps its data.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    /// Parses `--database`: `postgres://…`/`postgresql://…`, `sqlite://PATH`, `sqlite:PATH`, or a plain file path.
    public init(parsing text: String) throws(ConfigurationError) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else if text.hasPrefix("sqlite://") {
            self = .sqlite(path: String(text.dropFirst("sqlite://".count)))
        } else if text.hasPrefix("sqlite:") {
            self = .sqlite(path: String(text.dropFirst("sqlite:".count)))
        } else if text.contains("://") {
            throw ConfigurationError("database must be a postgres:// URL or an SQLite file path, not '\(text.split(separator: ":").first ?? "")://…'")
        } else if text.isEmpty {
            throw ConfigurationError("database must not be empty")
        } else {
            self = .sqlite(path: text)
        }
    }

    /// A description without credentials, safe to log.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let url):
            guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return "postgres" }
            return String(url[..<scheme.upperBound]) + "…" + String(url[at...])
        }
    }
}

/// Log output format.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// A configuration value that cannot be used, with a message naming it.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
