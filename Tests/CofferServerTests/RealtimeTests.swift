import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// `/ws` on a live server (SPEC.md §9), on SQLite and PostgreSQL.
@Suite("Real-time channel")
struct RealtimeTests {
    /// A socket of `user`'s device, authenticated.
    static func connect(_ base: String, _ user: SignedInUser) async throws -> (RealtimeConnection, Inbox) {
        let connection = try await RealtimeConnection.open(server: base)
        let inbox = Inbox(connection)
        try await connection.send(.auth(token: user.token, deviceId: user.account.deviceId))
        let answer = await inbox.next()
        #expect(answer?.type == RealtimeType.authSuccess && answer?.userId == user.session.user.id)
        return (connection, inbox)
    }

    /// Proves that nothing is queued for a socket: its PING is answered before anything else.
    static func expectNothingPending(_ connection: RealtimeConnection, _ inbox: Inbox, _ comment: Comment) async throws {
        try await connection.send(.ping())
        let next = await inbox.next()
        #expect(next?.type == RealtimeType.pong, comment)
    }

    /// A second device (login) of the same account.
    static func secondDevice(_ client: some TestClientProtocol, _ user: SignedInUser) async throws -> SignedInUser {
        var account = user.account
        account.deviceId = UUID().uuidString.lowercased()
        let response = try await account.login(client, deviceId: account.deviceId)
        return SignedInUser(account: account, session: try response.decode(SessionResponse.self))
    }

    @Test("AUTH: success, bad token, wrong device, timeout; PING/PONG; malformed and unknown messages", arguments: TestBackend.available)
    func authAndControlMessages(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.realtimeAuthTimeout = 0.3 }).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)

            let (socket, inbox) = try await Self.connect(base, alice)
            try await socket.send(.ping())
            let pong = await inbox.next()
            #expect(pong?.type == RealtimeType.pong && pong?.timestamp != nil)
            try await socket.sendRaw("not json")
            #expect(await inbox.next()?.code == "bad_message")
            try await socket.send(RealtimeClientMessage(type: "DANCE"))
            #expect(await inbox.next()?.code == "unknown_type")
            // AUTH again on the open socket (a renewal, here with the same token) is answered, not refused.
            try await socket.send(.auth(token: alice.token, deviceId: alice.account.deviceId))
            #expect(await inbox.next()?.type == RealtimeType.authSuccess)
            await socket.close()

            // A bad token: AUTH_FAILED, then closed with 1008.
            let forged = try await RealtimeConnection.open(server: base)
            let forgedInbox = Inbox(forged)
            try await forged.send(.auth(token: "not.a.token", deviceId: alice.account.deviceId))
            let failed = await forgedInbox.next()
            #expect(failed?.type == RealtimeType.authFailed && failed?.code == "unauthorized")
            #expect(await forgedInbox.closed())
            #expect(forged.closeCode == 1008)

            // A token presented for another device.
            let wrongDevice = try await RealtimeConnection.open(server: base)
            let wrongInbox = Inbox(wrongDevice)
            try await wrongDevice.send(.auth(token: alice.token, deviceId: UUID().uuidString.lowercased()))
            #expect(await wrongInbox.next()?.type == RealtimeType.authFailed)
            #expect(await wrongInbox.closed())

            // Anything before AUTH.
            let early = try await RealtimeConnection.open(server: base)
            let earlyInbox = Inbox(early)
            try await early.send(.ping())
            #expect(await earlyInbox.next()?.code == "auth_required")
            #expect(await earlyInbox.closed())

            // Silence: closed once the AUTH time (0.3 s here) is over.
            let silent = try await RealtimeConnection.open(server: base)
            let silentInbox = Inbox(silent)
            let started = ContinuousClock.now
            let timeout = await silentInbox.next()
            #expect(timeout?.type == RealtimeType.authFailed && timeout?.code == "auth_timeout")
            #expect(await silentInbox.closed())
            #expect(ContinuousClock.now - started < .seconds(3) && silent.closeCode == 1008)
        }
    }

    @Test("ITEM_UPDATED reaches other devices of members only; pushes and SYNC_REQUEST over the socket", arguments: TestBackend.available)
    func itemsFlowToMembersOnly(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)
            let alicePhone = try await Self.secondDevice(client, alice)
            let bob = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let bobsVault = try await client.createVault(bob)
            let (laptop, laptopInbox) = try await Self.connect(base, alice)
            let (phone, phoneInbox) = try await Self.connect(base, alicePhone)
            let (bobSocket, bobInbox) = try await Self.connect(base, bob)

            // A push over the socket: PUSH_RESULT to the sender, ITEM_UPDATED to the other device.
            let id = UUID().uuidString.lowercased()
            let data = try envelope()
            try await laptop.send(RealtimeClientMessage(type: RealtimeType.itemUpdated, vaultId: vault.id, item: RealtimeItemChange(id: id, baseVersion: 0, encryptedData: data)))
            let result = await laptopInbox.next()
            #expect(result?.type == RealtimeType.pushResult && result?.result?.status == .applied && result?.result?.version == 1)
            let event = await phoneInbox.next()
            #expect(event?.type == RealtimeType.itemUpdated && event?.vaultId == vault.id && event?.item?.id == id && event?.item?.encryptedData == data)
            #expect(event?.item?.deviceId == alice.account.deviceId)
            try await Self.expectNothingPending(laptop, laptopInbox, "the sending device gets no echo")
            try await Self.expectNothingPending(bobSocket, bobInbox, "a non-member hears nothing")

            // A stale base version: PUSH_RESULT conflict with the current item; nobody is told.
            try await phone.send(RealtimeClientMessage(type: RealtimeType.itemUpdated, vaultId: vault.id, item: RealtimeItemChange(id: id, baseVersion: 0, encryptedData: try envelope())))
            let conflict = await phoneInbox.next()
            #expect(conflict?.type == RealtimeType.pushResult && conflict?.result?.status == .conflict && conflict?.result?.current?.version == 1)
            try await Self.expectNothingPending(laptop, laptopInbox, "a conflict changes nothing")

            // Writing into someone else's vault over the socket is refused like over HTTP.
            try await bobSocket.send(RealtimeClientMessage(type: RealtimeType.itemUpdated, vaultId: vault.id, item: RealtimeItemChange(id: UUID().uuidString, baseVersion: 0, encryptedData: try envelope())))
            let refused = await bobInbox.next()
            #expect(refused?.type == RealtimeType.pushResult && refused?.result?.status == .rejected && refused?.result?.error?.code == "not_found")

            // An HTTP push from the phone reaches the laptop; a delete too.
            let pushed = try await client.push(alicePhone, [PushChange(vaultId: vault.id, itemId: id, baseVersion: 1, encryptedData: try envelope())])
            #expect(pushed.first?.status == .applied)
            let fromHTTP = await laptopInbox.next()
            #expect(fromHTTP?.type == RealtimeType.itemUpdated && fromHTTP?.item?.version == 2)
            let deleted = try await client.authorized(.delete, "/api/items/\(id)", token: alicePhone.token, json: DeleteItemRequest(baseVersion: 2))
            #expect(deleted.status == .ok)
            let tombstone = await laptopInbox.next()
            #expect(tombstone?.item?.deleted == true && tombstone?.item?.version == 3)
            try await Self.expectNothingPending(bobSocket, bobInbox, "still nothing for the non-member")

            // SYNC_REQUEST by cursor and by time; a vault the user cannot read gives ERROR and no data.
            try await laptop.send(.syncRequest(vaultId: vault.id, cursor: 0))
            let page = await laptopInbox.next()
            #expect(page?.type == RealtimeType.syncResponse && page?.updates?.map(\.version) == [3] && page?.cursor == 3 && page?.hasMore == false)
            try await laptop.send(RealtimeClientMessage(type: RealtimeType.syncRequest, vaultId: vault.id, lastSyncTimestamp: Timestamp(milliseconds: 0)))
            #expect(await laptopInbox.next()?.updates?.count == 1)
            try await laptop.send(.syncRequest(vaultId: bobsVault.id, cursor: 0))
            let denied = await laptopInbox.next()
            #expect(denied?.type == RealtimeType.error && denied?.code == "not_found" && denied?.updates == nil)

            // A metadata change: VAULT_UPDATED with the new revision to the vault's devices.
            let renamed = try await client.authorized(.put, "/api/vaults/\(vault.id)", token: alicePhone.token, json: UpdateVaultRequest(encryptedMetadata: try envelope()))
            let summary = try renamed.decode(VaultSummary.self)
            let updated = await laptopInbox.next()
            #expect(updated?.type == RealtimeType.vaultUpdated && updated?.vaultId == vault.id && updated?.revision == summary.revision)
            try await Self.expectNothingPending(bobSocket, bobInbox, "not to a non-member either")
            await laptop.close()
            await phone.close()
            await bobSocket.close()
        }
    }

    @Test("a revoked device's socket closes within 1 s; a removed member gets ACCESS_REVOKED and nothing after", arguments: TestBackend.available)
    func revocationEndsTheFlow(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)
            let alicePhone = try await Self.secondDevice(client, alice)
            let carol = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let share = try await client.authorized(
                .post, "/api/vaults/\(vault.id)/share", token: alice.token,
                json: ShareVaultRequest(userId: carol.session.user.id, role: .read, wrappedKey: Base64URL.encode((0..<81).map { _ in UInt8.random(in: 0...255) }))
            ).decode(Share.self)
            let (phone, phoneInbox) = try await Self.connect(base, alicePhone)
            let (carolSocket, carolInbox) = try await Self.connect(base, carol)

            _ = try await client.createItem(alice, vault: vault.id)
            #expect(await carolInbox.next()?.type == RealtimeType.itemUpdated)
            #expect(await phoneInbox.next()?.type == RealtimeType.itemUpdated)

            // Removing Carol: ACCESS_REVOKED at once, then no more events for that vault.
            let removed = try await client.authorized(.delete, "/api/shares/\(share.id)", token: alice.token)
            #expect(removed.status == .ok)
            let revoked = await carolInbox.next(within: .seconds(1))
            #expect(revoked?.type == RealtimeType.accessRevoked && revoked?.vaultId == vault.id)
            _ = try await client.createItem(alice, vault: vault.id)
            #expect(await phoneInbox.next()?.type == RealtimeType.itemUpdated)
            try await Self.expectNothingPending(carolSocket, carolInbox, "a removed member hears nothing more")

            // Revoking the phone: SESSION_REVOKED and the socket closed within 1 s.
            let started = ContinuousClock.now
            let revoke = try await client.authorized(.delete, "/api/devices/\(alicePhone.account.deviceId)", token: alice.token)
            #expect(revoke.status == .ok)
            let ended = await phoneInbox.next(within: .seconds(1))
            #expect(ended?.type == RealtimeType.sessionRevoked)
            #expect(await phoneInbox.closed(within: .seconds(1)))
            #expect(ContinuousClock.now - started < .seconds(1))
            #expect(phone.closeCode == 1008)
            await carolSocket.close()
        }
    }

    @Test("a socket ends with SESSION_REVOKED when its access token expires", arguments: TestBackend.available)
    func expiredTokenEndsTheSocket(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.accessTokenLifetime = 1 }).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)
            let (_, inbox) = try await Self.connect(base, alice)
            let ended = await inbox.next(within: .seconds(3))
            #expect(ended?.type == RealtimeType.sessionRevoked && ended?.code == "token_expired")
            #expect(await inbox.closed(within: .seconds(2)))
        }
    }

    @Test("AUTH with a renewed token of the same session moves the socket's expiry; another session's token ends the socket", arguments: TestBackend.available)
    func renewedAuthKeepsTheSocket(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock, { $0.accessTokenLifetime = 2 }).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)
            let connectedAt = ContinuousClock.now
            let (socket, inbox) = try await Self.connect(base, alice)

            // A second later (on the server's clock) the device refreshes: its new token expires a second after the first.
            clock.advance(seconds: 1)
            let refreshed = try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: alice.session.refreshToken))
            let tokens = try refreshed.decode(TokenResponse.self)
            try await socket.send(.auth(token: tokens.accessToken, deviceId: alice.account.deviceId))
            let renewed = await inbox.next()
            #expect(renewed?.type == RealtimeType.authSuccess && renewed?.userId == alice.session.user.id)

            // The socket outlives its first token and ends with the renewed one.
            let ended = await inbox.next(within: .seconds(6))
            let lived = ContinuousClock.now - connectedAt
            #expect(ended?.type == RealtimeType.sessionRevoked && ended?.code == "token_expired")
            #expect(lived >= .milliseconds(2900), "the socket ended after \(lived), before its renewed token expired")
            #expect(await inbox.closed(within: .seconds(2)))

            // A valid token of another session (another device of the same account) is not this socket's: AUTH_FAILED, closed.
            let phone = try await Self.secondDevice(client, alice)
            var renewedSession = alice.session
            renewedSession.accessToken = tokens.accessToken
            let (other, otherInbox) = try await Self.connect(base, SignedInUser(account: alice.account, session: renewedSession))
            try await other.send(.auth(token: phone.token, deviceId: alice.account.deviceId))
            let refused = await otherInbox.next()
            #expect(refused?.type == RealtimeType.authFailed && refused?.code == "unauthorized")
            #expect(await otherInbox.closed(within: .seconds(2)))
            #expect(other.closeCode == 1008)
        }
    }

    @Test("a socket that never reads is cut off before its queue passes the bound", arguments: TestBackend.available)
    func slowReaderIsDisconnected(_ backend: TestBackend) async throws {
        let probe = RealtimeProbe()
        let limit = 2 << 20
        try await makeTestApp(backend, probe: probe, { $0.realtimeQueueLimit = limit }).test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let alice = try await SignedInUser.register(client)
            let alicePhone = try await Self.secondDevice(client, alice)
            let vault = try await client.createVault(alice)
            // Reads AUTH_SUCCESS, then nothing more.
            let stuck = try await RealtimeConnection.open(server: base, readLimit: 1)
            let stuckInbox = Inbox(stuck)
            try await stuck.send(.auth(token: alicePhone.token, deviceId: alicePhone.account.deviceId))
            #expect(await stuckInbox.next()?.type == RealtimeType.authSuccess)
            #expect(probe.connections == 1)

            // A burst of ~0.5 MB items until the socket is cut off: the kernel's socket buffers
            // (up to 32 MiB here) fill first, then the server's queue passes its 2 MiB bound.
            // Sealed zeros: large, quick to make in a debug build, and still a well-formed envelope.
            let bulk = try Envelope.seal(Data(count: 375_000), key: SymmetricKey(size: .bits256), context: EnvelopeContext(purpose: "test", owner: "test"))
            var pushed = 0
            while pushed < 400 && probe.connections > 0 {
                var changes: [PushChange] = []
                for _ in 0..<20 {
                    changes.append(PushChange(vaultId: vault.id, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: bulk))
                }
                _ = try await client.push(alice, changes)
                pushed += changes.count
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while probe.connections > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(probe.connections == 0, "pushed \(pushed) items")
            #expect(probe.slowDisconnects == 1)
            // The backlog never passed the bound by more than the one message that overflowed it.
            #expect(probe.peakQueuedBytes <= limit + 600_000, "peak \(probe.peakQueuedBytes) bytes")
            await stuck.close()
        }
    }

    @Test("two instances on one PostgreSQL: a change on A reaches a device on B; a listener outage loses nothing")
    func acrossInstances() async throws {
        guard TestBackend.available.contains(.postgres) else { return }
        let probeB = RealtimeProbe()
        try await makeTestApp(.postgres).test(.live) { clientA in
            try await makeTestApp(.postgres, probe: probeB).test(.live) { clientB in
                let baseB = "http://127.0.0.1:\(try #require(clientB.port))"
                await probeB.waitForListener(connections: 1)
                let alice = try await SignedInUser.register(clientA)
                let alicePhone = try await Self.secondDevice(clientA, alice)
                let vault = try await clientA.createVault(alice)
                let (phone, phoneInbox) = try await Self.connect(baseB, alicePhone)

                let started = ContinuousClock.now
                let item = try await clientA.createItem(alice, vault: vault.id)
                let event = await phoneInbox.next(within: .seconds(1))
                #expect(event?.type == RealtimeType.itemUpdated && event?.item?.id == item.id)
                #expect(ContinuousClock.now - started < .seconds(1))

                // B's listener goes down; A's changes meanwhile are announced to nobody on B…
                await probeB.dropListener(holdDown: true)
                let missed = try await clientA.push(alice, [
                    PushChange(vaultId: vault.id, itemId: item.id, baseVersion: 1, encryptedData: try envelope()),
                    PushChange(vaultId: vault.id, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: try envelope()),
                ])
                #expect(missed.allSatisfy { $0.status == .applied })
                try await Self.expectNothingPending(phone, phoneInbox, "B cannot know yet")
                // …and once it reconnects, its catch-up delivers both.
                probeB.resumeListener()
                await probeB.waitForListener(connections: 2)
                let first = await phoneInbox.next(within: .seconds(2))
                let second = await phoneInbox.next(within: .seconds(2))
                #expect(Set([first?.item?.revision, second?.item?.revision]) == [2, 3])
                await phone.close()
            }
        }
    }
}
