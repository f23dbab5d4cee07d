import CofferProtocol
import Foundation
import Testing

@Suite("Timestamp wire format")
struct TimestampTests {
    @Test("formatting and parsing round-trip 10 000 random instants of years 0001–9999")
    func roundTrips() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let value = Int64.random(in: -62_135_596_800_000...253_402_300_799_999, using: &generator)
            let text = Timestamp(milliseconds: value).iso8601
            #expect(text.utf8.count == 24)
            #expect(Timestamp(iso8601: text)?.milliseconds == value, "\(text)")
        }
    }

    @Test("the hand parser and formatter agree with Foundation on 10 000 random instants of 1970–2200")
    func agreesWithFoundation() throws {
        // Foundation switches to the Julian calendar before 1582, so the comparison stays modern;
        // its Date is a Double, so it may be a fraction of a millisecond off.
        var generator = SystemRandomNumberGenerator()
        let strategy = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        for _ in 0..<10_000 {
            let value = Int64.random(in: 0...7_258_118_400_000, using: &generator)
            let text = Timestamp(milliseconds: value).iso8601
            let viaFoundation = try strategy.parse(text)
            #expect(abs(viaFoundation.timeIntervalSince1970 * 1000 - Double(value)) < 1, "\(text)")
            #expect(strategy.format(Date(timeIntervalSince1970: Double(value) / 1000 + 0.0001)) == text)
        }
    }

    @Test("forms without fraction or with an offset still parse; impossible dates do not")
    func otherForms() {
        #expect(Timestamp(iso8601: "2026-11-23T10:00:00Z")?.milliseconds == 1_795_428_000_000)
        #expect(Timestamp(iso8601: "2026-11-23T10:00:00.123Z")?.milliseconds == 1_795_428_000_123)
        #expect(Timestamp(iso8601: "2026-11-23T12:00:00+02:00")?.milliseconds == 1_795_428_000_000)
        #expect(Timestamp(iso8601: "2024-02-29T00:00:00Z") != nil)
        for bad in ["2026-02-29T00:00:00Z", "2026-02-31T00:00:00.000Z", "2026-13-01T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23", "", "x026-11-23T10:00:00Z"] {
            #expect(Timestamp(iso8601: bad) == nil, "\(bad)")
        }
    }
}
