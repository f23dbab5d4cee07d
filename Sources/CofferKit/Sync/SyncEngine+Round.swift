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
            let readAll = refreshVaults || vaultsStale
            if readAll { try await refreshVaultSummaries(into: &report) }
            // A revoke interrupted or refused earlier is finished before anything else is pushed.
            if try !cache.pendingRevokes().isEmpty { await finishPendingRevokes() }
            try await pull(into: &report)
            if try await push(into: &report, policy: override) {
                try await pull(into: &report)
            }
            report.pending = try cache.pendingCount()
            report.openConflicts = try cache.openConflictCount()
            // Shown by `coffer status` until a round that reads every vault no longer refuses them.
            try cache.transaction { try cache.saveRefusedVaults(report.refusedVaults, replacing: readAll) }
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

    /// Stores the current summary of every known vault whose name, role or key changed. A vault
    /// whose new summary fails verification is refused (its local copy stays as it was); the
    /// others are stored.
    private func refreshVaultSummaries(into report: inout SyncReport) async throws {
        let known = Dictionary(uniqueKeysWithValues: try cache.vaults().map { ($0.summary.id, $0.summary) })
        var changed: [VaultSummary] = []
        for summary in try await transport.vaults() {
            guard let old = known[summary.id], old.encryptedMetadata != summary.encryptedMetadata || old.wrappedKey != summary.wrappedKey
                || old.role != summary.role || old.keySealedBy != summary.keySealedBy || old.keyEpoch != summary.keyEpoch
                || old.keyHistory != summary.keyHistory
            else { continue }
            do {
                try await adopt(summary)  // a tampered key, history or name, or an older key, stops here
            } catch where Self.isVerificationFailure(error) {
                await refuse(summary.id, because: "\(error)", into: &report)
                continue
            }
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
        let userId = try await vaultClient.identity().userId
        // A vault refused this round pages on in memory only, so that the others' pages move on;
        // nothing of it is stored, and the next round reads it again from its stored cursor.
        var refusedCursors: [String: Int64] = [:]
        while true {
            let known = try cache.vaults()
            // A vault kept after access was lost is not asked for: should it come back, the server
            // lists it as gained, with its current key, and it is merged with the kept copy.
            let kept = try cache.keptVaultIds()
            var cursors = Dictionary(uniqueKeysWithValues: known.filter { !kept.contains($0.summary.id) }.map { ($0.summary.id, $0.cursor) })
            cursors.merge(refusedCursors) { $1 }
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
                // A page with more to come may end below what was seen once (a kept vault pulled again
                // from the start); the last page may not.
                let floor = changes.hasMore ? sent : highest
                if changes.cursor < floor { throw SyncError.rollback(vaultId: changes.vaultId, seen: floor, answered: changes.cursor) }
                for item in changes.items where item.revision <= sent || item.revision > changes.cursor || item.vaultId != changes.vaultId {
                    throw SyncError.rollback(vaultId: changes.vaultId, seen: max(sent, highest), answered: item.revision)
                }
            }
            // Per item: never below the version this device holds; a deletion only with its tombstone.
            for changes in answer.vaults {
                for item in changes.items {
                    let held = try cache.item(id: item.id)
                    if let held, item.version < held.version {
                        throw SyncError.itemRollback(itemId: item.id, vaultId: item.vaultId, seen: held.version, answered: item.version)
                    }
                }
            }
            // Each vault is verified on its own: one that fails (its key, history or name, a
            // tombstone, an item) is refused and none of it is stored; the others go on.
            var refused = Set(report.refusedVaults.map(\.vaultId))
            var adopted: [VaultSummary] = []
            for summary in answer.gained where !refused.contains(summary.id) {
                do {
                    try await adopt(summary)
                    adopted.append(summary)
                } catch where Self.isVerificationFailure(error) {
                    await refuse(summary.id, because: "\(error)", into: &report)
                    refused.insert(summary.id)
                }
            }
            var refreshed: [VaultSummary] = []
            // Decrypt every item now: a tampered one keeps its vault out before anything is stored.
            var documents: [String: ItemDocument] = [:]
            for changes in answer.vaults where !refused.contains(changes.vaultId) {
                do {
                    for item in changes.items where item.deleted {
                        try await verifyDeletion(item, held: try cache.item(id: item.id))
                    }
                    for item in changes.items where !item.deleted {
                        guard let data = item.encryptedData else { continue }
                        do {
                            documents[item.id] = try await open(data, itemId: item.id, vaultId: item.vaultId, binding: .version(item.version))
                        } catch let error as CofferError where !refreshed.contains(where: { $0.id == item.vaultId }) && !gained.contains(item.vaultId) {
                            // The vault key may have been rotated by another member: fetch it once and retry.
                            guard case .tampered = error else { throw error }
                            let summary = try await transport.vault(id: item.vaultId)
                            try await adopt(summary)
                            refreshed.append(summary)
                            documents[item.id] = try await open(data, itemId: item.id, vaultId: item.vaultId, binding: .version(item.version))
                        }
                    }
                } catch where Self.isVerificationFailure(error) {
                    await refuse(changes.vaultId, because: "\(error)", into: &report)
                    refused.insert(changes.vaultId)
                    refreshed.removeAll { $0.id == changes.vaultId }
                    adopted.removeAll { $0.id == changes.vaultId }
                }
            }
            for changes in answer.vaults where refused.contains(changes.vaultId) { refusedCursors[changes.vaultId] = changes.cursor }
            // A claim that this account lost a vault it owns is refused (nothing is deleted); a
            // shared vault it lost is kept, read-only, until a verified removal exists.
            var lost: [String] = []
            for vaultId in answer.lost {
                refusedCursors[vaultId] = nil
                guard let cached = known.first(where: { $0.summary.id == vaultId }), !kept.contains(vaultId) else { continue }
                if cached.summary.ownerId == userId || cached.summary.keySealedBy == nil {
                    await refuse(
                        vaultId,
                        because: "the server says this account lost vault \(vaultId), which it owns: an unverified claim, refused; nothing was deleted "
                            + "(if you deleted it on another device, `coffer vault forget \(vaultId)` drops this copy)",
                        into: &report
                    )
                    refused.insert(vaultId)
                } else {
                    lost.append(vaultId)
                }
            }

            var events: [SyncEvent] = []
            try cache.refetchableTransaction {
                for summary in adopted + refreshed {
                    try cache.saveVault(summary)
                    if gained.contains(summary.id) {
                        if kept.contains(summary.id) {
                            // Back (shared again): its pulled items and cursor merge with the kept copy.
                            try cache.unmarkKept(vaultId: summary.id)
                            try cache.log("gained", vaultId: summary.id, detail: "access regained; merged with the copy kept on this device")
                        } else {
                            try cache.log("gained", vaultId: summary.id)
                        }
                        events.append(.gainedVault(summary.id))
                        report.gainedVaults += 1
                    }
                }
                for changes in answer.vaults where !refused.contains(changes.vaultId) {
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
                    try keepLostVault(id: vaultId)
                    events.append(.lostVault(vaultId))
                    report.lostVaults += 1
                    report.keptVaults.append(vaultId)
                }
            }
            for vaultId in lost { keys[vaultId] = nil }
            for event in events { emit(event) }
            if answer.vaults.contains(where: \.hasMore) {
                if total == nil, let status = try? await transport.status() {
                    // How many changes remain at most, for a progress display: revisions not yet read.
                    var after: [String: Int64] = [:]
                    for changes in answer.vaults { after[changes.vaultId] = changes.cursor }
                    // Saturating: revisions and cursors are the server's numbers.
                    var remaining: Int64 = 0
                    for vault in status.vaults {
                        remaining = remaining.saturatingAdding(max(0, vault.revision.saturatingSubtracting(after[vault.vaultId] ?? cursors[vault.vaultId] ?? 0)))
                    }
                    total = report.pulled - startedAt + Int(min(remaining, Int64(Int32.max)))
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
        // A vault refused this round keeps its queued changes queued, for a round that verifies it.
        let refused = Set(report.refusedVaults.map(\.vaultId))
        for vaultId in refused { deferred.formUnion(try cache.pending(vaultId: vaultId).map(\.itemId)) }
        var staleAnswers: [String: Int] = [:]
        while true {
            let ready = try cache.readyChanges(limit: configuration.pushBatch, excluding: deferred)
            if ready.isEmpty { return wrote }
            // Each change is sealed now for the version it will get (its base + 1), under the vault's
            // current key: only now is the base known (an earlier change of the same item moves it
            // when applied), and what was queued before a rotation never goes out under the old key.
            var sent: [String] = []
            for change in ready { sent.append(try await sealedForPush(change)) }
            let answer = try await transport.push(PushRequest(changes: zip(ready, sent).map { change, data in
                PushChange(vaultId: change.vaultId, itemId: change.itemId, baseVersion: change.baseVersion ?? 0, encryptedData: data, deleted: change.deleted ? true : nil)
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
                for (change, (result, data)) in zip(ready, zip(answer.results, sent)) {
                    switch result.status {
                    case .applied:
                        guard let version = result.version, let revision = result.revision else {
                            throw CofferClientError.invalidResponse("an applied change without its version")
                        }
                        // The data was sealed for base + 1; any other version would not open.
                        let expected = try ServerNumbers.version(after: change.baseVersion ?? 0, of: change.itemId)
                        guard version == expected else {
                            throw CofferClientError.invalidResponse("the push applied item \(change.itemId) as version \(version), not \(expected)")
                        }
                        let now = Timestamp.now
                        let previous = try cache.item(id: change.itemId)
                        try cache.completed(change, newVersion: version)
                        try cache.saveItem(Item(
                            id: change.itemId, vaultId: change.vaultId, encryptedData: data, version: version, revision: revision,
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
                try await refreshVault(vaultId)  // the next push seals them under the key it reads
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

    /// What goes out for a queued change: its content, or for a deletion a tombstone (when and
    /// by which device), sealed under the current key for the version the change will get.
    private func sealedForPush(_ change: PendingChange) async throws -> String {
        let version = try ServerNumbers.version(after: change.baseVersion ?? 0, of: change.itemId)
        guard let data = change.encryptedData else {
            let tombstone = ItemTombstone(modifiedAt: change.queuedAt, modifiedBy: deviceId)
            return try VaultCrypto.sealTombstone(tombstone, itemId: change.itemId, vaultId: change.vaultId, version: version, key: try await vault(change.vaultId).key)
        }
        return try await sealedForPush(data, itemId: change.itemId, vaultId: change.vaultId, version: version)
    }

    /// Settles one conflict by policy. Every queued change of the item is settled together (the
    /// last one is this device's side; earlier ones are kept in the record). Returns false when
    /// the server moved on while settling; the queue is then left as it was for the next round.
    private func settle(_ change: PendingChange, current: Item, base: ItemVersion?, policy override: ConflictPolicy?, report: inout SyncReport) async throws -> Bool {
        let queued = try cache.pending(itemId: change.itemId)
        guard let last = queued.last else { return true }
        let vaultId = change.vaultId
        // The server's side is checked like a pulled item: bound to its version, not below what
        // this device holds, a deletion only with its tombstone.
        try checkConflictAnswer(current, itemId: change.itemId, vaultId: vaultId)
        let held = try cache.item(id: current.id)
        if current.deleted { try await verifyDeletion(current, held: held) }
        if let base, base.version != change.baseVersion {
            throw CofferClientError.invalidResponse("the conflict answer for item \(current.id) gave version \(base.version) as the base, not \(change.baseVersion ?? 0)")
        }
        let local = try await open(optional: last.encryptedData, itemId: change.itemId, vaultId: vaultId, binding: .queued)
        let server = try await open(optional: current.deleted ? nil : current.encryptedData, itemId: current.id, vaultId: vaultId, binding: .version(current.version))
        let baseDocument = try await open(
            optional: base.flatMap { $0.deleted ? nil : $0.encryptedData }, itemId: current.id, vaultId: vaultId, binding: .version(base?.version ?? 0)
        )
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
                let sealed = try VaultCrypto.sealItem(document, itemId: current.id, vaultId: vaultId, version: try ServerNumbers.version(after: current.version, of: current.id), key: try await vault(vaultId).key)
                settled = try await transport.resolve(ResolveRequest(itemId: current.id, baseVersion: current.version, encryptedData: sealed, strategy: "client"))
                try checkResolved(settled, sent: sealed, basedOn: current)
                label = settledBy == .merge ? "merged" : "pushed-local"
            case .keepServer where local == nil && server == nil:
                label = "both-deleted"  // nothing to settle: both sides deleted it
            case .keepServer:
                settled = try await transport.resolve(ResolveRequest(itemId: current.id, baseVersion: current.version, strategy: "server"))
                try checkResolved(settled, sent: nil, basedOn: current)
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

    /// Refuses a conflict answer that offers an item below the version this device holds (a
    /// rollback or a replay) or for another item or vault.
    private func checkConflictAnswer(_ current: Item, itemId: String, vaultId: String) throws {
        guard current.id == itemId, current.vaultId == vaultId else {
            throw CofferClientError.invalidResponse("the conflict answer for item \(itemId) is about item \(current.id) of vault \(current.vaultId)")
        }
        if let held = try cache.item(id: itemId), current.version < held.version {
            throw SyncError.itemRollback(itemId: itemId, vaultId: vaultId, seen: held.version, answered: current.version)
        }
    }

    /// Checks what a resolve answered before it is stored: the item this device sent for the
    /// version it was sealed for (`sent`), or the server's kept as it was (`sent` nil).
    func checkResolved(_ settled: Item, sent: String?, deleted: Bool = false, basedOn current: Item) throws {
        let expected = sent == nil ? current.version : try ServerNumbers.version(after: current.version, of: current.id)
        guard settled.id == current.id, settled.vaultId == current.vaultId, settled.version == expected,
              settled.encryptedData == (sent ?? current.encryptedData), settled.deleted == (sent == nil ? current.deleted : deleted)
        else {
            throw CofferClientError.invalidResponse("the server answered the settlement of item \(current.id) with other content or version \(settled.version), not \(expected)")
        }
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
            // The local side goes out under the current key (it may predate a rotation), sealed for
            // the version it will get; a deletion as its tombstone.
            let version = try ServerNumbers.version(after: current.version, of: current.id)
            let local = if let data = record.localData {
                try await sealedForPush(data, itemId: record.itemId, vaultId: record.vaultId, version: version)
            } else {
                try VaultCrypto.sealTombstone(
                    ItemTombstone(modifiedAt: configuration.clock(), modifiedBy: deviceId), itemId: record.itemId, vaultId: record.vaultId, version: version,
                    key: try await vault(record.vaultId).key
                )
            }
            let request = switch choice {
            case .local:
                ResolveRequest(itemId: current.id, baseVersion: current.version, encryptedData: local, deleted: record.localData == nil ? true : nil, strategy: "client")
            case .server:
                ResolveRequest(itemId: current.id, baseVersion: current.version, strategy: "server")
            }
            do {
                let answer = try await transport.resolve(request)
                try checkResolved(answer, sent: choice == .local ? local : nil, deleted: record.localData == nil, basedOn: current)
                settled = answer
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
        try await open(optional: record.localData, itemId: record.itemId, vaultId: record.vaultId, binding: .queued)
    }
}
