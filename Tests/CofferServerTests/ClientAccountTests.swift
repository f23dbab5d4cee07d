import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// `CofferClient` against a live server: what leaves the device, and what the client refuses.
@Suite("Account client")
struct ClientAccountTests {
    final class Recorder: Sendable {
        let bodies = Mutex<[(String, String, Data)]>([])
        var observer: @Sendable (String, String, Data) -> Void {
            { [self] method, path, body in bodies.withLock { $0.append((method, path, body)) } }
        }
    }

    static func temporaryStore() -> SessionStore {
        SessionStore(directory: FileManager.default.temporaryDirectory.appendingPathComponent("coffer-client-\(UUID().uuidString)"))
    }

    @Test("The server never receives the password, the master key or the wrapping key", arguments: TestBackend.available)
    func nothingSecretLeavesTheDevice(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let recorder = Recorder()
            var api = APIClient(baseURL: "http://127.0.0.1:\(try #require(server.port))")
            api.requestObserver = recorder.observer
            let store = Self.temporaryStore()
            let client = try CofferClient(api: api, sessionStore: store)
            let email = "zk-\(UUID().uuidString.prefix(8))@example.test"
            let password = "correct horse battery staple"
            let newPassword = "another horse, another staple"
            let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test")

            try await client.register(email: email, password: password, device: device)
            try await client.logout()
            try await client.login(email: email, password: password, device: device)
            _ = try await client.devices()
            try await client.changePassword(current: password, new: newPassword)
            try await client.logout()
            try await client.login(email: email, password: newPassword, device: device)

            // Recompute every secret the client derived, in every encoding it could have leaked in.
            var secrets: [String] = [password, newPassword]
            let bodies = recorder.bodies.withLock { $0 }
            let registration = try #require(bodies.first { $0.1 == "/api/auth/register" })
            let registered = try JSONDecoder().decode(RegisterAccountRequest.self, from: registration.2)
            let change = try #require(bodies.first { $0.1 == "/api/auth/password" })
            let changed = try JSONDecoder().decode(ChangePasswordRequest.self, from: change.2)
            for (secret, salt, kdf) in [(password, registered.salt, registered.kdf), (newPassword, changed.salt, changed.kdf)] {
                let parameters = try JSONDecoder().decode(KDFParameters.self, from: JSONEncoder().encode(kdf))
                let master = try MasterKey.derive(password: secret, salt: try #require(Base64URL.decode(salt)), parameters: parameters)
                let keys = try AccountKeys(masterKey: master)
                for key in [master, keys.wrappingKey] {
                    let bytes = key.withUnsafeBytes { Data($0) }
                    secrets += [Hex.encode(bytes), bytes.base64EncodedString(), Base64URL.encode(bytes)]
                }
                let privateLogin = keys.loginKey.rawRepresentation
                secrets += [Hex.encode(privateLogin), privateLogin.base64EncodedString(), Base64URL.encode(privateLogin)]
            }
            #expect(bodies.count >= 12)
            for (method, path, body) in bodies {
                let text = String(decoding: body, as: UTF8.self)
                for secret in secrets {
                    #expect(!text.contains(secret), "\(method) \(path) carries a secret")
                }
            }
            // And the stored session file is private to the user.
            let attributes = try FileManager.default.attributesOfItem(atPath: store.directory.appendingPathComponent("session.json").path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
    }

    /// A server that answers prelogin with the given parameters and records every other call.
    final class CallLog: Sendable {
        let paths = Mutex<[String]>([])
        var isEmpty: Bool { paths.withLock { $0.isEmpty } }
    }

    static func weakServer(_ kdf: KDFDescriptor, calls: CallLog) -> some ApplicationProtocol {
        let router = Router()
        router.post("/api/auth/prelogin") { _, _ in
            try JSONResponse(PreloginResponse(kdf: kdf, salt: Base64URL.encode(MasterKey.randomSalt())))
        }
        for path in ["/api/auth/challenge", "/api/auth/login"] {
            router.post(RouterPath(path)) { request, _ -> Response in
                calls.paths.withLock { $0.append(request.uri.path) }
                return Response(status: .internalServerError)
            }
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    struct JSONResponse<Value: Encodable>: ResponseGenerator {
        let value: Value
        init(_ value: Value) throws { self.value = value }
        func response(from request: Request, context: some RequestContext) throws -> Response {
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
        }
    }

    @Test(
        "A server asking for weak key derivation gets no signature",
        arguments: [
            KDFDescriptor(algorithm: "scrypt", n: 1 << 14, r: 8, p: 1),
            KDFDescriptor(algorithm: "pbkdf2-sha256", iterations: 100_000),
            KDFDescriptor(algorithm: "scrypt", n: 1 << 30, r: 8, p: 1),
        ]
    )
    func weakParametersAreRefusedBeforeSigning(_ kdf: KDFDescriptor) async throws {
        let calls = CallLog()
        try await Self.weakServer(kdf, calls: calls).test(.live) { server in
            let client = try CofferClient(api: APIClient(baseURL: "http://127.0.0.1:\(try #require(server.port))"), sessionStore: Self.temporaryStore())
            let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test")
            await #expect {
                try await client.login(email: "victim@example.test", password: "secret password", device: device)
            } throws: { error in
                guard case CofferError.weakKeyDerivation(let message) = error else { return false }
                return !message.isEmpty
            }
            #expect(calls.isEmpty)
        }
    }

    @Test("A server cannot downgrade parameters this device used before")
    func rememberedParametersCannotBeWeakened() async throws {
        let calls = CallLog()
        let store = Self.temporaryStore()
        try store.rememberKDF(KDFDescriptor(algorithm: "scrypt", n: 1 << 18, r: 8, p: 1), email: "victim@example.test")
        try await Self.weakServer(KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1), calls: calls).test(.live) { server in
            let client = try CofferClient(api: APIClient(baseURL: "http://127.0.0.1:\(try #require(server.port))"), sessionStore: store)
            await #expect(throws: CofferError.self) {
                try await client.login(
                    email: "victim@example.test", password: "secret password",
                    device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test")
                )
            }
            #expect(calls.isEmpty)
        }
    }
}
