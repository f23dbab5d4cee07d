import CofferKit
import CofferProtocol
import CofferTestSupport
import Foundation
import Testing

@Suite("Hand-written pull JSON")
struct PullResponseJSONTests {
    /// Every ASCII control character, quotes, backslashes, slashes and multi-byte characters.
    static let awkward: [String] = [
        "", "plain", "a\"b", "back\\slash", "s/l/a/s/h", "\u{7f}", "é€😀\u{2028}\u{2029}",
        String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) })),
    ]

    @Test("strings and numbers are written exactly as JSONEncoder writes them")
    func scalarsMatchJSONEncoder() throws {
        var random = SeededGenerator(seed: 3)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        for text in Self.awkward + (0..<200).map({ _ in Self.text(&random) }) {
            var writer = JSONByteWriter()
            writer.string(text)
            #expect(Data(writer.bytes) == (try encoder.encode(text)), "\(text.debugDescription)")
        }
        for number in [Int64.min, Int64.min + 1, -10, -1, 0, 1, 9, 10, 99, 100, Int64.max] + (0..<200).map({ _ in Self.number(&random) }) {
            var writer = JSONByteWriter()
            writer.integer(number)
            #expect(Data(writer.bytes) == (try encoder.encode(number)), "\(number)")
        }
    }

    @Test("500 seeded answers, with awkward strings, nil optionals and extreme numbers, decode to themselves")
    func roundTrips() throws {
        var random = SeededGenerator(seed: 7)
        for round in 0..<500 {
            let response = Self.response(&random)
            let written = response.jsonBytes()
            #expect(try JSONDecoder().decode(PullResponse.self, from: Data(written)) == response, "round \(round)")
            // Nil optionals are left out, as JSONEncoder leaves them out.
            let object = try #require(try JSONSerialization.jsonObject(with: Data(written)) as? [String: Any])
            let items = (object["vaults"] as? [[String: Any]] ?? []).flatMap { $0["items"] as? [[String: Any]] ?? [] }
            #expect(items.count == response.vaults.reduce(0) { $0 + $1.items.count })
            #expect(items.filter { $0["deviceId"] != nil }.count == response.vaults.flatMap(\.items).filter { $0.deviceId != nil }.count)
        }
    }

    @Test("the hand reader decodes what JSONEncoder writes, in any key order, escaped or pretty-printed, as JSONDecoder does")
    func readerMatchesJSONDecoder() throws {
        var random = SeededGenerator(seed: 11)
        let formats: [JSONEncoder.OutputFormatting] = [[], [.withoutEscapingSlashes], [.prettyPrinted, .sortedKeys]]
        for round in 0..<300 {
            let response = Self.response(&random)
            let encoder = JSONEncoder()
            encoder.outputFormatting = formats[round % formats.count]
            let data = try encoder.encode(response)
            let read = try data.withUnsafeBytes { try PullResponse(jsonBytes: $0) }
            #expect(read == response, "round \(round)")
            #expect(try JSONDecoder().decode(PullResponse.self, from: data) == read)
        }
    }

    @Test("the hand reader skips fields it does not know, reads escapes, and refuses what is not a pull answer")
    func readerEdges() throws {
        func read(_ text: String) throws -> PullResponse {
            var bytes = Array(text.utf8)
            return try bytes.withUnsafeMutableBytes { try PullResponse(jsonBytes: UnsafeRawBufferPointer($0)) }
        }
        let base = #"{"vaults":[],"gained":[],"lost":["a\u00e9\ud83d\ude00\/\"\n"],"serverTime":"2026-11-23T10:00:00.123Z""#
        let withExtras = try read(base + #","future":{"nested":[1,2.5e3,null,true,"x"]},"other":-0.5}"#)
        #expect(withExtras.lost == ["aé😀/\"\n"])
        #expect(withExtras.serverTime == Timestamp(iso8601: "2026-11-23T10:00:00.123Z"))
        for bad in [
            base,  // truncated
            base + "}}",  // trailing bytes
            #"{"vaults":[],"gained":[],"lost":[],"serverTime":"yesterday"}"#,
            #"{"vaults":[],"gained":[],"lost":[]}"#,  // a field missing
            #"{"vaults":[{"vaultId":"v","items":[],"cursor":01,"hasMore":false}],"gained":[],"lost":[],"serverTime":"2026-11-23T10:00:00Z"}"#,
            #"{"vaults":[{"vaultId":"v","items":[],"cursor":1.5,"hasMore":false}],"gained":[],"lost":[],"serverTime":"2026-11-23T10:00:00Z"}"#,
            #"{"vaults":[{"vaultId":"v","items":[],"cursor":9223372036854775808,"hasMore":false}],"gained":[],"lost":[],"serverTime":"2026-11-23T10:00:00Z"}"#,
            #"{"vaults":[],"gained":[],"lost":["\ud83d"],"serverTime":"2026-11-23T10:00:00Z"}"#,  // a lone surrogate
            #"{"vaults":[],"gained":[],"lost":["\q"],"serverTime":"2026-11-23T10:00:00Z"}"#,
            "{\"vaults\":[],\"gained\":[],\"lost\":[\"tab\there\"],\"serverTime\":\"2026-11-23T10:00:00Z\"}",  // a raw control character
        ] {
            #expect(throws: (any Error).self, "\(bad)") { try read(bad) }
        }
        // Nesting is bounded: a body of a million brackets is refused, not a stack overflow.
        let deep = #"{"vaults":[],"gained":[],"lost":[],"serverTime":"2026-11-23T10:00:00Z","x":"# + String(repeating: "[", count: 1_000_000)
        #expect(throws: (any Error).self) { try read(deep) }
        let nested = #"{"vaults":[],"gained":[],"lost":[],"serverTime":"2026-11-23T10:00:00Z","x":"# + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "}"
        #expect(try read(nested).lost == [])
        var invalidUTF8 = Array(#"{"vaults":[],"gained":[],"lost":["x"],"serverTime":"2026-11-23T10:00:00Z"}"#.utf8)
        invalidUTF8[invalidUTF8.firstIndex(of: UInt8(ascii: "x"))!] = 0xff
        #expect(throws: (any Error).self) { try invalidUTF8.withUnsafeBytes { try PullResponse(jsonBytes: $0) } }
    }

    @Test("pull requests and decrypted items read by hand equal what JSONDecoder reads, nulls and unknown fields included")
    func requestsAndDocuments() throws {
        var random = SeededGenerator(seed: 5)
        let encoder = JSONEncoder()
        for round in 0..<300 {
            let vaults: [String: Int64]? = Bool.random(using: &random) ? nil : Dictionary(
                (0..<Int.random(in: 0...3, using: &random)).map { _ in (Self.text(&random), Self.number(&random)) }, uniquingKeysWith: { $1 })
            let request = PullRequest(vaults: vaults, limit: Bool.random(using: &random) ? nil : Int(truncatingIfNeeded: Self.number(&random)))
            let data = try encoder.encode(request)
            let read = try data.withUnsafeBytes { try PullRequest(jsonBytes: $0) }
            #expect(read.vaults == request.vaults && read.limit == request.limit, "round \(round)")

            func optional() -> String? { Bool.random(using: &random) ? Self.text(&random) : nil }
            let document = ItemDocument(
                title: Self.text(&random), username: optional(), password: optional(), url: optional(), notes: optional(),
                modifiedAt: Self.time(&random), modifiedBy: optional()
            )
            let documentData = try encoder.encode(document)
            #expect(try documentData.withUnsafeBytes { try ItemDocument(jsonBytes: $0) } == document, "round \(round)")
        }
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        let explicitNulls = try bytes(#"{"vaults":null,"limit":null,"since":"ignored"}"#).withUnsafeBytes { try PullRequest(jsonBytes: $0) }
        #expect(explicitNulls.vaults == nil && explicitNulls.limit == nil)
        let withExtras = try bytes(#"{"title":"T","username":null,"tags":["a"],"modifiedAt":"2026-11-23T10:00:00.000Z"}"#)
            .withUnsafeBytes { try ItemDocument(jsonBytes: $0) }
        #expect(withExtras == ItemDocument(title: "T", modifiedAt: Timestamp(iso8601: "2026-11-23T10:00:00.000Z")!))
        // Refused by the hand reader (no title; a fractional limit): callers then ask JSONDecoder, which names the problem.
        #expect(try bytes(#"{"username":"u","modifiedAt":"2026-11-23T10:00:00.000Z"}"#).withUnsafeBytes { JSONByteReader.handRead(ItemDocument.self, from: $0) } == nil)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ItemDocument.self, from: Data(#"{"username":"u","modifiedAt":"2026-11-23T10:00:00.000Z"}"#.utf8)) }
        #expect(throws: (any Error).self) { try bytes(#"{"limit":1.5}"#).withUnsafeBytes { try PullRequest(jsonBytes: $0) } }
    }

    @Test("10 000 seeded mutations of valid bodies: the hand reader never crashes, and what it accepts JSONDecoder reads the same")
    func mutatedInputs() throws {
        var random = SeededGenerator(seed: 13)
        var disagreements: [String] = []
        for round in 0..<10_000 {
            let valid = round % 2 == 0
                ? Array(try JSONEncoder().encode(Self.response(&random)))
                : Array(try JSONEncoder().encode(PullRequest(vaults: [Self.text(&random): Self.number(&random)], limit: Int.random(in: 1...5000, using: &random))))
            var bytes = valid
            for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.remove(at: at)
                case 2: bytes.insert(Array(#"{}[]",:0-9.eE\u"#.utf8).randomElement(using: &random)!, at: at)
                default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 8)], at: at)
                }
            }
            let data = Data(bytes)
            if round % 2 == 0 {
                if let hand = try? bytes.withUnsafeBytes({ try PullResponse(jsonBytes: $0) }), (try? JSONDecoder().decode(PullResponse.self, from: data)) != hand {
                    disagreements.append(String(decoding: bytes, as: UTF8.self))
                }
            } else if let hand = try? bytes.withUnsafeBytes({ try PullRequest(jsonBytes: $0) }) {
                let decoded = try? JSONDecoder().decode(PullRequest.self, from: data)
                if decoded?.vaults != hand.vaults || decoded?.limit != hand.limit { disagreements.append(String(decoding: bytes, as: UTF8.self)) }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    @Test("an empty answer")
    func empty() {
        let response = PullResponse(vaults: [], gained: [], lost: [], serverTime: Timestamp(milliseconds: 0))
        #expect(String(decoding: response.jsonBytes(), as: UTF8.self) == #"{"vaults":[],"gained":[],"lost":[],"serverTime":"1970-01-01T00:00:00.000Z"}"#)
    }

    static func text(_ random: inout SeededGenerator) -> String {
        if Bool.random(using: &random) { return String(random.next(), radix: 16) }
        return (0..<Int.random(in: 1...3, using: &random)).map { _ in awkward.randomElement(using: &random)! }.joined()
    }

    static func number(_ random: inout SeededGenerator) -> Int64 {
        [Int64.min, -1, 0, 9, 10, Int64.max, Int64.random(in: .min ... .max, using: &random)].randomElement(using: &random)!
    }

    static func time(_ random: inout SeededGenerator) -> Timestamp {
        Timestamp(milliseconds: Int64.random(in: 0...253_402_300_799_999, using: &random))
    }

    static func response(_ random: inout SeededGenerator) -> PullResponse {
        func item() -> Item {
            Item(
                id: text(&random), vaultId: text(&random), encryptedData: Bool.random(using: &random) ? text(&random) : nil,
                version: Int(truncatingIfNeeded: number(&random)), revision: number(&random), deleted: Bool.random(using: &random),
                createdAt: time(&random), updatedAt: time(&random), deviceId: Bool.random(using: &random) ? text(&random) : nil
            )
        }
        func vault() -> VaultSummary {
            VaultSummary(
                id: text(&random), ownerId: text(&random), role: VaultRole.allCases.randomElement(using: &random)!,
                encryptedMetadata: text(&random), wrappedKey: text(&random), revision: number(&random),
                createdAt: time(&random), updatedAt: time(&random), keySealedBy: Bool.random(using: &random) ? text(&random) : nil
            )
        }
        let vaults = (0..<Int.random(in: 0...3, using: &random)).map { _ in
            VaultChanges(
                vaultId: text(&random), items: (0..<Int.random(in: 0...4, using: &random)).map { _ in item() },
                cursor: number(&random), hasMore: Bool.random(using: &random)
            )
        }
        return PullResponse(
            vaults: vaults, gained: (0..<Int.random(in: 0...2, using: &random)).map { _ in vault() },
            lost: (0..<Int.random(in: 0...2, using: &random)).map { _ in text(&random) }, serverTime: time(&random)
        )
    }
}
