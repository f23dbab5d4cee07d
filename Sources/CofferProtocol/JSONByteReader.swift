import Foundation

/// A type with a hand-written JSON reader, tried before `JSONDecoder` (which stays the fallback
/// and names the problem when the hand reader refuses the input).
public protocol JSONByteReadable: Decodable {
    init(jsonBytes: UnsafeRawBufferPointer) throws
}

extension JSONByteReader {
    /// `T` read by its hand reader, if it has one (`JSONByteReadable`) and that reader accepts the
    /// bytes; nil otherwise, and the caller decodes with `JSONDecoder`, which names any problem.
    public static func handRead<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) -> T? {
        guard let readable = T.self as? any JSONByteReadable.Type else { return nil }
        return (try? readable.init(jsonBytes: bytes)) as? T
    }
}

/// Reads JSON straight from bytes into known types, for the answer a device decodes most often
/// (a sync pull), where `JSONDecoder` cost more than the request's network round trip.
///
/// Strict and small: objects, arrays, strings with every JSON escape, integers, booleans and null.
/// Anything else (fractions, exponents, invalid UTF-8, a missing field) throws, and callers fall
/// back to `JSONDecoder`, which then reports the problem properly.
public struct JSONByteReader {
    public struct Malformed: Error {
        public init() {}
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    /// Objects and arrays open around the current position; bounded, so that hostile input
    /// (a request body of a million `[`) cannot exhaust the stack of the recursive skip.
    private var depth = 0
    static let maximumDepth = 64

    /// Runs `body` on a reader over `bytes`; `body` must consume exactly one value, with only
    /// whitespace after it.
    public static func read<T>(_ bytes: UnsafeRawBufferPointer, _ body: (inout JSONByteReader) throws -> T) throws -> T {
        var reader = JSONByteReader(bytes: bytes.assumingMemoryBound(to: UInt8.self))
        let value = try body(&reader)
        reader.skipWhitespace()
        guard reader.index == reader.bytes.count else { throw Malformed() }
        return value
    }

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Calls `field` with each key of an object; `field` must read or `skipValue()` its value.
    public mutating func object(_ field: (inout JSONByteReader, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        try enter()
        defer { depth -= 1 }
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        // A repeated key is refused (JSONDecoder then decides what it means): the first 16 keys'
        // hashes are kept on the stack, any further ones in a set, so a body of many keys stays linear.
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: 16) { recent in
            var count = 0
            var more: Set<Int> = []
            while true {
                let key = try string()
                let hash = key.hashValue
                guard !recent[0..<min(count, 16)].contains(hash), !more.contains(hash) else { throw Malformed() }
                if count < 16 { recent[count] = hash } else { more.insert(hash) }
                count += 1
                try expect(UInt8(ascii: ":"))
                try field(&self, key)
                switch try next() {
                case UInt8(ascii: ","): continue
                case UInt8(ascii: "}"): return
                default: throw Malformed()
                }
            }
        }
    }

    public mutating func array<Element>(_ element: (inout JSONByteReader) throws -> Element) throws -> [Element] {
        try expect(UInt8(ascii: "["))
        try enter()
        defer { depth -= 1 }
        var elements: [Element] = []
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return elements
        }
        while true {
            elements.append(try element(&self))
            switch try next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return elements
            default: throw Malformed()
            }
        }
    }

    public mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = index
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                defer { index += 1 }
                guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self) else { throw Malformed() }
                return text
            case UInt8(ascii: "\\"):
                return try escapedString(from: start)
            case 0x00..<0x20:
                throw Malformed()
            default:
                index += 1
            }
        }
        throw Malformed()
    }

    /// Consumes a null and says so; leaves any other value to be read.
    public mutating func isNull() throws -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// A string or null.
    public mutating func optionalString() throws -> String? {
        if try peek() == UInt8(ascii: "n") {
            try literal("null")
            return nil
        }
        return try string()
    }

    public mutating func int64() throws -> Int64 {
        skipWhitespace()
        let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        let start = index
        var magnitude: UInt64 = 0
        while index < bytes.count, case let digit = bytes[index] &- UInt8(ascii: "0"), digit < 10 {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { throw Malformed() }
            magnitude = sum
            index += 1
        }
        // No leading zeros, no fractions or exponents: the integers Coffer sends only.
        guard index > start, bytes[start] != UInt8(ascii: "0") || index == start + 1 else { throw Malformed() }
        if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) { throw Malformed() }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw Malformed() }
            return Int64(truncatingIfNeeded: 0 &- magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw Malformed() }
        return Int64(magnitude)
    }

    public mutating func int() throws -> Int {
        guard let value = Int(exactly: try int64()) else { throw Malformed() }
        return value
    }

    public mutating func bool() throws -> Bool {
        switch try peek() {
        case UInt8(ascii: "t"):
            try literal("true")
            return true
        case UInt8(ascii: "f"):
            try literal("false")
            return false
        default:
            throw Malformed()
        }
    }

    /// Skips any one value (fields this version does not know).
    public mutating func skipValue() throws {
        switch try peek() {
        case UInt8(ascii: "{"): try object { reader, _ in try reader.skipValue() }
        case UInt8(ascii: "["): _ = try array { reader in try reader.skipValue() }
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try bool()
        case UInt8(ascii: "n"): try literal("null")
        default: try skipNumber()
        }
    }

    /// The path (`kdf.n`, `changes.[0].baseVersion`, as `JSONDecoder`'s errors are written) of
    /// the first number in `bytes` that is not an integer within `Int64`: a fraction, an exponent
    /// or too many digits. `JSONDecoder` refuses such a number as "not valid JSON" without saying
    /// where it is; this names the field. Nil when there is none or the bytes are not JSON.
    public static func pathOfFirstNonInteger(in bytes: UnsafeRawBufferPointer) -> String? {
        var reader = JSONByteReader(bytes: bytes.assumingMemoryBound(to: UInt8.self))
        var found: String?
        try? reader.findNonInteger(at: [], found: &found)
        return found
    }

    private mutating func findNonInteger(at path: [String], found: inout String?) throws {
        switch try peek() {
        case UInt8(ascii: "{"):
            try object { reader, key in
                if found != nil { return try reader.skipValue() }
                try reader.findNonInteger(at: path + [key], found: &found)
            }
        case UInt8(ascii: "["):
            var position = 0
            _ = try array { reader in
                defer { position += 1 }
                if found != nil { return try reader.skipValue() }
                try reader.findNonInteger(at: path + ["[\(position)]"], found: &found)
            }
        case UInt8(ascii: "\""), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            try skipValue()
        default:
            let start = index
            do {
                _ = try int64()
            } catch {
                index = start
                try skipNumber()
                found = path.joined(separator: ".")
            }
        }
    }

    // MARK: - Internals

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw Malformed() }
    }

    /// Skips one number of JSON's grammar, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    /// (Coffer's types read integers only, but unknown fields may hold any number).
    private mutating func skipNumber() throws {
        func digits() -> Int {
            let start = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
            return index - start
        }
        func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        _ = take(UInt8(ascii: "-"))
        if take(UInt8(ascii: "0")) {
            // no further integer digits after a leading zero
        } else {
            guard digits() > 0 else { throw Malformed() }
        }
        if take(UInt8(ascii: ".")) {
            guard digits() > 0 else { throw Malformed() }
        }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
            guard digits() > 0 else { throw Malformed() }
        }
    }

    private mutating func escapedString(from start: Int) throws -> String {
        var decoded = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: decoded, as: UTF8.self) else { throw Malformed() }
                return text
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw Malformed() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0c)
                case UInt8(ascii: "n"): decoded.append(0x0a)
                case UInt8(ascii: "r"): decoded.append(0x0d)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hexQuad()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { throw Malformed() }
                        index += 2
                        let low = try hexQuad()
                        guard (0xDC00..<0xE000).contains(low) else { throw Malformed() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Malformed() }
                    decoded.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    throw Malformed()
                }
            case 0x00..<0x20:
                throw Malformed()
            default:
                decoded.append(byte)
            }
        }
        throw Malformed()
    }

    private mutating func hexQuad() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw Malformed() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Malformed()
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func literal(_ text: StaticString) throws {
        skipWhitespace()
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Malformed() }
        for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] {
            throw Malformed()
        }
        index += count
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    private mutating func peek() throws -> UInt8 {
        skipWhitespace()
        guard index < bytes.count else { throw Malformed() }
        return bytes[index]
    }

    /// The next non-whitespace byte, consumed.
    private mutating func next() throws -> UInt8 {
        let byte = try peek()
        index += 1
        return byte
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard try next() == byte else { throw Malformed() }
    }
}
