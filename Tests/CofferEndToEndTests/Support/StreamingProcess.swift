import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process whose standard output is read line by line as it comes.
final class StreamingProcess: Sendable {
    let lines: AsyncStream<String>
    private let process: Process

    init(_ executable: String, _ arguments: [String], stdin: Data? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        try process.run()
        // A thread of its own does blocking reads until end of file. Not `readabilityHandler`: its
        // dispatch source on the pipe once crashed libdispatch's event loop (signal 11 in
        // `_dispatch_event_loop_drain`) when the child was killed and descriptors were closed.
        let reading = output.fileHandleForReading
        Thread.detachNewThread {
            let buffer = LineBuffer()
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(reading.fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                for line in buffer.append(Data(chunk[0..<count])) { continuation.yield(line) }
            }
            continuation.finish()
            try? reading.close()
        }
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        self.process = process
        self.lines = lines
    }

    var processIdentifier: Int32 { process.processIdentifier }

    /// SIGKILL, then waits for the exit.
    func kill() async {
        Glibc.kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    func waitForExit() async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.process.waitUntilExit()
                continuation.resume()
            }
        }
    }
}

/// Splits bytes into lines across reads; owned by the one thread that reads the pipe.
private final class LineBuffer {
    private var pending = Data()

    func append(_ data: Data) -> [String] {
        pending.append(data)
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
            pending = Data(pending[pending.index(after: newline)...])
        }
        return lines
    }
}

/// A TCP listener that accepts connections and never answers: a server that hangs. `accepted`
/// yields once per connection.
final class SilentServer: Sendable {
    let port: Int
    let accepted: AsyncStream<Void>
    private let descriptor: Int32

    init() throws {
        let (fd, port) = try loopbackSocket(listening: true)
        self.port = port
        descriptor = fd
        let (accepted, continuation) = AsyncStream.makeStream(of: Void.self)
        self.accepted = accepted
        Thread.detachNewThread {
            var held: [Int32] = []
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { break }
                held.append(client)  // kept open, never answered
                continuation.yield()
            }
            for client in held { close(client) }
            continuation.finish()
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }
}
