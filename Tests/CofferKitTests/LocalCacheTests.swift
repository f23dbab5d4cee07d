@testable import CofferKit
import CofferProtocol
import Foundation
import Testing

/// The offline queue's ordering rules, without a server.
@Suite("Local cache")
struct LocalCacheTests {
    static func cache() throws -> LocalCache {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return try LocalCache(path: directory.appendingPathComponent("cache.sqlite").path)
    }

    @Test("Queued changes of one item go out one at a time, each based on the version the previous one got")
    func chainedChanges() throws {
        let cache = try Self.cache()
        try cache.enqueue(itemId: "i1", vaultId: "v", serverVersion: 0, encryptedData: "create", at: Timestamp(milliseconds: 1))
        try cache.enqueue(itemId: "i2", vaultId: "v", serverVersion: 4, encryptedData: "edit other", at: Timestamp(milliseconds: 2))
        try cache.enqueue(itemId: "i1", vaultId: "v", serverVersion: 0, encryptedData: "edit", at: Timestamp(milliseconds: 3))
        try cache.enqueue(itemId: "i1", vaultId: "v", serverVersion: 0, encryptedData: nil, at: Timestamp(milliseconds: 4))
        #expect(try cache.pendingCount() == 4)

        // Only the head of each item is ready, in queue order.
        var ready = try cache.readyChanges(limit: 10, excluding: [])
        #expect(ready.map(\.itemId) == ["i1", "i2"])
        #expect(ready.map(\.baseVersion) == [0, 4])
        #expect(try cache.readyChanges(limit: 10, excluding: ["i1"]).map(\.itemId) == ["i2"])

        // Applying the create (version 1) makes the edit ready, based on version 1.
        try cache.completed(ready[0], newVersion: 1)
        ready = try cache.readyChanges(limit: 10, excluding: [])
        #expect(ready.map(\.itemId) == ["i2", "i1"])
        #expect(ready.first { $0.itemId == "i1" }?.baseVersion == 1)
        #expect(ready.first { $0.itemId == "i1" }?.encryptedData == "edit")
        try cache.completed(ready.first { $0.itemId == "i1" }!, newVersion: 2)
        let delete = try #require(try cache.readyChanges(limit: 10, excluding: []).first { $0.itemId == "i1" })
        #expect(delete.deleted && delete.baseVersion == 2)
    }

    @Test("The queue, cursors and conflicts survive reopening the file")
    func survivesReopen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("cache.sqlite").path
        do {
            let cache = try LocalCache(path: path)
            try cache.enqueue(itemId: "i1", vaultId: "v", serverVersion: 3, encryptedData: "edit", at: .now)
            try cache.recordConflict(ConflictRecord(
                id: 0, itemId: "i1", vaultId: "v", localData: "mine", earlier: ["older"], serverVersion: 3, baseVersion: 2,
                policy: "manual", outcome: "manual", state: .open, detail: nil, createdAt: .now, resolvedAt: nil
            ))
        }
        let reopened = try LocalCache(path: path)
        #expect(try reopened.pendingCount() == 1 && reopened.pending(itemId: "i1").map(\.encryptedData) == ["edit"])
        let conflict = try #require(try reopened.conflicts(state: .open).first)
        #expect(conflict.localData == "mine" && conflict.earlier == ["older"])
        try reopened.settleConflict(id: conflict.id, outcome: "user-kept-server", at: .now)
        #expect(try reopened.openConflictCount() == 0)
    }

    @Test("A conflict keeps both sides, the base and the merge summary; a cache file from before they were kept still opens, its records without them")
    func conflictSidesAndOldFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("cache.sqlite").path
        do {
            // The first version of the schema, with one conflict recorded in it.
            let old = try LocalDatabase(path: path)
            try old.execute("""
                CREATE TABLE conflicts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, vault_id TEXT NOT NULL, local_data TEXT,
                    earlier TEXT NOT NULL, server_version INTEGER NOT NULL, base_version INTEGER NOT NULL, policy TEXT NOT NULL,
                    outcome TEXT NOT NULL, state TEXT NOT NULL, detail TEXT, created_at INTEGER NOT NULL, resolved_at INTEGER);
                INSERT INTO conflicts (item_id, vault_id, local_data, earlier, server_version, base_version, policy, outcome, state, created_at)
                    VALUES ('i0', 'v', 'old mine', '[]', 2, 1, 'merge', 'merged', 'resolved', 1);
                PRAGMA user_version = 1;
                """)
        }
        let cache = try LocalCache(path: path)
        let old = try #require(try cache.conflicts().first)
        #expect(old.localData == "old mine" && old.serverData == nil && old.baseData == nil && old.merge == nil && !old.hasServerSide)
        let summary = MergeSummary(fromLocal: ["url"], fromServer: ["notes"], contested: ["username"], contestedWinner: .local)
        try cache.recordConflict(ConflictRecord(
            id: 0, itemId: "i1", vaultId: "v", localData: "mine", earlier: [], serverVersion: 2, baseVersion: 1, policy: "merge",
            outcome: "merged", state: .resolved, detail: nil, createdAt: .now, resolvedAt: .now,
            serverData: "theirs", serverDeleted: false, serverDeviceId: "device-1", baseData: "base", merge: summary
        ))
        try cache.recordConflict(ConflictRecord(
            id: 0, itemId: "i2", vaultId: "v", localData: "mine", earlier: [], serverVersion: 4, baseVersion: 3, policy: "merge",
            outcome: "pushed-local", state: .resolved, detail: nil, createdAt: .now, resolvedAt: .now, serverDeleted: true
        ))
        // Reopened (already upgraded: nothing to migrate again).
        let records = try LocalCache(path: path).conflicts()
        #expect(records.count == 3)
        #expect(records[1].serverData == "theirs" && records[1].serverDeleted == false && records[1].serverDeviceId == "device-1")
        #expect(records[1].baseData == "base" && records[1].merge == summary && records[1].hasServerSide)
        #expect(records[2].serverData == nil && records[2].serverDeleted == true && records[2].hasServerSide && records[2].merge == nil)
    }
}
