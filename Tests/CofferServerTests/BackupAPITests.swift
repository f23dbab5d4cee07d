import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// SPEC.md §4: every route, status and body of the blind backup API, on SQLite and PostgreSQL.
@Suite("Backup API")
struct BackupAPITests {
    struct User {
        let userId = randomHash()
        let storageKey = randomHash()
    }

    func register(_ client: some TestClientProtocol, _ user: User) async throws {
        let response = try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: user.userId))
        #expect(response.status == .ok)
    }

    func save(_ client: some TestClientProtocol, _ user: User, data: String = randomCiphertext(bytes: 64), key: String? = nil) async throws -> TestResponse {
        try await client.json(.post, "/api/backup", SaveBackupRequest(userId: user.userId, storageKey: key ?? user.storageKey, data: data))
    }

    @Test(arguments: TestBackend.available)
    func registerAndConflict(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = User()
            let first = try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: user.userId))
            #expect(first.status == .ok)
            #expect(try first.decode(SuccessResponse.self) == SuccessResponse(success: true))
            let second = try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: user.userId))
            #expect(second.status == .conflict)
            #expect(second.error?.code == "user_exists")
        }
    }

    @Test(arguments: TestBackend.available)
    func saveRestoreAndVersions(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.backupVersionsKept = 3 }).test(.router) { client in
            let user = User()
            try await register(client, user)
            var payloads: [String] = []
            for version in 1...5 {
                let data = randomCiphertext(bytes: 100 + version)
                payloads.append(data)
                let response = try await save(client, user, data: data)
                #expect(response.status == .ok)
                let saved = try response.decode(SaveBackupResponse.self)
                #expect(saved.success && saved.version == version && saved.size == 100 + version)
            }
            let query = "userId=\(user.userId)&storageKey=\(user.storageKey)"
            let current = try await client.get("/api/backup?\(query)")
            #expect(current.status == .ok)
            let backup = try current.decode(BackupResponse.self)
            #expect(backup.data == payloads[4] && backup.version == 5 && backup.size == 105)
            #expect(backup.createdAt <= backup.updatedAt)

            let third = try await client.get("/api/backup?\(query)&version=3").decode(BackupResponse.self)
            #expect(third.data == payloads[2] && third.version == 3)

            let pruned = try await client.get("/api/backup?\(query)&version=2")
            #expect(pruned.status == .notFound)
            #expect(pruned.error?.code == "backup_not_found")

            let versions = try await client.get("/api/backup/versions?\(query)").decode(BackupVersionsResponse.self)
            #expect(versions.versions.map(\.version) == [5, 4, 3])
            #expect(versions.versions.map(\.size) == [105, 104, 103])
        }
    }

    @Test(arguments: TestBackend.available)
    func browserEnvelopeIsAcceptedAsOpaqueData(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.requireCiphertext = true }).test(.router) { client in
            let user = User()
            try await register(client, user)
            let envelope = #"{"encrypted":"\#(randomCiphertext(bytes: 2048))","nonce":"AxQlNkdYaXqLnK2+"}"#
            let response = try await save(client, user, data: envelope)
            #expect(response.status == .ok)
            #expect(try response.decode(SaveBackupResponse.self).size == 2048)
            let restored = try await client.get("/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)").decode(BackupResponse.self)
            #expect(restored.data == envelope)
        }
    }

    @Test(arguments: TestBackend.available)
    func saveErrors(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.maxBackupSize = 4096 }).test(.router) { client in
            let owner = User()
            let other = User()
            try await register(client, owner)
            try await register(client, other)

            let unregistered = try await save(client, User())
            #expect(unregistered.status == .notFound)
            #expect(unregistered.error?.code == "user_not_found")

            #expect(try await save(client, owner).status == .ok)
            let stolen = try await save(client, other, key: owner.storageKey)
            #expect(stolen.status == .forbidden)
            #expect(stolen.error?.code == "storage_key_forbidden")

            let tooLarge = try await save(client, owner, data: randomCiphertext(bytes: 4097))
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.error?.code == "backup_too_large")
            #expect(try await save(client, owner, data: randomCiphertext(bytes: 4096)).status == .ok)

            let empty = try await save(client, owner, data: "")
            #expect(empty.status == .badRequest)
            #expect(empty.error?.error.contains("data") == true)

            let badKey = try await save(client, owner, key: "ABC")
            #expect(badKey.status == .badRequest)
            #expect(badKey.error?.error.contains("storageKey") == true)
        }
    }

    @Test(arguments: TestBackend.available)
    func ciphertextCheck(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.requireCiphertext = true }).test(.router) { client in
            let user = User()
            try await register(client, user)
            let plaintextJSON = Data(#"{"workouts":[{"reps":42}]}"#.utf8).base64EncodedString()
            let lowEntropy = Data(String(repeating: "the same words again ", count: 100).utf8).base64EncodedString()
            for data in [plaintextJSON, lowEntropy, "not base64 at all!", #"{"encrypted":"\#(plaintextJSON)","nonce":"AAAA"}"#] {
                let response = try await save(client, user, data: data)
                #expect(response.status == .unprocessableContent, "\(data.prefix(30))")
                #expect(response.error?.code == "not_ciphertext")
            }
            #expect(try await save(client, user, data: randomCiphertext(bytes: 4096)).status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func restoreAndVersionsErrors(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = User()
            try await register(client, user)
            #expect(try await save(client, user).status == .ok)
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("/api/backup", .badRequest, "invalid_query"),
                ("/api/backup?userId=\(user.userId)", .badRequest, "invalid_query"),
                ("/api/backup?userId=xyz&storageKey=\(user.storageKey)", .badRequest, "invalid_query"),
                ("/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)&version=abc", .badRequest, "invalid_query"),
                ("/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)&version=0", .badRequest, "invalid_query"),
                ("/api/backup?userId=\(user.userId)&storageKey=\(randomHash())", .notFound, "backup_not_found"),
                ("/api/backup?userId=\(randomHash())&storageKey=\(user.storageKey)", .notFound, "backup_not_found"),
                ("/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)&version=9", .notFound, "backup_not_found"),
                ("/api/backup/versions?storageKey=\(user.storageKey)", .badRequest, "invalid_query"),
                ("/api/backup/versions?userId=\(user.userId)&storageKey=\(randomHash())", .notFound, "backup_not_found"),
                ("/api/backup/versions?userId=\(randomHash())&storageKey=\(user.storageKey)", .notFound, "backup_not_found"),
            ]
            for (uri, status, code) in cases {
                let response = try await client.get(uri)
                #expect(response.status == status, "\(uri)")
                #expect(response.error?.code == code, "\(uri)")
            }
        }
    }

    @Test(arguments: TestBackend.available)
    func deleteUser(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = User()
            let other = User()
            try await register(client, user)
            try await register(client, other)
            #expect(try await save(client, user).status == .ok)
            #expect(try await save(client, user, key: randomHash()).status == .ok)
            #expect(try await save(client, other).status == .ok)

            let withoutKey = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: user.userId, storageKey: nil))
            #expect(withoutKey.status == .forbidden)
            let othersKey = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: user.userId, storageKey: other.storageKey))
            #expect(othersKey.status == .forbidden)
            #expect(othersKey.error?.code == "storage_key_forbidden")
            let malformed = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: "ABC", storageKey: user.storageKey))
            #expect(malformed.status == .badRequest)
            #expect(malformed.error?.error.contains("userId") == true)
            let badKey = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: user.userId, storageKey: "xyz"))
            #expect(badKey.status == .badRequest)
            let unknown = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: randomHash(), storageKey: randomHash()))
            #expect(unknown.status == .notFound)
            #expect(unknown.error?.code == "user_not_found")

            let deleted = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: user.userId, storageKey: user.storageKey))
            #expect(deleted.status == .ok)
            #expect(try deleted.decode(DeleteBackupUserResponse.self) == DeleteBackupUserResponse(deletedBackups: 2))
            let gone = try await client.get("/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)")
            #expect(gone.status == .notFound)
            let goneVersions = try await client.get("/api/backup/versions?userId=\(user.userId)&storageKey=\(user.storageKey)")
            #expect(goneVersions.status == .notFound)
            // The other user's backup is untouched.
            #expect(try await client.get("/api/backup?userId=\(other.userId)&storageKey=\(other.storageKey)").status == .ok)

            // A user without backups is deleted by its id alone.
            let bare = User()
            try await register(client, bare)
            let bareDelete = try await client.json(.delete, "/api/user", DeleteBackupUserRequest(userId: bare.userId, storageKey: nil))
            #expect(bareDelete.status == .ok)
            #expect(try bareDelete.decode(DeleteBackupUserResponse.self).deletedBackups == 0)
            // And can register again.
            try await register(client, bare)
        }
    }
}
