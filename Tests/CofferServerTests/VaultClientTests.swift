import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `VaultClient` against a live server: encryption on the device, and tampering detected.
@Suite("Vault client")
struct VaultClientTests {
    @Test("A blob moved to another item or vault fails to decrypt with a tamper error", arguments: TestBackend.available)
    func swappedBlobsAreDetected(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let store = SessionStore(directory: FileManager.default.temporaryDirectory.appendingPathComponent("coffer-vault-\(UUID().uuidString)"))
            let client = try CofferClient(api: APIClient(baseURL: "http://127.0.0.1:\(try #require(server.port))"), sessionStore: store)
            try await client.register(
                email: "vaults-\(UUID().uuidString.prefix(8))@example.test", password: "a strong password",
                device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test"), kdf: .browserCompatible
            )
            let vaults = VaultClient(client: client)
            let personal = try await vaults.createVault(name: "Personal")
            let work = try await vaults.createVault(name: "Work")
            let bank = try await vaults.addItem(ItemDocument(title: "Bank", username: "alice", password: "s3cret"), to: personal)
            let mail = try await vaults.addItem(ItemDocument(title: "Mail", username: "alice@example.test", password: "hunter2"), to: personal)
            let vpn = try await vaults.addItem(ItemDocument(title: "VPN", password: "corp"), to: work)

            // Round trip: what comes back decrypts to what went in.
            let listed = try await vaults.items(in: personal)
            #expect(Set(listed.compactMap(\.document?.title)) == ["Bank", "Mail"])
            #expect(try await vaults.vaults().map(\.metadata.name).sorted() == ["Personal", "Work"])

            // A server that serves item Bank's ciphertext as item Mail's content…
            var moved = mail.item
            moved.encryptedData = bank.item.encryptedData
            #expect(throws: CofferError.self) { try vaults.decrypt(moved, in: personal) }
            // …or Work's VPN item inside Personal…
            var crossVault = vpn.item
            crossVault.vaultId = personal.summary.id
            #expect(throws: CofferError.self) { try vaults.decrypt(crossVault, in: personal) }
            // …or Personal's vault key as Work's, is caught.
            #expect(throws: CofferError.self) {
                try VaultCrypto.openMetadata(personal.summary.encryptedMetadata, vaultId: work.summary.id, key: work.key)
            }

            // The same swap done through the server (a write carrying another item's blob) is caught on read.
            let _: Item = try await client.authorized(
                .PUT, "/api/items/\(mail.item.id)", body: UpdateItemRequest(baseVersion: mail.item.version, encryptedData: bank.item.encryptedData!)
            )
            await #expect {
                _ = try await vaults.item(id: mail.item.id)
            } throws: { error in
                guard case CofferError.tampered(let message) = error else { return false }
                return message.contains(mail.item.id)
            }
        }
    }
}
