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

    @Test("merge: a field changed on both sides goes by the tie-break; the other fields still merge; a manual fallback leaves it to the user")
    func mergeContested() {
        let local = Self.edit({ $0.password = "local"; $0.notes = "n" }, at: 300, by: "l")
        let server = Self.edit({ $0.password = "server"; $0.url = "https://server.example" }, at: 200, by: "s")
        let lww = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .merge, fallback: .lastWriteWins, localDevice: "l", serverDevice: "s")
        guard case .push(let merged) = lww.outcome else { Issue.record("expected a merge, got \(lww.outcome)"); return }
        // The later edit (local) wins the password; the server's url is kept all the same.
        #expect(merged.password == "local" && merged.notes == "n" && merged.url == "https://server.example")
        #expect(lww.contested == ["password"] && lww.fromLocal == ["notes"] && lww.fromServer == ["url"] && lww.policy == .merge)
        #expect(lww.contestedWinner == .local && lww.lost == [LostValue(field: .password, side: .server, value: "server")])
        #expect(lww.summary == MergeSummary(fromLocal: ["notes"], fromServer: ["url"], contested: ["password"], contestedWinner: .local))
        let manual = ConflictResolver.resolve(base: Self.base, local: local, server: server, policy: .merge, fallback: .manual, localDevice: "l", serverDevice: "s")
        #expect(manual.outcome == .manual && manual.contested == ["password"] && manual.contestedWinner == nil && manual.lost.isEmpty)
        // Both sides set the same value: no conflict on that field.
        let same = Self.edit({ $0.password = "local" }, at: 100, by: "s")
        #expect(ConflictResolver.resolve(base: Self.base, local: local, server: same, policy: .merge, localDevice: "l", serverDevice: "s").contested.isEmpty)
    }

    @Test("merge: the reported case — username and notes here, username and url there: notes and url both kept, username by the tie-break")
    func mergeKeepsOneSidedChangesBesideAContestedOne() {
        let base = ItemDocument(title: "Mail", username: "alice", url: "https://mail.example", notes: "base notes", modifiedAt: Self.t0, modifiedBy: "device-0")
        var one = base
        one.username = "alice-1"; one.notes = "notes from 1"; one.modifiedAt = Timestamp(milliseconds: Self.t0.milliseconds + 10); one.modifiedBy = "device-1"
        var three = base
        three.username = "alice-3"; three.url = "https://three.example"; three.modifiedAt = Timestamp(milliseconds: Self.t0.milliseconds + 20); three.modifiedBy = "device-3"
        let decision = ConflictResolver.resolve(base: base, local: three, server: one, policy: .merge, localDevice: "device-3", serverDevice: "device-1")
        guard case .push(let merged) = decision.outcome else { Issue.record("expected a merge, got \(decision.outcome)"); return }
        #expect(merged.username == "alice-3" && merged.notes == "notes from 1" && merged.url == "https://three.example")
        #expect(decision.lost == [LostValue(field: .username, side: .server, value: "alice-1")])
    }

    /// Each field of the exhaustive test: every field has a base value, and each side's new values are distinct.
    static let fullBase = ItemDocument(
        title: "Bank", username: "alice", password: "one", url: "https://bank.example", notes: "base notes", modifiedAt: t0, modifiedBy: "device-0"
    )

    @Test("merge, exhaustively: every subset of fields changed here × every subset changed on the server, overlaps equal or different, every tie-break order, with and without the base")
    func mergeExhaustive() {
        let fields = ItemField.allCases
        func check(localMask: Int, serverMask: Int, equalMask: Int, localOffset: Int64, serverOffset: Int64, localDevice: String, serverDevice: String, localWins: Bool, withBase: Bool) {
            var local = Self.fullBase
            var server = Self.fullBase
            for (index, field) in fields.enumerated() {
                let bit = 1 << index
                if localMask & bit != 0 { field.set(equalMask & bit != 0 ? "both \(field)" : "local \(field)", in: &local) }
                if serverMask & bit != 0 { field.set(equalMask & bit != 0 ? "both \(field)" : "server \(field)", in: &server) }
            }
            local.modifiedAt = Timestamp(milliseconds: Self.t0.milliseconds + localOffset)
            local.modifiedBy = localDevice
            server.modifiedAt = Timestamp(milliseconds: Self.t0.milliseconds + serverOffset)
            server.modifiedBy = serverDevice
            let label = "local \(localMask) server \(serverMask) equal \(equalMask) \(localDevice)@\(localOffset) vs \(serverDevice)@\(serverOffset) base \(withBase)"

            // What the rules say, field by field.
            var expected = Self.fullBase
            var fromLocal: [String] = [], fromServer: [String] = [], contested: [String] = []
            var lost: [LostValue] = []
            for (index, field) in fields.enumerated() {
                let bit = 1 << index
                let localValue = field.value(in: local), serverValue = field.value(in: server)
                if localValue == serverValue {
                    field.set(localValue, in: &expected)  // unchanged (the base) or changed alike on both sides
                } else if withBase && localMask & bit == 0 {
                    field.set(serverValue, in: &expected)
                    fromServer.append(field.rawValue)
                } else if withBase && serverMask & bit == 0 {
                    field.set(localValue, in: &expected)
                    fromLocal.append(field.rawValue)
                } else {
                    // Without the base every differing field is contested.
                    contested.append(field.rawValue)
                    field.set(localWins ? localValue : serverValue, in: &expected)
                    lost.append(LostValue(field: field, side: localWins ? .server : .local, value: localWins ? serverValue : localValue))
                }
            }

            let decision = ConflictResolver.resolve(
                base: withBase ? Self.fullBase : nil, local: local, server: server, policy: .merge, localDevice: localDevice, serverDevice: serverDevice
            )
            #expect(decision.fromLocal == fromLocal && decision.fromServer == fromServer && decision.contested == contested, "\(label): \(decision)")
            #expect(decision.lost == lost, "\(label)")
            #expect(decision.contestedWinner == (contested.isEmpty ? nil : (localWins ? .local : .server)), "\(label)")
            let result: ItemDocument
            switch decision.outcome {
            case .push(let merged):
                result = merged
                #expect(merged.modifiedAt == max(local.modifiedAt, server.modifiedAt) && merged.modifiedBy == localDevice, "\(label)")
            case .keepServer:
                result = server
            case .manual:
                Issue.record("\(label): a merge with a last-write-wins fallback left the conflict to the user")
                return
            }
            #expect(ItemField.differing(result, expected).isEmpty, "\(label): got \(result), expected \(expected)")
            // The server's version stands exactly when nothing of this side's survives.
            #expect((decision.outcome == .keepServer) == ItemField.differing(expected, server).isEmpty, "\(label)")

            // The other device, settling the same conflict, reaches the same fields.
            let mirrored = ConflictResolver.resolve(
                base: withBase ? Self.fullBase : nil, local: server, server: local, policy: .merge, localDevice: serverDevice, serverDevice: localDevice
            )
            let mirroredResult: ItemDocument? = switch mirrored.outcome {
            case .push(let merged): merged
            case .keepServer: local
            case .manual: nil
            }
            #expect(mirroredResult.map { ItemField.differing($0, expected).isEmpty } == true, "\(label): the other device reached \(String(describing: mirroredResult))")

            // A manual fallback leaves exactly the contested cases to the user, and merges the rest the same way.
            let manual = ConflictResolver.resolve(
                base: withBase ? Self.fullBase : nil, local: local, server: server, policy: .merge, fallback: .manual, localDevice: localDevice, serverDevice: serverDevice
            )
            if contested.isEmpty {
                #expect(manual == decision, "\(label)")
            } else {
                #expect(manual.outcome == .manual && manual.contested == contested && manual.lost.isEmpty, "\(label)")
            }
        }

        // (local offset, server offset, local device, server device, whether local wins the tie-break)
        let orders: [(Int64, Int64, String, String, Bool)] = [
            (20, 10, "device-l", "device-s", true),  // local later
            (10, 20, "device-l", "device-s", false),  // server later
            (10, 10, "device-l", "device-s", false),  // same time: the larger device id wins
            (10, 10, "device-z", "device-s", true),
        ]
        var cases = 0
        for localMask in 0..<(1 << fields.count) {
            for serverMask in 0..<(1 << fields.count) {
                let overlap = localMask & serverMask
                // Every subset of the overlap set to the same value on both sides, the rest to different values.
                var equalMask = overlap
                while true {
                    for (localOffset, serverOffset, localDevice, serverDevice, localWins) in orders {
                        for withBase in [true, false] {
                            check(localMask: localMask, serverMask: serverMask, equalMask: equalMask, localOffset: localOffset, serverOffset: serverOffset,
                                  localDevice: localDevice, serverDevice: serverDevice, localWins: localWins, withBase: withBase)
                            cases += 1
                        }
                    }
                    if equalMask == 0 { break }
                    equalMask = (equalMask - 1) & overlap
                }
            }
        }
        #expect(cases == 3125 * 4 * 2)
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
