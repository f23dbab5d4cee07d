import ArgumentParser
import CofferServer
import Foundation
import Logging
import Metrics
import Prometheus

extension Coffer {
    /// `coffer serve`: runs the server. Every option is also an environment variable.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the Coffer server (SQLite in ./coffer-data by default).",
            discussion: "Every option can also be set with the environment variable named in its help; a flag wins over the environment."
        )

        @Option(help: "Interface to listen on. (env: COFFER_HOST, default: 127.0.0.1)")
        var host: String?

        @Option(help: "TCP port; 0 picks a free one. (env: COFFER_PORT, default: 8080)")
        var port: Int?

        @Option(help: "SQLite file path or postgres://user:pass@host:5432/db URL (a Unix socket: postgres://user@/db?host=/var/run/postgresql). (env: COFFER_DATABASE, default: ./coffer-data/coffer.sqlite)")
        var database: String?

        @Option(help: "Most PostgreSQL connections per instance. (env: COFFER_DATABASE_POOL_SIZE, default: 16)")
        var databasePoolSize: Int?

        @Option(help: "Comma-separated browser origins allowed by CORS, or '*'. (env: COFFER_CORS_ORIGINS, default: none)")
        var corsOrigins: String?

        @Option(help: "Largest backup, in ciphertext bytes (e.g. 5MiB). (env: COFFER_MAX_BACKUP_SIZE, default: 5MiB)")
        var maxBackupSize: String?

        @Option(help: "Backup versions kept per storage key, current included. (env: COFFER_BACKUP_VERSIONS, default: 10)")
        var backupVersions: Int?

        @Option(help: "Item versions kept per item. (env: COFFER_ITEM_VERSIONS, default: 20)")
        var itemVersions: Int?

        @Option(help: "Largest item envelope (e.g. 1MiB). (env: COFFER_MAX_ITEM_SIZE, default: 1MiB)")
        var maxItemSize: String?

        @Option(help: "Largest request body on other routes (e.g. 1MiB). (env: COFFER_MAX_REQUEST_BODY, default: 1MiB)")
        var maxRequestBody: String?

        @Option(help: "Backup writes per storage key, e.g. '5/hour,20/day' or 'off'. (env: COFFER_BACKUP_WRITE_LIMITS, default: 5/hour,20/day)")
        var backupWriteLimits: String?

        @Option(help: "New storage keys per user id. (env: COFFER_BACKUP_NEW_KEY_LIMITS, default: 3/hour,10/day)")
        var backupNewKeyLimits: String?

        @Option(help: "New storage keys per client address. (env: COFFER_BACKUP_NEW_KEY_ADDRESS_LIMITS, default: 10/hour)")
        var backupNewKeyAddressLimits: String?

        @Option(help: "Requests per client address on every route. (env: COFFER_RATE_LIMIT, default: 600/minute)")
        var rateLimit: String?

        @Option(help: "Registrations per client address. (env: COFFER_REGISTER_RATE_LIMIT, default: 10/hour)")
        var registerRateLimit: String?

        @Option(help: "Comma-separated secrets that verify backup request signatures (rotation: any verifies). (env: COFFER_BACKUP_SIGNATURE_SECRETS, default: none)")
        var backupSignatureSecrets: String?

        @Option(help: "Refuse backup requests without a valid signature: true or false. (env: COFFER_REQUIRE_BACKUP_SIGNATURES, default: false)")
        var requireBackupSignatures: Bool?

        @Option(help: "Refuse backup data that does not look encrypted (422): true or false. (env: COFFER_REQUIRE_CIPHERTEXT, default: false)")
        var requireCiphertext: Bool?

        @Option(help: "Trust X-Forwarded-For/-Proto from a reverse proxy: true or false. (env: COFFER_TRUST_FORWARDED_HEADERS, default: false)")
        var trustForwardedHeaders: Bool?

        @Option(help: "Seconds an access token is valid. (env: COFFER_ACCESS_TOKEN_LIFETIME, default: 900)")
        var accessTokenLifetime: Int?

        @Option(help: "Seconds a refresh token (and an idle session) lives. (env: COFFER_REFRESH_TOKEN_LIFETIME, default: 2592000)")
        var refreshTokenLifetime: Int?

        @Option(help: "Seconds before a new token signing key is made. (env: COFFER_SIGNING_KEY_ROTATION, default: 604800)")
        var signingKeyRotation: Int?

        @Option(help: "Login and registration attempts per client address. (env: COFFER_LOGIN_RATE_LIMIT, default: 20/minute,200/hour)")
        var loginRateLimit: String?

        @Option(help: "Login attempts per account. (env: COFFER_LOGIN_ACCOUNT_RATE_LIMIT, default: 10/minute)")
        var loginAccountRateLimit: String?

        @Option(help: "User lookups (for sharing) per account. (env: COFFER_LOOKUP_RATE_LIMIT, default: 30/minute,200/day)")
        var lookupRateLimit: String?

        @Option(help: "Seconds a new /ws socket has to send AUTH. (env: COFFER_WS_AUTH_TIMEOUT, default: 10)")
        var wsAuthTimeout: Int?

        @Option(help: "Bytes a /ws socket may have waiting to be sent before it is cut off as too slow. (env: COFFER_WS_QUEUE_LIMIT, default: 1048576)")
        var wsQueueLimit: Int?

        @Option(help: "Seconds between WebSocket pings; a socket that misses one is closed. (env: COFFER_WS_PING_INTERVAL, default: 30)")
        var wsPingInterval: Int?

        @Option(help: "Seconds a connection has to send a whole request head once it opens or begins one (then 408). (env: COFFER_REQUEST_HEAD_TIMEOUT, default: 10)")
        var requestHeadTimeout: Int?

        @Option(help: "Seconds a connection may idle between requests, or stall in a body, before it is closed. (env: COFFER_IDLE_TIMEOUT, default: 75)")
        var idleTimeout: Int?

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. (env: COFFER_LOG_LEVEL, default: info)")
        var logLevel: String?

        @Option(help: "Log format: text or json. (env: COFFER_LOG_FORMAT, default: text)")
        var logFormat: String?

        func run() async throws {
            let configuration = try resolve(environment: ProcessInfo.processInfo.environment)
            let format = configuration.logFormat
            let level = configuration.logLevel
            LoggingSystem.bootstrap { label in
                var handler: any LogHandler = format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "coffer")
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            do {
                let app = try await buildApplication(configuration: configuration, logger: logger, registry: registry)
                logger.info("starting Coffer", metadata: ["version": "0.1.0", "database": "\(configuration.database)"])
                try await app.runService()
                logger.info("Coffer stopped")
            } catch {
                throw CLIError("the server stopped: \(error)")
            }
        }

        /// Reads flags, then the environment, then defaults: the one place configuration is read.
        func resolve(environment: [String: String]) throws -> ServerConfiguration {
            var configuration = ServerConfiguration()
            func value(_ flag: String?, _ name: String) -> String? {
                flag ?? environment[name].flatMap { $0.isEmpty ? nil : $0 }
            }
            func integer(_ flag: Int?, _ name: String, minimum: Int, maximum: Int = Int.max) throws -> Int? {
                if let flag {
                    guard flag >= minimum, flag <= maximum else { throw CLIError("\(name): must be between \(minimum) and \(maximum)") }
                    return flag
                }
                guard let text = environment[name], !text.isEmpty else { return nil }
                guard let number = Int(text), number >= minimum, number <= maximum else {
                    throw CLIError("\(name)=\(text): must be a whole number from \(minimum) to \(maximum)")
                }
                return number
            }
            func boolean(_ flag: Bool?, _ name: String) throws -> Bool? {
                if let flag { return flag }
                guard let text = environment[name]?.lowercased(), !text.isEmpty else { return nil }
                switch text {
                case "1", "true", "yes", "on": return true
                case "0", "false", "no", "off": return false
                default: throw CLIError("\(name)=\(text): must be true or false")
                }
            }
            func bytes(_ flag: String?, _ name: String) throws -> Int? {
                guard let text = value(flag, name) else { return nil }
                guard let count = ByteCount.parse(text), count > 0 else { throw CLIError("\(name)=\(text): must be a size such as 5MiB") }
                return count
            }
            func limits(_ flag: String?, _ name: String) throws -> [RateLimit]? {
                guard let text = value(flag, name) else { return nil }
                do { return try RateLimit.parseList(text) } catch { throw CLIError("\(name): \(error)") }
            }

            if let host = value(host, "COFFER_HOST") { configuration.host = host }
            if let port = try integer(port, "COFFER_PORT", minimum: 0) {
                guard port <= 65535 else { throw CLIError("COFFER_PORT: must be at most 65535") }
                configuration.port = port
            }
            if let database = value(database, "COFFER_DATABASE") {
                do { configuration.database = try DatabaseLocation(parsing: database) } catch { throw CLIError("COFFER_DATABASE: \(error)") }
            }
            if let size = try integer(databasePoolSize, "COFFER_DATABASE_POOL_SIZE", minimum: 1) { configuration.databasePoolSize = size }
            if let origins = value(corsOrigins, "COFFER_CORS_ORIGINS") {
                configuration.corsAllowedOrigins = origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            if let size = try bytes(maxBackupSize, "COFFER_MAX_BACKUP_SIZE") { configuration.maxBackupSize = size }
            if let count = try integer(backupVersions, "COFFER_BACKUP_VERSIONS", minimum: 1) { configuration.backupVersionsKept = count }
            if let count = try integer(itemVersions, "COFFER_ITEM_VERSIONS", minimum: 1) { configuration.itemVersionsKept = count }
            if let size = try bytes(maxRequestBody, "COFFER_MAX_REQUEST_BODY") { configuration.maxRequestBody = size }
            if let size = try bytes(maxItemSize, "COFFER_MAX_ITEM_SIZE") { configuration.maxItemSize = size }
            if let list = try limits(backupWriteLimits, "COFFER_BACKUP_WRITE_LIMITS") { configuration.backupWriteLimits = list }
            if let list = try limits(backupNewKeyLimits, "COFFER_BACKUP_NEW_KEY_LIMITS") { configuration.backupNewKeyLimits = list }
            if let list = try limits(backupNewKeyAddressLimits, "COFFER_BACKUP_NEW_KEY_ADDRESS_LIMITS") { configuration.backupNewKeyAddressLimits = list }
            if let list = try limits(rateLimit, "COFFER_RATE_LIMIT") { configuration.addressLimits = list }
            if let list = try limits(registerRateLimit, "COFFER_REGISTER_RATE_LIMIT") { configuration.registerAddressLimits = list }
            if let secrets = value(backupSignatureSecrets, "COFFER_BACKUP_SIGNATURE_SECRETS") {
                configuration.backupSignatureSecrets = secrets.split(separator: ",").map(String.init).filter { !$0.isEmpty }
            }
            if let flag = try boolean(requireBackupSignatures, "COFFER_REQUIRE_BACKUP_SIGNATURES") { configuration.requireBackupSignatures = flag }
            if configuration.requireBackupSignatures && configuration.backupSignatureSecrets.isEmpty {
                throw CLIError("signatures are required but no secret is configured (COFFER_BACKUP_SIGNATURE_SECRETS)")
            }
            if let flag = try boolean(requireCiphertext, "COFFER_REQUIRE_CIPHERTEXT") { configuration.requireCiphertext = flag }
            if let flag = try boolean(trustForwardedHeaders, "COFFER_TRUST_FORWARDED_HEADERS") { configuration.trustForwardedHeaders = flag }
            if let seconds = try integer(accessTokenLifetime, "COFFER_ACCESS_TOKEN_LIFETIME", minimum: 30) { configuration.accessTokenLifetime = seconds }
            if let seconds = try integer(refreshTokenLifetime, "COFFER_REFRESH_TOKEN_LIFETIME", minimum: 60) { configuration.refreshTokenLifetime = seconds }
            if let seconds = try integer(signingKeyRotation, "COFFER_SIGNING_KEY_ROTATION", minimum: 60) { configuration.signingKeyRotation = seconds }
            if let list = try limits(loginRateLimit, "COFFER_LOGIN_RATE_LIMIT") { configuration.loginAddressLimits = list }
            if let list = try limits(loginAccountRateLimit, "COFFER_LOGIN_ACCOUNT_RATE_LIMIT") { configuration.loginAccountLimits = list }
            if let list = try limits(lookupRateLimit, "COFFER_LOOKUP_RATE_LIMIT") { configuration.lookupLimits = list }
            if let seconds = try integer(wsAuthTimeout, "COFFER_WS_AUTH_TIMEOUT", minimum: 1) { configuration.realtimeAuthTimeout = Double(seconds) }
            if let bytes = try integer(wsQueueLimit, "COFFER_WS_QUEUE_LIMIT", minimum: 64 * 1024) { configuration.realtimeQueueLimit = bytes }
            if let seconds = try integer(wsPingInterval, "COFFER_WS_PING_INTERVAL", minimum: 1) { configuration.realtimePingInterval = seconds }
            if let seconds = try integer(requestHeadTimeout, "COFFER_REQUEST_HEAD_TIMEOUT", minimum: 1, maximum: 3600) {
                configuration.connectionLimits.requestHeadTimeout = Double(seconds)
            }
            if let seconds = try integer(idleTimeout, "COFFER_IDLE_TIMEOUT", minimum: 1, maximum: 86400) { configuration.connectionLimits.idleTimeout = Double(seconds) }
            if let text = value(logLevel, "COFFER_LOG_LEVEL") {
                guard let level = Logger.Level(rawValue: text.lowercased()) else { throw CLIError("COFFER_LOG_LEVEL=\(text): unknown level") }
                configuration.logLevel = level
            }
            if let text = value(logFormat, "COFFER_LOG_FORMAT") {
                guard let format = LogFormat(rawValue: text.lowercased()) else { throw CLIError("COFFER_LOG_FORMAT=\(text): must be text or json") }
                configuration.logFormat = format
            }
            return configuration
        }
    }
}
