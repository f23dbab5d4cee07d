import Foundation

/// A point in time with millisecond precision, encoded on the wire as ISO 8601 UTC (`2026-11-23T10:00:00.123Z`).
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// A date outside `minimum...maximum` (or not finite) is clamped to the nearer end, so no
    /// date, however it was made, traps in the conversion to milliseconds.
    public init(_ date: Date) {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded(.down)
        guard milliseconds.isFinite else {
            self.milliseconds = milliseconds > 0 ? Self.maximum.milliseconds : Self.minimum.milliseconds
            return
        }
        self.milliseconds = Int64(min(max(milliseconds, Double(Self.minimum.milliseconds)), Double(Self.maximum.milliseconds)))
    }

    /// The earliest time the wire form can say, 0000-01-01T00:00:00.000Z.
    public static let minimum = Timestamp(milliseconds: -62_167_219_200_000)
    /// The latest time the wire form can say, 9999-12-31T23:59:59.999Z. Times received are
    /// refused outside `minimum...maximum`, so arithmetic on them (skew, windows) stays far from overflow.
    public static let maximum = Timestamp(milliseconds: 253_402_300_799_999)

    /// The current time, truncated to milliseconds.
    public static var now: Timestamp { Timestamp(Date()) }

    public var date: Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// Adds whole seconds, saturating at the ends of `Int64` rather than trapping: lifetimes and
    /// windows may come from configuration or from a server's answer.
    public func adding(seconds: Int64) -> Timestamp {
        let (delta, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Timestamp(milliseconds: seconds > 0 ? .max : .min) }
        return Timestamp(milliseconds: milliseconds.saturatingAdding(delta))
    }

    /// Milliseconds from this time until `other` (negative when `other` is earlier), saturating.
    public func milliseconds(until other: Timestamp) -> Int64 {
        other.milliseconds.saturatingSubtracting(milliseconds)
    }

    public var description: String { iso8601 }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, formatted by hand (years 0000–9999) so it is cheap and
    /// locale-proof: every item in a sync page carries two.
    /// A time outside `minimum...maximum` is written as the nearer end (four-digit years only).
    public var iso8601: String {
        let milliseconds = min(max(self.milliseconds, Self.minimum.milliseconds), Self.maximum.milliseconds)
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let millis = Int(milliseconds - seconds * 1000)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(unsafeUninitializedCapacity: 24) { buffer in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(Int(parts.tm_year) + 1900, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(Int(parts.tm_mday), 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(Int(parts.tm_hour), 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(Int(parts.tm_min), 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(Int(parts.tm_sec), 2, at: 17)
            buffer[19] = UInt8(ascii: ".")
            put(millis, 3, at: 20)
            buffer[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Parses ISO 8601 UTC with or without fractional seconds.
    public init?(iso8601 text: String) {
        switch Self.parseCanonical(text) {
        case .valid(let milliseconds):
            self.init(milliseconds: milliseconds)
            return
        case .invalid:
            // Foundation would roll 02-30 or 24:00 over into the next day; the wire form does not.
            return nil
        case .otherForm:
            break
        }
        let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        let withoutFraction = Date.ISO8601FormatStyle()
        guard let date = (try? withFraction.parse(text)) ?? (try? withoutFraction.parse(text)) else { return nil }
        // A time the wire form cannot say is refused, not clamped: it comes from outside.
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded(.down)
        guard milliseconds.isFinite, Double(Self.minimum.milliseconds) <= milliseconds, milliseconds <= Double(Self.maximum.milliseconds) else {
            return nil
        }
        self.init(date)
    }

    enum CanonicalParse: Equatable {
        case valid(Int64)
        case invalid
        case otherForm
    }

    /// The wire form `YYYY-MM-DDTHH:MM:SS[.fff]Z`, parsed by hand: every item in a sync page carries
    /// two timestamps, and Foundation's parser costs microseconds each. Other shapes go to the
    /// general parser.
    static func parseCanonical(_ text: String) -> CanonicalParse {
        var text = text
        let shaped = text.withUTF8 { bytes in
            (bytes.count == 20 || bytes.count == 24) && bytes[bytes.count - 1] == UInt8(ascii: "Z")
                && bytes[4] == UInt8(ascii: "-") && bytes[7] == UInt8(ascii: "-") && bytes[10] == UInt8(ascii: "T")
                && bytes[13] == UInt8(ascii: ":") && bytes[16] == UInt8(ascii: ":")
        }
        guard shaped else { return .otherForm }
        return text.withUTF8 { bytes -> Int64? in
            func number(_ start: Int, _ count: Int) -> Int64? {
                var value: Int64 = 0
                for index in start..<(start + count) {
                    let digit = bytes[index] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    value = value * 10 + Int64(digit)
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
            else { return nil }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let monthLengths: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard day <= monthLengths[Int(month) - 1] else { return nil }
            var millis: Int64 = 0
            if bytes.count == 24 {
                guard bytes[19] == UInt8(ascii: "."), let fraction = number(20, 3) else { return nil }
                millis = fraction
            }
            // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
            let shiftedYear = month <= 2 ? year - 1 : year
            // Floor division: January and February of year 0 belong to the era before.
            let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
            let yearOfEra = shiftedYear - era * 400
            let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
            let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
            let days = era * 146_097 + dayOfEra - 719_468
            return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis
        }.map(CanonicalParse.valid) ?? .invalid
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = Timestamp(iso8601: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 timestamp")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(iso8601)
    }
}

extension Int64 {
    /// `self + other`, held at `Int64.min` or `Int64.max` instead of trapping.
    @inlinable public func saturatingAdding(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self - other`, held at `Int64.min` or `Int64.max` instead of trapping.
    @inlinable public func saturatingSubtracting(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }
}
