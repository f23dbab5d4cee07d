import AsyncHTTPClient
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Paths of the package and of the built `coffer` binary (the test target depends on it, so
/// `swift test` builds it first).
enum Paths {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `COFFER_E2E_BINARY` runs the tests against another build (e.g. an older commit's, to see a new test fail there).
    static let coffer = ProcessInfo.processInfo.environment["COFFER_E2E_BINARY"].flatMap { $0.isEmpty ? nil : $0 }
        ?? packageRoot.appendingPathComponent(".build/debug/coffer").path

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The result of running a command to completion.
struct CommandResult: Sendable {
    var status: Int32
    var stdout: Data
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs a program to completion without blocking Swift concurrency's small thread pool.
func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]) async throws -> CommandResult {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let output = Pipe()
            let input = Pipe()
            // stderr goes to a file so that two pipes never need draining at once.
            let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-stderr-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: errorFile) }
            process.standardOutput = output
            process.standardInput = input
            do {
                process.standardError = try FileHandle(forWritingTo: errorFile)
                try process.run()
            } catch {
                continuation.resume(throwing: error)
                return
            }
            if let stdin { input.fileHandleForWriting.write(stdin) }
            try? input.fileHandleForWriting.close()
            let outputData = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let errorData = (try? Data(contentsOf: errorFile)) ?? Data()
            continuation.resume(returning: CommandResult(status: process.terminationStatus, stdout: outputData, stderr: String(decoding: errorData, as: UTF8.self)))
        }
    }
}

/// A free TCP port on the loopback interface.
func freePort() throws -> Int {
    let (fd, port) = try loopbackSocket(listening: false)
    close(fd)
    return port
}

/// A TCP socket bound to a free loopback port (listening, if asked), and that port.
func loopbackSocket(listening: Bool) throws -> (descriptor: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0, !listening || listen(fd, 16) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A `coffer serve` child process on a free loopback port.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `process` is set once in init and only read afterwards; Process itself is thread-safe for terminate/wait.
    let process: Process
    let port: Int
    let log: URL
    var url: String { "http://127.0.0.1:\(port)" }

    /// Starts the server and returns once `/health` answers 200.
    /// `port` reuses a port (a restart where clients expect the same address).
    init(database: String, port: Int? = nil, extraArguments: [String] = [], environment: [String: String] = [:]) async throws {
        self.port = try port ?? freePort()
        log = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-e2e-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.coffer)
        process.arguments = ["serve", "--port", String(self.port), "--database", database] + extraArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try await waitUntilHealthy()
    }

    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw ServerProcessError.exited(logText) }
            // Our own process must say it listens: another test's server may have taken the port
            // between `freePort()` and the bind, and its /health would answer for ours.
            guard logText.contains("listening on 127.0.0.1:\(port)") else {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            var request = HTTPClientRequest(url: url + "/health")
            request.method = .GET
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)), response.status == .ok {
                return
            }
            // Readiness has no event to await from another process; poll briefly.
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServerProcessError.notReady(logText)
    }

    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// SIGKILL: no chance to flush or shut down.
    func kill() async {
        Glibc.kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    /// SIGTERM: graceful shutdown.
    func terminate() async {
        process.terminate()
        await waitForExit()
    }

    private func waitForExit() async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.process.waitUntilExit()
                continuation.resume()
            }
        }
    }
}

enum ServerProcessError: Error, CustomStringConvertible {
    case exited(String)
    case notReady(String)

    var description: String {
        switch self {
        case .exited(let log): "coffer serve exited early:\n\(log)"
        case .notReady(let log): "coffer serve did not become healthy:\n\(log)"
        }
    }
}

/// Backends for end-to-end runs: SQLite always, PostgreSQL when scripts/test provides one.
enum E2EBackend: String, CaseIterable, Sendable {
    case sqlite
    case postgres

    static var available: [E2EBackend] {
        ProcessInfo.processInfo.environment["COFFER_TEST_POSTGRES_URL"]?.isEmpty == false ? [.sqlite, .postgres] : [.sqlite]
    }

    func database(in directory: URL) -> String {
        switch self {
        case .sqlite: directory.appendingPathComponent("coffer.sqlite").path
        case .postgres: ProcessInfo.processInfo.environment["COFFER_TEST_POSTGRES_URL"]!
        }
    }
}
