import CofferProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a logged-in device keeps: tokens, identity, and the account key it unwrapped at login
/// (so later commands need no password). Written with mode 0600.
public struct StoredSession: Codable, Sendable, Equatable {
    public var server: String
    public var userId: String
    public var email: String
    public var deviceId: String
    public var accessToken: String
    public var accessExpiresAt: Timestamp
    public var refreshToken: String
    public var kdf: KDFDescriptor
    /// Base64url of the account key.
    public var accountKey: String
    public var keys: AccountKeysPayload
    /// Seconds an access token of this server lasts; nil in sessions saved before it was recorded.
    public var accessLifetime: Int64?

    /// How long before expiry the access token is renewed: half its lifetime, at most 30 s (so a
    /// 30 s token is renewed every 15 s, not before every request).
    public var refreshMargin: Duration { .milliseconds(refreshMarginMilliseconds) }

    private var refreshMarginMilliseconds: Int64 {
        // Compared before multiplying: the lifetime is the server's number.
        guard let accessLifetime, accessLifetime > 0, accessLifetime < 60 else { return 30_000 }
        return accessLifetime * 500
    }

    /// When the access token is due for renewal.
    public var renewAt: Timestamp { Timestamp(milliseconds: accessExpiresAt.milliseconds.saturatingSubtracting(refreshMarginMilliseconds)) }

    /// Whether the access token is within its margin of expiry at `now`.
    public func needsRefresh(at now: Timestamp = .now) -> Bool { renewAt <= now }
}

/// The exclusive lock on a configuration directory's session (`session.lock`, flock): held
/// while a refresh token is spent and the session file rewritten, so that two processes of one
/// device never present the same refresh token. Released by `release()`, or by the kernel when
/// the process dies.
public struct SessionLock: Sendable {
    private let descriptor: Int32

    fileprivate init(descriptor: Int32) { self.descriptor = descriptor }

    public func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// Files in the per-user configuration directory: the session, this device's id, and the KDF
/// parameters last used per account (to refuse a server that tries to weaken them).
public struct SessionStore: Sendable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// `$COFFER_CONFIG_DIR`, else `$XDG_CONFIG_HOME/coffer`, else `~/.config/coffer`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let explicit = environment["COFFER_CONFIG_DIR"], !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("coffer") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/coffer")
    }

    public func loadSession() throws -> StoredSession? {
        try load(StoredSession.self, "session.json")
    }

    public func saveSession(_ session: StoredSession) throws {
        try save(session, "session.json")
    }

    /// Waits for and takes the session lock. The wait blocks a thread outside Swift's
    /// cooperative pool, never an actor.
    public func lockSession() async throws -> SessionLock {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = directory.appendingPathComponent("session.lock").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CofferError.localStorage("cannot open \(path): \(String(cString: strerror(errno)))") }
        let failure: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                while flock(descriptor, LOCK_EX) != 0 {
                    if errno != EINTR { return continuation.resume(returning: errno) }
                }
                continuation.resume(returning: 0)
            }
        }
        guard failure == 0 else {
            close(descriptor)
            throw CofferError.localStorage("cannot lock \(path): \(String(cString: strerror(failure)))")
        }
        return SessionLock(descriptor: descriptor)
    }

    public func deleteSession() throws {
        let url = directory.appendingPathComponent("session.json")
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
    }

    /// This device's id, created once.
    public func deviceId() throws -> String {
        struct Device: Codable { var id: String }
        if let device = try load(Device.self, "device.json") { return device.id }
        let device = Device(id: UUID().uuidString.lowercased())
        try save(device, "device.json")
        return device.id
    }

    public func rememberedKDF(email: String) throws -> KDFDescriptor? {
        try load([String: KDFDescriptor].self, "kdf.json")?[email]
    }

    public func rememberKDF(_ kdf: KDFDescriptor, email: String) throws {
        var all = try load([String: KDFDescriptor].self, "kdf.json") ?? [:]
        all[email] = kdf
        try save(all, "kdf.json")
    }

    /// The identity key (base64url) this device has seen for an account, by server and email:
    /// once seen, an answer without it, or with another, is refused.
    public func rememberedIdentity(server: String, email: String) throws -> String? {
        try load([String: String].self, "identities.json")?["\(server) \(email)"]
    }

    public func rememberIdentity(_ identityKey: String, server: String, email: String) throws {
        var all = try load([String: String].self, "identities.json") ?? [:]
        all["\(server) \(email)"] = identityKey
        try save(all, "identities.json")
    }

    func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T? {
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return try JSONDecoder().decode(T.self, from: data)
    }

    func save<T: Encodable>(_ value: T, _ name: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(value)
        let url = directory.appendingPathComponent(name)
        let temporary = directory.appendingPathComponent(".\(name).\(UUID().uuidString)")
        // Created 0600 before any secret is written, then renamed into place atomically.
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw CofferError.localStorage("cannot write \(temporary.path)")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        guard rename(temporary.path, url.path) == 0 else { throw CofferError.localStorage("cannot replace \(url.path)") }
    }
}

/// Client-side failures that are not the server's answer.
public enum CofferError: Error, Equatable, CustomStringConvertible {
    /// Key derivation parameters are below the minimum, absurd, or weaker than this device used before.
    case weakKeyDerivation(String)
    /// Ciphertext failed to authenticate: wrong password, or the server returned altered data.
    case tampered(String)
    case notLoggedIn
    case localStorage(String)
    /// A contact's sharing key differs from the one pinned on first use; the user must verify it.
    case contactKeyChanged(email: String, pinned: String, offered: String)
    /// Sealed under a vault key epoch this device does not hold (a rotation it has not read yet).
    case unknownKeyEpoch(what: String, epoch: Int, known: Int)

    public var description: String {
        switch self {
        case .weakKeyDerivation(let detail): "refusing to log in: \(detail)"
        case .tampered(let detail): "tamper error: \(detail)"
        case .notLoggedIn: "not logged in: run `coffer account login` first"
        case .localStorage(let detail): "local storage: \(detail)"
        case .contactKeyChanged(let email, let pinned, let offered):
            "the key of \(email) changed since it was pinned (pinned fingerprint \(pinned), now \(offered)); "
                + "verify it with them, then run `coffer contacts verify \(email) --accept`"
        case .unknownKeyEpoch(let what, let epoch, let known):
            "tamper error: \(what) is sealed under vault key \(epoch), which this device does not hold (it holds keys up to \(known))"
        }
    }
}
