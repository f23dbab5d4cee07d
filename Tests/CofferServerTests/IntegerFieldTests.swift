import CofferCrypto
@testable import CofferKit
import CofferProtocol
@testable import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// No number from the wire can crash the server: every integer field of every route (headers,
/// query parameters, JSON bodies, `/ws` messages) gets the ends of `Int64`, −1, 0, the largest
/// value Coffer accepts and one past it, and decimals that fit no integer. Each is answered with
/// a 400 naming the field or a normal answer, never a 5xx and never a trap (which would end this
/// test process).
@Suite("Integer fields")
struct IntegerFieldTests {
    /// Numbers no integer field accepts (all are out of range, or not integers at all).
    static let refused = [
        "-9223372036854775808", "9223372036854775807", "-1", "99999999999999999999", "-99999999999999999999", "1e400", "1.5",
        "9007199254740992",
    ]
    /// Numbers some fields accept: 0, 1 and the largest counter (2^53 − 1).
    static let edges = ["0", "1", "2147483647", "2147483648", "9007199254740991"]
    static var all: [String] { refused + edges }

    /// The codes of a 400 that refuses one field.
    static let validationCodes: Set<String> = [
        ErrorCode.invalidField, ErrorCode.invalidQuery, ErrorCode.invalidHeader, ErrorCode.missingField, ErrorCode.weakKDF,
    ]

    /// A 400 naming `field` when `mustRefuse`; otherwise any answer below 500 (a 400 then may
    /// name another field, one that the accepted number let the request reach).
    static func expectAnswered(_ response: TestResponse, field: String, value: String, mustRefuse: Bool, _ what: String) {
        let comment = Comment(rawValue: "\(what) \(field)=\(value): \(response.status) \(String(buffer: response.body))")
        #expect(response.status.code < 500, comment)
        if mustRefuse { #expect(response.status == .badRequest, comment) }
        guard response.status == .badRequest else { return }
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, comment)
        let error = response.error
        #expect(error.map { validationCodes.contains($0.code) } == true, comment)
        if mustRefuse { #expect(error?.error.contains(field) == true, comment) }
    }

    /// `value` encoded, with the member at `path` replaced by the raw number text `number`.
    static func body(_ value: some Encodable, setting path: [String], to number: String) throws -> [UInt8] {
        let marker = "@@number@@"
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
        func set(_ node: Any, _ path: ArraySlice<String>) -> Any {
            guard let key = path.first else { return marker }
            if var array = node as? [Any], let index = Int(key) {
                array[index] = set(array[index], path.dropFirst())
                return array
            }
            var dictionary = node as? [String: Any] ?? [:]
            dictionary[key] = set(dictionary[key] ?? [String: Any](), path.dropFirst())
            return dictionary
        }
        object = set(object, path[...])
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        return Array(text.replacingOccurrences(of: "\"\(marker)\"", with: number).utf8)
    }

    static func send(
        _ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, body: [UInt8]? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if body != nil { headers[.contentType] = "application/json" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(bytes: $0) })
    }

    // MARK: Headers

    @Test("X-Coffer-Timestamp on the backup routes", arguments: TestBackend.available)
    func signatureTimestamp(_ backend: TestBackend) async throws {
        let secret = "integer-field-secret"
        try await makeTestApp(backend, { $0.backupSignatureSecrets = [secret] }).test(.router) { client in
            let userId = randomHash()
            for value in Self.all {
                let body = try JSONEncoder().encode(RegisterBackupUserRequest(userId: userId))
                let signature = RequestSignature.sign(secret: secret, timestamp: value, method: "POST", pathWithQuery: "/api/register", body: body)
                let register = try await client.execute(
                    uri: "/api/register", method: .post,
                    headers: [.contentType: "application/json", .cofferTimestamp: value, .cofferSignature: signature], body: ByteBuffer(bytes: body)
                )
                Self.expectAnswered(register, field: "X-Coffer-Timestamp", value: value, mustRefuse: Self.refused.contains(value), "POST /api/register")
                if !Self.refused.contains(value) { #expect(register.status == .badRequest || register.error?.code == ErrorCode.signatureStale) }
                let versions = try await client.execute(
                    uri: "/api/backup/versions?userId=\(userId)&storageKey=\(randomHash())", method: .get,
                    headers: [.cofferTimestamp: value, .cofferSignature: String(repeating: "0", count: 64)]
                )
                Self.expectAnswered(versions, field: "X-Coffer-Timestamp", value: value, mustRefuse: Self.refused.contains(value), "GET /api/backup/versions")
            }
        }
    }

    // MARK: Query parameters

    @Test("since, limit, before and version in queries", arguments: TestBackend.available)
    func queryParameters(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = try await SignedInUser.register(client)
            let vault = try await client.createVault(user)
            _ = try await client.createItem(user, vault: vault.id)
            let userId = randomHash()
            let storageKey = randomHash()
            #expect(try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: userId)).status.code < 300)
            for value in Self.all {
                let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value
                // Every one of these is at least 1 where accepted, so 0 is refused too.
                let positive = Self.refused.contains(value) || value == "0"
                for (name, uri, refuse) in [
                    ("since", "/api/vaults/\(vault.id)/items?since=\(encoded)", Self.refused.contains(value)),
                    ("limit", "/api/vaults/\(vault.id)/items?limit=\(encoded)", positive || value.count > 4),
                    ("limit", "/api/audit?limit=\(encoded)", positive || value.count > 3),
                    ("before", "/api/audit?before=\(encoded)", positive),
                ] {
                    let response = try await Self.send(client, .get, uri, token: user.token)
                    Self.expectAnswered(response, field: name, value: value, mustRefuse: refuse, "GET \(uri)")
                }
                let backup = try await Self.send(client, .get, "/api/backup?userId=\(userId)&storageKey=\(storageKey)&version=\(encoded)")
                Self.expectAnswered(backup, field: "version", value: value, mustRefuse: positive, "GET /api/backup")
            }
        }
    }

    // MARK: JSON bodies

    @Test("kdf parameters of registration and password change", arguments: TestBackend.available)
    func kdfParameters(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = try await SignedInUser.register(client)
            let scrypt = KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1)
            let pbkdf2 = KDFDescriptor(algorithm: "pbkdf2-sha256", iterations: 600_000)
            for value in Self.all {
                for (kdf, field) in [(scrypt, "n"), (scrypt, "r"), (scrypt, "p"), (pbkdf2, "iterations")] {
                    let account = try TestAccount()
                    let register = try Self.body(account.registerRequest(kdf: kdf), setting: ["kdf", field], to: value)
                    let response = try await Self.send(client, .post, "/api/auth/register", body: register)
                    Self.expectAnswered(response, field: "kdf", value: value, mustRefuse: Self.refused.contains(value), "POST /api/auth/register")
                    let change = ChangePasswordRequest(
                        challenge: "x", signature: "x", kdf: kdf, salt: account.salt, loginPublicKey: account.keys.loginPublicKey,
                        encryptedAccountKey: account.bundle.encryptedAccountKey, encryptedPrivateKey: account.bundle.encryptedPrivateKey
                    )
                    let password = try await Self.send(
                        client, .post, "/api/auth/password", token: user.token, body: try Self.body(change, setting: ["kdf", field], to: value)
                    )
                    Self.expectAnswered(password, field: "kdf", value: value, mustRefuse: Self.refused.contains(value), "POST /api/auth/password")
                }
            }
        }
    }

    @Test("baseVersion and version of item writes, restores and resolves", arguments: TestBackend.available)
    func itemVersions(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = try await SignedInUser.register(client)
            let vault = try await client.createVault(user)
            for value in Self.all {
                // A fresh item each time, so an accepted value (a real write) cannot affect the next.
                let item = try await client.createItem(user, vault: vault.id)
                let positive = Self.refused.contains(value) || value == "0"
                let update = try Self.body(UpdateItemRequest(baseVersion: 1, encryptedData: try envelope()), setting: ["baseVersion"], to: value)
                Self.expectAnswered(
                    try await Self.send(client, .put, "/api/items/\(item.id)", token: user.token, body: update),
                    field: "baseVersion", value: value, mustRefuse: positive, "PUT /api/items/:id"
                )
                let delete = try Self.body(DeleteItemRequest(baseVersion: 1), setting: ["baseVersion"], to: value)
                Self.expectAnswered(
                    try await Self.send(client, .delete, "/api/items/\(item.id)", token: user.token, body: delete),
                    field: "baseVersion", value: value, mustRefuse: positive, "DELETE /api/items/:id"
                )
                let restore = try Self.body(RestoreItemRequest(version: 1), setting: ["version"], to: value)
                Self.expectAnswered(
                    try await Self.send(client, .post, "/api/items/\(item.id)/restore", token: user.token, body: restore),
                    field: "version", value: value, mustRefuse: positive, "POST /api/items/:id/restore"
                )
                for strategy in ["client", "server"] {
                    let resolve = try Self.body(
                        ResolveRequest(itemId: item.id, baseVersion: 1, encryptedData: try envelope(), strategy: strategy), setting: ["baseVersion"], to: value
                    )
                    Self.expectAnswered(
                        try await Self.send(client, .post, "/api/sync/resolve", token: user.token, body: resolve),
                        field: "baseVersion", value: value, mustRefuse: positive, "POST /api/sync/resolve (\(strategy))"
                    )
                }
            }
        }
    }

    @Test("cursors, limit and baseVersion of sync pulls and pushes", arguments: TestBackend.available)
    func syncFields(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let user = try await SignedInUser.register(client)
            let vault = try await client.createVault(user)
            for value in Self.all {
                let cursor = try Self.body(PullRequest(vaults: [vault.id: 0]), setting: ["vaults", vault.id], to: value)
                Self.expectAnswered(
                    try await Self.send(client, .post, "/api/sync/pull", token: user.token, body: cursor),
                    field: "vaults", value: value, mustRefuse: Self.refused.contains(value), "POST /api/sync/pull"
                )
                let limit = try Self.body(PullRequest(limit: 1), setting: ["limit"], to: value)
                Self.expectAnswered(
                    try await Self.send(client, .post, "/api/sync/pull", token: user.token, body: limit),
                    field: "limit", value: value, mustRefuse: Self.refused.contains(value) || value == "0" || value.count > 4, "POST /api/sync/pull"
                )
                // A push answers 200 with each change's own result: a refused number is a rejected change naming the field.
                let item = try await client.createItem(user, vault: vault.id)
                for deleted in [false, true] {
                    let change = PushChange(vaultId: vault.id, itemId: item.id, baseVersion: 1, encryptedData: deleted ? nil : try envelope(), deleted: deleted)
                    let push = try Self.body(PushRequest(changes: [change]), setting: ["changes", "0", "baseVersion"], to: value)
                    let response = try await Self.send(client, .post, "/api/sync/push", token: user.token, body: push)
                    let comment = Comment(rawValue: "POST /api/sync/push baseVersion=\(value): \(response.status) \(String(buffer: response.body))")
                    #expect(response.status == .ok || response.status == .badRequest, comment)
                    if response.status == .badRequest {
                        Self.expectAnswered(response, field: "baseVersion", value: value, mustRefuse: true, "POST /api/sync/push")
                    } else if Self.refused.contains(value) {
                        let result = try response.decode(PushResponse.self).results.first
                        #expect(result?.status == .rejected && result?.error?.code == ErrorCode.invalidField, comment)
                        #expect(result?.error?.error.contains("baseVersion") == true, comment)
                    }
                }
            }
        }
    }

    @Test("keyEpoch of shares and key rotations", arguments: TestBackend.available)
    func keyEpochs(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let owner = try await SignedInUser.register(client)
            let member = try await SignedInUser.register(client)
            let wrapped = Base64URL.encode((0..<81).map { _ in UInt8.random(in: 0...255) })
            for value in Self.all {
                let vault = try await client.createVault(owner)
                let share = try Self.body(
                    ShareVaultRequest(userId: member.session.user.id, role: .read, wrappedKey: wrapped, keyEpoch: 1), setting: ["keyEpoch"], to: value
                )
                Self.expectAnswered(
                    try await Self.send(client, .post, "/api/vaults/\(vault.id)/share", token: owner.token, body: share),
                    field: "keyEpoch", value: value, mustRefuse: Self.refused.contains(value) || value == "0", "POST /api/vaults/:id/share"
                )
                let rotate = try Self.body(
                    RotateVaultKeyRequest(encryptedMetadata: try envelope(), wrappedKeys: [owner.session.user.id: wrapped], keyEpoch: 2),
                    setting: ["keyEpoch"], to: value
                )
                Self.expectAnswered(
                    try await Self.send(client, .post, "/api/vaults/\(vault.id)/keys", token: owner.token, body: rotate),
                    field: "keyEpoch", value: value, mustRefuse: Self.refused.contains(value) || value == "0" || value == "1", "POST /api/vaults/:id/keys"
                )
            }
        }
    }

    // MARK: WebSocket messages

    @Test("cursor, limit, lastSyncTimestamp and item.baseVersion on /ws", arguments: TestBackend.available)
    func realtimeFields(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let user = try await SignedInUser.register(client)
            let vault = try await client.createVault(user)
            let item = try await client.createItem(user, vault: vault.id)
            let (socket, inbox) = try await RealtimeTests.connect(base, user)
            defer { Task { await socket.close() } }
            /// The answer to one raw message: an ERROR naming the field, or the normal answer.
            func expectAnswer(_ text: String, field: String, value: String, normal: String, mustRefuse: Bool) async throws {
                try await socket.sendRaw(text)
                let answer = await inbox.next()
                let comment = Comment(rawValue: "\(text) → \(String(describing: answer))")
                #expect(answer != nil, comment)
                guard let answer else { return }
                if answer.type == RealtimeType.error {
                    #expect(answer.code == ErrorCode.invalidField && answer.error?.contains(field) == true, comment)
                } else {
                    #expect(!mustRefuse && answer.type == normal, comment)
                }
            }
            for value in Self.all {
                let refused = Self.refused.contains(value)
                try await expectAnswer(
                    #"{"type":"SYNC_REQUEST","vaultId":"\#(vault.id)","cursor":\#(value)}"#, field: "cursor", value: value,
                    normal: RealtimeType.syncResponse, mustRefuse: refused
                )
                try await expectAnswer(
                    #"{"type":"SYNC_REQUEST","vaultId":"\#(vault.id)","cursor":0,"limit":\#(value)}"#, field: "limit", value: value,
                    normal: RealtimeType.syncResponse, mustRefuse: refused || value == "0" || value.count > 4
                )
                let data = try envelope()
                try await socket.sendRaw(#"{"type":"ITEM_UPDATED","vaultId":"\#(vault.id)","item":{"id":"\#(item.id)","baseVersion":\#(value),"encryptedData":"\#(data)"}}"#)
                let pushed = await inbox.next()
                let comment = Comment(rawValue: "ITEM_UPDATED baseVersion=\(value) → \(String(describing: pushed))")
                if pushed?.type == RealtimeType.error {
                    #expect(pushed?.code == ErrorCode.invalidField && pushed?.error?.contains("baseVersion") == true, comment)
                } else {
                    #expect(pushed?.type == RealtimeType.pushResult, comment)
                    if refused {
                        #expect(pushed?.result?.status == .rejected && pushed?.result?.error?.error.contains("baseVersion") == true, comment)
                    }
                }
            }
            for time in ["+275760-09-13T00:00:00Z", "-271821-04-20T00:00:00Z", "99999-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"] {
                try await expectAnswer(
                    #"{"type":"SYNC_REQUEST","vaultId":"\#(vault.id)","lastSyncTimestamp":"\#(time)"}"#, field: "lastSyncTimestamp", value: time,
                    normal: RealtimeType.syncResponse, mustRefuse: false
                )
            }
            try await socket.send(.ping())
            #expect(await inbox.next()?.type == RealtimeType.pong)
        }
    }

    // MARK: Decisions below the routes

    @Test("the item change decision at the ends of Int", arguments: TestBackend.available)
    func storeItemChanges(_ backend: TestBackend) async throws {
        var logger = Logger(label: "coffer-test")
        logger.logLevel = .warning
        let configuration = testConfiguration(backend)
        let store = try await openStore(configuration.database, poolSize: 4, logger: logger)
        try await buildApplication(configuration: configuration, store: store, logger: logger).test(.router) { client in
            let user = try await SignedInUser.register(client)
            let vault = try await client.createVault(user)
            let item = try await client.createItem(user, vault: vault.id)
            func change(_ itemId: String, _ baseVersion: Int, data: String? = nil) throws -> ItemChange {
                ItemChange(
                    vaultId: vault.id, itemId: itemId, baseVersion: baseVersion, encryptedData: try data ?? envelope(), deleted: false,
                    deviceId: user.account.deviceId, at: .now, versionsKept: 20
                )
            }
            for baseVersion in [Int.max, Int.min, -1, Int(Int32.max), Int(Int32.max) + 1] {
                let one = try await store.applyItemChange(try change(item.id, baseVersion))
                #expect(one == .conflict(current: item, base: nil), "baseVersion \(baseVersion)")
                let batch = try await store.applyItemChanges([try change(item.id, baseVersion), try change(UUID().uuidString.lowercased(), baseVersion)])
                #expect(batch == [.conflict(current: item, base: nil), .notFound], "baseVersion \(baseVersion)")
            }
            // An item already at the last version cannot take another: a conflict, nothing written.
            let last = Item(
                id: item.id, vaultId: vault.id, encryptedData: item.encryptedData, version: Int.max, revision: item.revision, deleted: false,
                createdAt: item.createdAt, updatedAt: item.updatedAt, deviceId: item.deviceId
            )
            var retry = try change(item.id, Int.max, data: item.encryptedData)
            retry.deviceId = item.deviceId ?? ""
            #expect(!retry.isAlreadyApplied(as: last))
            retry.baseVersion = Int.max - 1
            #expect(retry.isAlreadyApplied(as: last))
            #expect(ItemChange.nextVersion(after: last) == nil)
            #expect(ItemChange.nextVersion(after: nil) == 1)
            #expect(try await store.item(id: item.id) == item)
        }
    }

    @Test func timestampArithmeticSaturates() {
        #expect(Timestamp(milliseconds: 0).adding(seconds: .max).milliseconds == .max)
        #expect(Timestamp(milliseconds: 0).adding(seconds: .min).milliseconds == .min)
        #expect(Timestamp(milliseconds: .max).adding(seconds: 1).milliseconds == .max)
        #expect(Timestamp(milliseconds: .min).milliseconds(until: Timestamp(milliseconds: .max)) == .max)
        #expect(Timestamp(milliseconds: .max).iso8601 == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp(milliseconds: .min).iso8601 == "0000-01-01T00:00:00.000Z")
        #expect(Timestamp(Date(timeIntervalSince1970: .infinity)) == .maximum)
        #expect(Timestamp(Date(timeIntervalSince1970: -1e300)) == .minimum)
        #expect(Timestamp(iso8601: "+275760-09-13T00:00:00Z") == nil)
        #expect(Timestamp(iso8601: "9999-12-31T23:59:59.999Z") == .maximum)
        #expect(Timestamp(iso8601: "0000-01-01T00:00:00Z") == .minimum)
    }

    @Test("the SDK refuses, rather than traps on, a server's version or key epoch at the end of its range")
    func sdkServerNumbers() throws {
        #expect(try ServerNumbers.version(after: 0, of: "item") == 1)
        #expect(try ServerNumbers.version(after: Int(Validation.maximumCounter) - 1, of: "item") == Int(Validation.maximumCounter))
        for version in [Int.max, Int.min, -1, Int(Validation.maximumCounter)] {
            #expect(throws: CofferClientError.self) { try ServerNumbers.version(after: version, of: "item") }
        }
        for epoch in [Int.max, Int.min, 0, Int(Int32.max)] {
            #expect(throws: CofferClientError.self) { try ServerNumbers.keyEpoch(after: epoch, of: "vault") }
        }
        // A token lifetime of Int64.max seconds (a server's expiresIn) saturates instead of trapping.
        #expect(Timestamp.now.adding(seconds: Int64.max).milliseconds == .max)
    }

    @Test func integerTextIsRangeChecked() {
        #expect(Validation.integer("9007199254740991", in: Validation.counters) == 9_007_199_254_740_991)
        for text in ["9007199254740992", "-1", "+1", " 1", "1.0", "1e3", "", "-", "99999999999999999999", "-9223372036854775808"] {
            #expect(Validation.integer(text, in: Validation.counters) == nil, "\(text)")
        }
        #expect(Validation.integer("-9223372036854775808", in: .min ... .max) == .min)
    }
}
