import CofferKit
import CofferProtocol
import CofferTestSupport
import Testing

/// Conflict policies (SPEC.md §7), deterministically: same inputs, same decision on every device.
@Suite("Conflict resolution")
struct ConflictResolverTests {
    static let t0 = Timestamp(milliseconds: 1_795_428_000_000)
    static let base = ItemDocument(title: "Bank", username: "alice", password: "one", url: "https://bank.example", notes: nil, modifiedAt: t0, modifiedBy: "device-a")

    static func edit(_ change: (inout ItemDocument) -> Void, at offset: Int64, by device: String) -> ItemDocument {
        var document = base
        change(&document)
        document.modifiedAt = Timestamp(milliseconds: t0.milliseconds + offset)
        document.modifiedBy = device
        return document
    }

    @Test("last-write-wins: the later modification wins; equal times fall to the larger device id")
    func lastWriteWins() {
        let local = Self.edit({ $0.password = "local" }, at: 2000, by: "device-l")
        let server = Self.edit({ $0.password = "server" }, at: 1000, by: "device-s")
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .lastWriteWins, localDevice: "device-l", serverDevice: "device-s").outcome == .push(local))
        let laterServer = Self.edit({ $0.password = "server" }, at: 3000, by: "device-s")
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: laterServer, policy: .lastWriteWins, localDevice: "device-l", serverDevice: "device-s").outcome == .keepServer)
        let tie = Self.edit({ $0.password = "server" }, at: 2000, by: "device-s")
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: tie, policy: .lastWriteWins, localDevice: "device-l", serverDevice: "device-s").outcome == .keepServer)
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: tie, policy: .lastWriteWins, localDevice: "device-z", serverDevice: "device-s").outcome == .push(local))
    }

    @Test("manual keeps both, whatever the edits")
    func manualKeepsBoth() {
        let local = Self.edit({ $0.notes = "mine" }, at: 5, by: "l")
        let server = Self.edit({ $0.url = "https://other.example" }, at: 9, by: "s")
        let decision = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .manual, localDevice: "l", serverDevice: "s")
        #expect(decision.outcome == .manual && decision.policy == .manual)
    }

    @Test("merge: fields changed on one side only are combined")
    func mergeDisjointFields() {
        let local = Self.edit({ $0.password = "new password"; $0.notes = "PIN 1234" }, at: 100, by: "l")
        let server = Self.edit({ $0.url = "https://login.bank.example"; $0.title = "My bank" }, at: 200, by: "s")
        let decision = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .merge, localDevice: "l", serverDevice: "s")
        guard case .push(let merged) = decision.outcome else { Issue.record("expected a merge, got \(decision.outcome)"); return }
        #expect(merged.title == "My bank" && merged.username == "alice" && merged.password == "new password")
        #expect(merged.url == "https://login.bank.example" && merged.notes == "PIN 1234")
        #expect(merged.modifiedAt == server.modifiedAt && merged.modifiedBy == "l")
        #expect(decision.fromLocal.sorted() == ["notes", "password"] && decision.fromServer.sorted() == ["title", "url"] && decision.contested.isEmpty)
    }

    @Test("merge: nothing new on this side keeps the server's version")
    func mergeNothingLocal() {
        let server = Self.edit({ $0.password = "rotated" }, at: 50, by: "s")
        let decision = ConflictResolver.resolve(base: Self.base, local: Self.base, server: server, policy: .merge, localDevice: "l", serverDevice: "s")
        #expect(decision.outcome == .keepServer && decision.fromServer == ["password"])
    }

    @Test("merge: the same field changed on both sides falls back to the vault's policy")
    func mergeContested() {
        let local = Self.edit({ $0.password = "local"; $0.notes = "n" }, at: 300, by: "l")
        let server = Self.edit({ $0.password = "server" }, at: 200, by: "s")
        let lww = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .merge, fallback: .lastWriteWins, localDevice: "l", serverDevice: "s")
        #expect(lww.outcome == .push(local) && lww.contested == ["password"] && lww.policy == .lastWriteWins)
        let manual = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .merge, fallback: .manual, localDevice: "l", serverDevice: "s")
        #expect(manual.outcome == .manual && manual.contested == ["password"])
        // Both sides set the same value: no conflict on that field.
        let same = Self.edit({ $0.password = "local" }, at: 100, by: "s")
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: same, policy: .merge, localDevice: "l", serverDevice: "s").contested.isEmpty)
    }

    @Test("merge without the base version treats every differing field as contested")
    func mergeWithoutBase() {
        let local = Self.edit({ $0.notes = "mine" }, at: 10, by: "l")
        let server = Self.edit({ $0.url = "https://x.example" }, at: 20, by: "s")
        let decision = ConflictResolver.resolve(base: nil, local: local, server: server, policy: .merge, fallback: .manual, localDevice: "l", serverDevice: "s")
        #expect(decision.outcome == .manual && decision.contested.sorted() == ["notes", "url"])
    }

    @Test("merge is symmetric and idempotent on 2 000 random edits: both devices reach the same fields")
    func mergeProperties() {
        var generator = SeededGenerator(seed: 42)
        let values: [String?] = [nil, "a", "b", "c"]
        for _ in 0..<2000 {
            func randomEdit(_ device: String, _ offset: Int64) -> ItemDocument {
                Self.edit({ document in
                    for field in ["username", "password", "url", "notes"] where Int.random(in: 0..<3, using: &generator) == 0 {
                        let value = values.randomElement(using: &generator)!
                        switch field {
                        case "username": document.username = value
                        case "password": document.password = value
                        case "url": document.url = value
                        default: document.notes = value
                        }
                    }
                }, at: offset, by: device)
            }
            let a = randomEdit("device-a", Int64.random(in: 1...5, using: &generator))
            let b = randomEdit("device-b", Int64.random(in: 1...5, using: &generator))
            let ab = ConflictResolver.resolve(base: Self.base, local: a, server: b, policy: .merge, localDevice: "device-a", serverDevice: "device-b")
            let ba = ConflictResolver.resolve(base: Self.base, local: b, server: a, policy: .merge, localDevice: "device-b", serverDevice: "device-a")
            func fields(_ outcome: ConflictOutcome, server: ItemDocument) -> [String?] {
                let document: ItemDocument
                switch outcome {
                case .push(let pushed): document = pushed
                case .keepServer: document = server
                case .manual: return ["manual"]
                }
                return [document.title, document.username, document.password, document.url, document.notes]
            }
            // Whichever device resolves, the item ends with the same fields.
            #expect(fields(ab.outcome, server: b) == fields(ba.outcome, server: a), "\(a) vs \(b)")
            // A side that changed nothing adopts the other side.
            #expect(ConflictResolver.resolve(base: Self.base, local: Self.base, server: b, policy: .merge, localDevice: "device-a", serverDevice: "device-b").outcome == .keepServer || b == Self.base)
        }
    }
}
