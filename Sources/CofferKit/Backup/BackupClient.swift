import CofferCrypto
import CofferProtocol
import Crypto
import Foundation

/// The browser backup client's scheme in Swift: backups it writes restore in the browser and
/// the other way round. All cryptography happens here; the server sees only hashes and ciphertext.
public struct BackupClient: Sendable {
    public let api: APIClient

    public init(api: APIClient) {
        self.api = api
    }

    /// The hashes and key for one username and password.
    public struct Credentials: Sendable {
        public let userId: String
        public let storageKey: String
        let key: SymmetricKey

        public init(username: String, password: String) throws {
            self.userId = BackupScheme.userId(username: username)
            self.storageKey = BackupScheme.storageKey(userId: userId, password: password)
            self.key = try BackupScheme.encryptionKey(username: username, password: password)
        }
    }

    /// Registers the user id; true if it was new, false if it was already registered.
    @discardableResult
    public func register(_ credentials: Credentials) async throws -> Bool {
        do {
            let _: SuccessResponse = try await api.send(.POST, "/api/register", body: RegisterBackupUserRequest(userId: credentials.userId))
            return true
        } catch let error as CofferClientError where error.code == ErrorCode.userExists {
            return false
        }
    }

    /// Encrypts and saves `plaintext` as the new current backup, registering the user first if needed.
    public func save(_ plaintext: Data, credentials: Credentials, progress: TransferProgress? = nil) async throws -> SaveBackupResponse {
        let data = try BackupScheme.seal(plaintext, key: credentials.key)
        let request = SaveBackupRequest(userId: credentials.userId, storageKey: credentials.storageKey, data: data)
        do {
            return try await api.send(.POST, "/api/backup", body: request, progress: progress)
        } catch let error as CofferClientError where error.code == ErrorCode.userNotFound {
            try await register(credentials)
            return try await api.send(.POST, "/api/backup", body: request, progress: progress)
        }
    }

    /// Downloads and decrypts the current backup, or a kept `version`.
    public func restore(credentials: Credentials, version: Int? = nil) async throws -> (plaintext: Data, backup: BackupResponse) {
        var path = "/api/backup?userId=\(credentials.userId)&storageKey=\(credentials.storageKey)"
        if let version { path += "&version=\(version)" }
        let backup: BackupResponse = try await api.send(.GET, path)
        return (try BackupScheme.open(backup.data, key: credentials.key), backup)
    }

    /// The kept versions, newest first.
    public func versions(credentials: Credentials) async throws -> [BackupVersionSummary] {
        let path = "/api/backup/versions?userId=\(credentials.userId)&storageKey=\(credentials.storageKey)"
        let response: BackupVersionsResponse = try await api.send(.GET, path)
        return response.versions
    }

    /// Deletes the user and every backup it owns; returns how many backups went.
    public func deleteUser(credentials: Credentials) async throws -> Int {
        let request = DeleteBackupUserRequest(userId: credentials.userId, storageKey: credentials.storageKey)
        let response: DeleteBackupUserResponse = try await api.send(.DELETE, "/api/user", body: request)
        return response.deletedBackups
    }
}
