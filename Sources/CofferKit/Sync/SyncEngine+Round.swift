import CofferProtocol
import Foundation

extension SyncEngine {
    /// One round: pull the server's changes, push the queue (settling conflicts with `policy`,
    /// or each vault's own), then pull once more to pick up what the push wrote.
    /// With `refreshVaults`, it first reads every vault's current name, role and key (a pull
    /// carries items only): after a rename, a role change or a key rotation elsewhere.
    @discardableResult
    public func sync(policy override: ConflictPolicy? = nil, refreshVaults: Bool = false) async throws -> SyncReport {
        setState(.syncing)
        do {
            var report = SyncReport()
            if refreshVaults || vaultsStale { try await refreshVaultSummaries() }
            // A revoke interrupted or refused earlier is finished before anything else is pushed.
            if try !cache.pendingRevokes().isEmpty { await finishPendingRevokes() }
            try await pull(into: &report)
            if try await push(into: &report, policy: override) {
                try await pull(into: &report)
            }
            report.pending = try cache.pendingCount()
            report.openConflicts = try cache.openConflictCount()
            let now = Timestamp.now
            if !report.quiet {
                try cache.refetchableTransaction {
                    try cache.log("sync", detail: "pulled \(report.pulled), pushed \(report.pushed), conflicts \(report.conflicts), rejected \(report.rejected)", at: now)
                }
            }
            setState(.idle, lastSync: now)
            return report
        } catch {
            let offline = RetryPolicy.classify(error) == .offline
            setState(offline ? .offline : .error, error: "\(error)")
            if !offline { try? cache.log("error", detail: "\(error)") }
            throw error
        }
    }

    /// Asks the server for its per-vault revisions (a cheap reachability check) and refuses an
    /// answer below what this device saw. Changes nothing but the recorded state.
    public func probe() async throws -> SyncStatus {
        do {
            let answer = try await transport.status()
            let seen = Dictionary(uniqueKeysWithValues: try cache.vaults().map { ($0.summary.id, $0.highest) })
            for vault in answer.vaults {
                if let highest = seen[vault.vaultId], vault.revision < highest {
                    throw SyncError.rollback(vaultId: vault.vaultId, seen: highest, answered: vault.revision)
                }
            }
            if state == .offline || state == .syncing { setState(.idle) }
        } catch {
            if RetryPolicy.classify(error) == .offline { setState(.offline, error: "\(error)") } else { setState(.error, error: "\(error)") }
        }
        return try status()
    }

    /// Stores the current summary of every known vault whose name, role or key changed.
    private func refreshVaultSummaries() async throws {
        let known = Dictionary(uniqueKeysWithValues: try cache.vaults().map { ($0.summary.id, $0.summary) })
        var changed: [VaultSummary] = []
        for summary in try await transport.vaults() {
            guard let old = known[summary.id], old.encryptedMetadata != summary.encryptedMetadata || old.wrappedKey != summary.wrappedKey
                || old.role != summary.role || old.keySealedBy != summary.keySealedBy || old.keyEpoch != summary.keyEpoch
                || old.keyHistory != summary.keyHistory
            else { continue }
            try await adopt(summary)  // a tampered key, history or name, or an older key, stops here
            changed.append(summary)
        }
        try cache.refetchableTransaction {
            for summary in changed {
                try cache.saveVault(summary)
                try cache.log("vault", vaultId: summary.id, detail: "name, role or key changed")
            }
        }
        vaultsStale = false
    }

    // MARK: Pull

    private func pull(into report: inout SyncReport) async throws {
        var total: Int?
        let startedAt = report.pulled
        while true {
            let known = try cache.vaults()
            let cursors = Dictionary(uniqueKeysWithValues: known.map { ($0.summary.id, $0.cursor) })
            let seen = Dictionary(uniqueKeysWithValues: known.map { ($0.summary.id, $0.highest) })
            let answer = try await transport.pull(PullRequest(vaults: cursors, limit: configuration.pageSize))

            // Check everything before writing anything: a rollback changes nothing locally.
            let gained = Set(answer.gained.map(\.id))
            for changes in answer.vaults {
                guard cursors[changes.vaultId] != nil || gained.contains(changes.vaultId) else {
                    throw CofferClientError.invalidResponse("the pull answered for vault \(changes.vaultId), which it neither had nor gained")
                }
                let sent = cursors[changes.vaultId] ?? 0
                let highest = seen[changes.vaultId] ?? 0
                if changes.cursor < highest { throw SyncError.rollback(vaultId: changes.vaultId, seen: highest, answered: changes.cursor) }
                for item in changes.items where item.revision <= sent || item.revision > changes.cursor || item.vaultId != changes.vaultId {
                    throw SyncError.rollback(vaultId: changes.vaultId, seen: max(sent, highest), answered: item.revision)
                }
            }
            var refreshed: [VaultSummary] = []
            for summary in answer.gained {
                try await adopt(summary)
            }
            // Decrypt every item now: a tampered one stops the round before anything is stored.
            var documents: [String: ItemDocument] = [:]
            for changes in answer.vaults {
                for item in changes.items where !item.deleted {
                    guard let data = item.encryptedData else { continue }
                    do {
                        documents[item.id] = try await open(data, itemId: item.id, vaultId: item.vaultId)
                    } catch let error as CofferError where !refreshed.contains(where: { $0.id == item.vaultId }) && !gained.contains(item.vaultId) {
                        // The vault key may have been rotated by another member: fetch it once and retry.
                        guard case .tampered = error else { throw error }
                        let summary = try await transport.vault(id: item.vaultId)
                        try await adopt(summary)
                        refreshed.append(summary)
                        documents[item.id] = try await open(data, itemId: item.id, vaultId: item.vaultId)
                    }
                }
            }

            var events: [SyncEvent] = []
            let lost = answer.lost
            try cache.refetchableTransaction {
                for summary in answer.gained + refreshed {
                    try cache.saveVault(summary)
                    if gained.contains(summary.id) {
                        try cache.log("gained", vaultId: summary.id)
                        events.append(.gainedVault(summary.id))
                        report.gainedVaults += 1
                    }
                }
                for changes in answer.vaults {
                    for item in changes.items {
                        // Our own pushes come back once; they are not news.
                        let echo = try cache.item(id: item.id).map { $0.version >= item.version } ?? false
                        try cache.saveItem(item)
                        if !echo {
                            report.pulled += 1
                            events.append(.pulled(vaultId: item.vaultId, itemId: item.id, version: item.version, document: documents[item.id], deviceId: item.deviceId))
                        }
                    }
                    try cache.setCursor(vaultId: changes.vaultId, cursor: changes.cursor, highest: changes.cursor)
                    let fresh = changes.items.count
                    if fresh > 0 { try cache.log("pulled", vaultId: changes.vaultId, detail: "\(fresh) changes up to revision \(changes.cursor)") }
                }
                for vaultId in lost {
                    // Queued changes to a vault we lost cannot be pushed; they are kept as rejected.
                    try forgetVault(id: vaultId, reason: "access to the vault was lost", logKind: "lost")
                    events.append(.lostVault(vaultId))
                    report.lostVaults += 1
                }
            }
            for vaultId in lost { keys[vaultId] = nil }
            for event in events { emit(event) }
            if answer.vaults.contains(where: \.hasMore) {
                if total == nil, let status = try? await transport.status() {
                    // How many changes remain at most, for a progress display: revisions not yet read.
                    var after: [String: Int64] = [:]
                    for changes in answer.vaults { after[changes.vaultId] = changes.cursor }
                    var remaining = 0
                    for vault in status.vaults {
                        remaining += Int(max(0, vault.revision - (after[vault.vaultId] ?? cursors[vault.vaultId] ?? 0)))
                    }
                    total = report.pulled - startedAt + remaining
                }
                emit(.progress(done: report.pulled - startedAt, total: total))
            } else {
                if let total { emit(.progress(done: total, total: total)) }
                return
            }
        }
    }

    // MARK: Push

    /// Pushes the queue; returns whether anything reached the server.
    private func push(into report: inout SyncReport, policy override: ConflictPolicy?) async throws -> Bool {
        var wrote = false
        // Items whose conflict could not be settled this round (the server moved on meanwhile).
        var deferred = Set<String>()
        // What was queued before a rotation goes out sealed under the current key, never the old one.
        for cached in try cache.vaults() { try await resealQueued(vaultId: cached.summary.id) }
        var staleAnswers: [String: Int] = [:]
        while true {
            let ready = try cache.readyChanges(limit: configuration.pushBatch, excluding: deferred)
            if ready.isEmpty { return wrote }
            let answer = try await transport.push(PushRequest(changes: ready.map {
                PushChange(vaultId: $0.vaultId, itemId: $0.itemId, baseVersion: $0.baseVersion ?? 0, encryptedData: $0.encryptedData, deleted: $0.deleted ? true : nil)
            }))
            guard answer.results.count == ready.count else {
                throw CofferClientError.invalidResponse("the push answered \(answer.results.count) results for \(ready.count) changes")
            }
            // Applied and refused changes are written together (one commit per push); conflicts
            // need the network to settle, so they follow one by one.
            var conflicts: [(PendingChange, PushResult)] = []
            var events: [SyncEvent] = []
            var stale: [String: [String]] = [:]
            try cache.refetchableTransaction {
                for (change, result) in zip(ready, answer.results) {
                    switch result.status {
                    case .applied:
                        guard let version = result.version, let revision = result.revision else {
                            throw CofferClientError.invalidResponse("an applied change without its version")
                        }
                        let now = Timestamp.now
                        let previous = try cache.item(id: change.itemId)
                        try cache.completed(change, newVersion: version)
                        try cache.saveItem(Item(
                            id: change.itemId, vaultId: change.vaultId, encryptedData: change.encryptedData, version: version, revision: revision,
                            deleted: change.deleted, createdAt: previous?.createdAt ?? now, updatedAt: now, deviceId: deviceId
                        ))
                        try cache.log("pushed", vaultId: change.vaultId, itemId: change.itemId, version: version, detail: change.deleted ? "delete" : nil)
                        report.pushed += 1
                        events.append(.pushed(vaultId: change.vaultId, itemId: change.itemId, version: version))
                    case .rejected where result.error?.code == ErrorCode.staleKey:
                        // Sealed under a key rotated away meanwhile: kept queued, sealed again below.
                        stale[change.vaultId, default: []].append(change.itemId)
                    case .rejected:
                        let reason = result.error.map { "\($0.code): \($0.error)" } ?? "rejected"
                        try recordRejected(itemId: change.itemId, vaultId: change.vaultId, changes: try cache.pending(itemId: change.itemId), serverVersion: change.baseVersion ?? 0, reason: reason)
                        report.rejected += 1
                        events.append(.rejected(itemId: change.itemId, reason: reason))
                    case .conflict:
                        conflicts.append((change, result))
                    }
                }
            }
            if report.pushed > 0 { wrote = true }
            for event in events { emit(event) }
            for (vaultId, itemIds) in stale {
                staleAnswers[vaultId, default: 0] += 1
                guard staleAnswers[vaultId, default: 0] <= 3 else {
                    // The server keeps refusing the key it serves: leave the changes queued for a later round.
                    deferred.formUnion(itemIds)
                    continue
                }
                try await refreshVault(vaultId)
                try await resealQueued(vaultId: vaultId)
            }
            for (change, result) in conflicts {
                guard let current = result.current else { throw CofferClientError.invalidResponse("a conflict without the current item") }
                if try await settle(change, current: current, base: result.base, policy: override, report: &report) {
                    wrote = true
                } else {
                    deferred.insert(change.itemId)
                }
            }
            publishStatus()
        }
    }

    func recordRejected(itemId: String, vaultId: String, changes: [PendingChange], serverVersion: Int, reason: String) throws {
        guard let last = changes.last else { return }
        try cache.recordConflict(ConflictRecord(
            id: 0, itemId: itemId, vaultId: vaultId, localData: last.encryptedData, earlier: changes.dropLast().compactMap(\.encryptedData),
            serverVersion: serverVersion, baseVersion: changes.first?.baseVersion ?? 0, policy: "none", outcome: "rejected", state: .rejected,
            detail: reason, createdAt: .now, resolvedAt: nil
        ))
        try cache.dropPending(itemId: itemId)
        try cache.log("rejected", vaultId: vaultId, itemId: itemId, detail: reason)
    }

    /// Settles one conflict by policy. Every queued change of the item is settled together (the
    /// last one is this device's side; earlier ones are kept in the record). Returns false when
    /// the server moved on while settling; the queue is then left as it was for the next round.
    private func settle(_ change: PendingChange, current: Item, base: ItemVersion?, policy override: ConflictPolicy?, report: inout SyncReport) async throws -> Bool {
        let queued = try cache.pending(itemId: change.itemId)
        guard let last = queued.last else { return true }
        let vaultId = change.vaultId
        let local = try await open(optional: last.encryptedData, itemId: change.itemId, vaultId: vaultId)
        let server = try await open(optional: current.deleted ? nil : current.encryptedData, itemId: current.id, vaultId: vaultId)
        let baseDocument = try await open(optional: base.flatMap { $0.deleted ? nil : $0.encryptedData }, itemId: current.id, vaultId: vaultId)
        let policy = try override ?? policy(vaultId: vaultId)

        let outcome: ConflictOutcome
        var settledBy = policy
        var merge: MergeSummary?
        switch (local, server) {
        case (nil, nil):
            outcome = .keepServer  // both deleted it
        case (nil, .some):
            // An edit beats a delete: keeping the edit loses nothing, and the delete is recorded.
            outcome = policy == .manual ? .manual : .keepServer
        case (.some(let local), nil):
            outcome = policy == .manual ? .manual : .push(local)
        case (.some(let local), .some(let server)) where baseDocument == server:
            // The server's version is the base sealed again (a key rotation re-encrypted it):
            // nothing to settle, whatever the policy.
            outcome = .push(local)
            settledBy = .lastWriteWins
        case (.some(let local), .some(let server)):
            let decision = ConflictResolver.resolve(
                base: baseDocument, local: local, server: server, policy: policy, fallback: configuration.mergeFallback,
                localDevice: deviceId, serverDevice: current.deviceId
            )
            outcome = decision.outcome
            settledBy = decision.policy
            merge = decision.summary
        }

        let label: String
        var settled = current
        do {
            switch outcome {
            case .push(let document):
                let sealed = try VaultCrypto.sealItem(document, itemId: current.id, vaultId: vaultId, key: try await vault(vaultId).key)
                settled = try await transport.resolve(ResolveRequest(itemId: current.id, baseVersion: current.version, encryptedData: sealed, strategy: "client"))
                label = settledBy == .merge ? "merged" : "pushed-local"
            case .keepServer where local == nil && server == nil:
                label = "both-deleted"  // nothing to settle: both sides deleted it
            case .keepServer:
                settled = try await transport.resolve(ResolveRequest(itemId: current.id, baseVersion: current.version, strategy: "server"))
                label = "kept-server"
            case .manual:
                label = "manual"
            }
        } catch let error as CofferClientError where error.status == 409 {
            // The server moved on (or rotated the key): read the current key and settle next round.
            if error.code == ErrorCode.staleKey { try await refreshVault(vaultId) }
            return false
        }
        try cache.transaction {
            try cache.recordConflict(ConflictRecord(
                id: 0, itemId: current.id, vaultId: vaultId, localData: last.encryptedData, earlier: queued.dropLast().compactMap(\.encryptedData),
                serverVersion: current.version, baseVersion: queued.first?.baseVersion ?? 0, policy: policy.rawValue, outcome: label,
                state: outcome == .manual ? .open : .resolved, detail: nil, createdAt: .now, resolvedAt: outcome == .manual ? nil : .now,
                // Both sides and the base, so that `conflicts show` can show what each field lost.
                serverData: current.deleted ? nil : current.encryptedData, serverDeleted: current.deleted, serverDeviceId: current.deviceId,
                baseData: base.flatMap { $0.deleted ? nil : $0.encryptedData }, merge: merge
            ))
            try cache.dropPending(itemId: current.id)
            try cache.saveItem(settled)
            try cache.log(outcome == .manual ? "conflict" : "resolved", vaultId: vaultId, itemId: current.id, version: settled.version, detail: label)
        }
        report.conflicts += 1
        emit(.conflict(itemId: current.id, outcome: label))
        return outcome != .manual
    }

    // MARK: Open conflicts

    /// Which side the user keeps when settling an open conflict.
    public enum ConflictChoice: String, Sendable, CaseIterable {
        case local
        case server
    }

    /// Settles an open conflict as the user chose and records it on the server (`resolve`).
    @discardableResult
    public func resolveConflict(id: Int64, keep choice: ConflictChoice) async throws -> Item {
        guard let record = try cache.conflicts(state: .open).first(where: { $0.id == id }) else {
            throw CofferError.localStorage("no open conflict \(id) (see `coffer conflicts list`)")
        }
        var report = SyncReport()
        try await pull(into: &report)
        var settled: Item?
        for attempt in 1...2 {
            guard let current = try cache.item(id: record.itemId) else { throw SyncError.unknownItem(record.itemId) }
            // The local side may predate a rotation: it goes out under the current key, never the old one.
            var local: String?
            if let data = record.localData { local = try await sealedUnderCurrentKey(data, itemId: record.itemId, vaultId: record.vaultId) }
            let request = switch choice {
            case .local:
                ResolveRequest(itemId: current.id, baseVersion: current.version, encryptedData: local, deleted: local == nil ? true : nil, strategy: "client")
            case .server:
                ResolveRequest(itemId: current.id, baseVersion: current.version, strategy: "server")
            }
            do {
                settled = try await transport.resolve(request)
                break
            } catch let error as CofferClientError where error.code == ErrorCode.staleKey && attempt == 1 {
                try await refreshVault(record.vaultId)
            }
        }
        guard let settled else { throw SyncError.unknownItem(record.itemId) }
        try cache.transaction {
            try cache.settleConflict(id: id, outcome: "user-kept-\(choice.rawValue)", at: .now)
            try cache.saveItem(settled)
            try cache.log("resolved", vaultId: record.vaultId, itemId: record.itemId, version: settled.version, detail: "user kept \(choice.rawValue)")
        }
        publishStatus()
        return settled
    }

    /// Decrypts the local side of a conflict (nil when this device deleted the item).
    public func localSide(of record: ConflictRecord) async throws -> ItemDocument? {
        try await open(optional: record.localData, itemId: record.itemId, vaultId: record.vaultId)
    }
}
