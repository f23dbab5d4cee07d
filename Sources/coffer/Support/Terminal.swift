import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small terminal helpers: stderr output, no-echo password prompts, progress lines.
enum Terminal {
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Information for the person at the terminal, on stderr so `--json` output stays clean.
    static func note(_ message: String) {
        printError(message)
    }

    /// Asks a yes/no question on stderr and reads the answer from standard input; only "y" or
    /// "yes" (any case) confirms, and end of input does not.
    static func confirm(_ question: String) -> Bool {
        FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
        guard let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() else { return false }
        return answer == "y" || answer == "yes"
    }

    /// Reads a password from the terminal without echoing it.
    static func promptPassword(_ prompt: String) throws -> String {
        let tty = open("/dev/tty", O_RDWR)
        guard tty >= 0 else {
            throw CLIError("no terminal to ask for the password; pass it with --password-stdin")
        }
        defer { close(tty) }
        _ = prompt.withCString { write(tty, $0, strlen($0)) }
        var original = termios()
        tcgetattr(tty, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(tty, TCSAFLUSH, &silent)
        defer {
            tcsetattr(tty, TCSAFLUSH, &original)
            _ = "\n".withCString { write(tty, $0, 1) }
        }
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(tty, &byte, 1) == 1, byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") {
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads the first line of standard input (for `--password-stdin`).
    static func readPasswordFromStdin() throws -> String {
        guard let line = readLine(strippingNewline: true) else {
            throw CLIError("--password-stdin was given but standard input is empty")
        }
        return line
    }

    /// A one-line progress display on stderr, redrawn in place; silent when stderr is not a terminal.
    final class ProgressLine: Sendable {
        let label: String
        let enabled: Bool
        /// Counts things (`4500/10000`) instead of bytes.
        let counting: Bool

        init(label: String, enabled: Bool = Terminal.stderrIsTerminal, counting: Bool = false) {
            self.label = label
            self.enabled = enabled
            self.counting = counting
        }

        func update(done: Int, total: Int) {
            guard enabled, total > 0 else { return }
            let fraction = Double(done) / Double(total)
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let amounts = counting ? "\(done)/\(total)" : "\(ByteCount.format(done))/\(ByteCount.format(total))"
            let text = "\r\(label) \(bar) \(Int(fraction * 100))% \(amounts)"
            FileHandle.standardError.write(Data(text.utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }
}

/// A failure the CLI reports as one line, `error: …`, with exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Human byte counts and their parsing (`5MiB`, `512KiB`, `1048576`).
enum ByteCount {
    static func format(_ bytes: Int) -> String {
        if bytes >= 1024 * 1024 { return String(format: "%.1f MiB", Double(bytes) / 1048576) }
        if bytes >= 1024 { return String(format: "%.1f KiB", Double(bytes) / 1024) }
        return "\(bytes) B"
    }

    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value >= 0 else { return nil }
            return Int(value * Double(factor))
        }
        return Int(trimmed)
    }
}
