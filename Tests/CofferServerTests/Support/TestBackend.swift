import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// The storage backends every storage and API test runs against: SQLite always, PostgreSQL when
/// `scripts/test` started one (`COFFER_TEST_POSTGRES_URL`).
enum TestBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    static var postgresURL: String? {
        ProcessInfo.processInfo.environment["COFFER_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static var available: [TestBackend] {
        postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    var testDescription: String { rawValue }

    /// A fresh database location: a new SQLite file, or the shared test PostgreSQL database
    /// (tests there stay apart by using random ids).
    func location() -> DatabaseLocation {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-test-\(UUID().uuidString)")
            return .sqlite(path: directory.appendingPathComponent("coffer.sqlite").path)
        case .postgres:
            return .postgres(url: TestBackend.postgresURL!)
        }
    }
}

/// A settable clock so limit windows can be crossed without waiting.
final class TestClock: Sendable {
    private let value: Mutex<Int64>

    init(_ start: Timestamp = .now) {
        value = Mutex(start.milliseconds)
    }

    var now: Timestamp { Timestamp(milliseconds: value.withLock { $0 }) }

    func advance(seconds: Int64) {
        value.withLock { $0 += seconds * 1000 }
    }

    var function: @Sendable () -> Timestamp { { [self] in self.now } }
}

/// Configuration for tests: limits off unless a test turns them on.
func testConfiguration(_ backend: TestBackend, _ adjust: (inout ServerConfiguration) -> Void = { _ in }) -> ServerConfiguration {
    var configuration = ServerConfiguration()
    configuration.database = backend.location()
    configuration.port = 0
    configuration.databasePoolSize = 4
    configuration.addressLimits = []
    configuration.registerAddressLimits = []
    configuration.backupWriteLimits = []
    configuration.backupNewKeyLimits = []
    configuration.backupNewKeyAddressLimits = []
    // The PostgreSQL test database is shared by every test, and so are its address counters.
    configuration.loginAddressLimits = []
    configuration.loginAccountLimits = []
    configuration.lookupLimits = []
    adjust(&configuration)
    return configuration
}

/// Builds an application for one test.
func makeTestApp(
    _ backend: TestBackend,
    clock: TestClock = TestClock(),
    probe: RealtimeProbe? = nil,
    _ adjust: (inout ServerConfiguration) -> Void = { _ in }
) async throws -> CofferApplication {
    var logger = Logger(label: "coffer-test")
    logger.logLevel = .warning
    return try await buildApplication(configuration: testConfiguration(backend, adjust), logger: logger, clock: clock.function, probe: probe)
}

/// A random 64-hex id, so tests sharing a PostgreSQL database never collide.
func randomHash() -> String {
    (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
}

/// Random bytes as standard base64 (looks like ciphertext).
func randomCiphertext(bytes: Int) -> String {
    Data((0..<bytes).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
}

extension TestClientProtocol {
    /// Sends a JSON body.
    @discardableResult
    func json(
        _ method: HTTPRequest.Method, _ uri: String, _ body: some Encodable, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = try JSONEncoder().encode(body)
        return try await execute(uri: uri, method: method, headers: headers, body: ByteBuffer(bytes: data))
    }

    /// Sends raw bytes with the given content type.
    @discardableResult
    func raw(_ method: HTTPRequest.Method, _ uri: String, _ body: [UInt8], contentType: String? = "application/json") async throws -> TestResponse {
        var headers = HTTPFields()
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: method, headers: headers, body: ByteBuffer(bytes: body))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }
}

extension TestResponse {
    func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(buffer: body))
    }

    var error: ErrorBody? { try? decode(ErrorBody.self) }
}

/// Request bodies for tests that need to send shapes the wire types would not allow.
struct JSONObject: Encodable {
    var fields: [String: JSONValue]
    init(_ fields: [String: JSONValue]) { self.fields = fields }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(fields)
    }
}

enum JSONValue: Encodable {
    case string(String)
    case int(Int)
    case null

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
