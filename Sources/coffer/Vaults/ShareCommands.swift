import ArgumentParser
import CofferCrypto
import CofferKit
import CofferProtocol
import Foundation

extension VaultRole: ExpressibleByArgument {}

extension Coffer.Vault {
    /// `coffer vault share VAULT EMAIL --role …`.
    struct Share: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Share a vault: its key is sealed on this device to the recipient's pinned sharing key."
        )
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String
        @Argument(help: "The recipient's account email.") var email: String
        @Option(help: "read (pull only), write (edit items) or admin (also share read/write).") var role: VaultRole = .read
        @Flag(help: "Do not ask to confirm the recipient's fingerprint.") var yes = false
        @Flag(help: "Accept a sharing key that changed since it was pinned (only after verifying it with the recipient).")
        var acceptChangedKey = false

        func run() async throws {
            try await runClientCommand {
                guard role != .owner else { throw CLIError("--role must be read, write or admin") }
                let sharing = try await options.makeSharingClient()
                let target = try await VaultLookup.find(vault, in: sharing.vaults)
                try await Invitations.requireAccepted(target, options)
                let check = try await sharing.lookup(email: email)
                let contact = try check.trusted(acceptChanged: acceptChangedKey)
                switch check {
                case .new:
                    Terminal.note("\(contact.email) is a new contact. Fingerprint of their \(contact.identityKey == nil ? "sharing" : "identity") key:\n  \(contact.fingerprint)\nCompare it with the one `coffer contacts verify` shows on their side.")
                case .pinned(let pinned):
                    Terminal.note("\(contact.email): fingerprint \(pinned.fingerprint) (pinned \(pinned.pinnedAt.iso8601.prefix(10))\(pinned.verified ? ", verified" : "")).")
                case .changed(let pinned, let offered):
                    Terminal.note("WARNING: the key of \(offered.email) changed.\n  pinned: \(pinned.fingerprint)\n  now:    \(offered.fingerprint)")
                }
                if !yes {
                    guard Terminal.confirm("Share \"\(target.metadata.name)\" with \(contact.email) as \(role.rawValue)?") else {
                        throw CLIError("not confirmed; nothing was shared")
                    }
                }
                let share = try await sharing.share(target, with: check, role: role, acceptChangedKey: acceptChangedKey)
                try options.client.emit(
                    ShareRow(share: share, fingerprint: contact.fingerprint),
                    text: "Shared \"\(target.metadata.name)\" with \(contact.email) as \(role.rawValue) (fingerprint \(contact.fingerprint))."
                )
            }
        }
    }

    /// `coffer vault members VAULT`.
    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a vault's members and their roles.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let sharing = try await options.makeSharingClient()
                let target = try await VaultLookup.find(vault, in: sharing.vaults)
                let members = try await sharing.members(vaultId: target.summary.id)
                let ownId = await sharing.vaults.client.session?.userId
                // Memberships are checked against the owner's identity: this device's own, or the owner's pin.
                let ownerId = target.summary.ownerId
                let ownerIdentity = ownerId == ownId
                    ? Base64URL.encode(try await sharing.vaults.client.identityKey().publicKey.rawRepresentation)
                    : try sharing.contacts.contact(userId: ownerId)?.identityKey
                let grants = ownerIdentity.map { SharingTrust.grants(of: members, vaultId: target.summary.id, ownerId: ownerId, ownerIdentity: $0) } ?? [:]
                let rows = members.map { member in
                    // A member whose identity does not certify its sharing key shows as such, not as an error for the whole list.
                    let check = try? sharing.contacts.check(member)
                    let pin: String
                    switch check {
                    case _ where member.userId == ownId: pin = "you"
                    case .pinned(let pinned)?: pin = pinned.verified ? "verified" : "pinned"
                    case .changed?: pin = "CHANGED"
                    case .new?: pin = "not pinned"
                    case nil: pin = "UNCERTIFIED"
                    }
                    let membership: String
                    switch grants[member.userId] {
                    case _ where member.userId == ownerId: membership = "owner"
                    case .verified(let grant)?: membership = grant.role == member.role.rawValue ? "signed" : "ROLE \(grant.role)"
                    case .mismatch?: membership = "MISMATCH"
                    case nil: membership = member.grant == nil ? "unsigned" : (ownerIdentity == nil ? "unchecked" : "unverified")
                    }
                    return MemberRow(
                        userId: member.userId, email: member.email, role: member.role.rawValue, since: member.since.iso8601,
                        fingerprint: check?.offered.fingerprint ?? KeyFingerprint.of(userId: member.userId, publicKey: member.publicKey), pin: pin,
                        membership: membership
                    )
                }
                let text = (["ROLE   EMAIL                               KEY         MEMBERSHIP  FINGERPRINT"]
                    + rows.map {
                        "\($0.role.padding(toLength: 6, withPad: " ", startingAt: 0)) \($0.email.padding(toLength: 35, withPad: " ", startingAt: 0)) "
                            + "\($0.pin.padding(toLength: 11, withPad: " ", startingAt: 0)) \($0.membership.padding(toLength: 11, withPad: " ", startingAt: 0)) \($0.fingerprint)"
                    })
                    .joined(separator: "\n")
                try options.client.emit(rows, text: text)
            }
        }
    }

    /// `coffer vault revoke VAULT EMAIL`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member, then rotate the vault key and re-encrypt the vault so their old key opens nothing new."
        )
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String
        @Argument(help: "The member's account email.") var email: String
        @Flag(help: "Seal the new key to members not pinned on this device as shown, without asking.") var yes = false

        func run() async throws {
            try await runClientCommand {
                let sharing = try await options.makeSharingClient()
                let target = try await VaultLookup.find(vault, in: sharing.vaults)
                let members = try await sharing.members(vaultId: target.summary.id)
                guard let member = members.first(where: { $0.email.lowercased() == email.lowercased() }) else {
                    throw CLIError("\(email) is not a member of \"\(target.metadata.name)\"")
                }
                guard member.role != .owner else { throw CLIError("the owner cannot be removed from a vault") }
                // The new key goes to every member who stays: each one not pinned here is shown
                // with its fingerprint and confirmed first (a key that changed is refused outright).
                let unconfirmed = try await sharing.unconfirmedMembers(vaultId: target.summary.id, removing: [member.userId])
                if !unconfirmed.isEmpty {
                    Terminal.note(
                        "The new key of \"\(target.metadata.name)\" will be sealed to \(unconfirmed.count == 1 ? "a member" : "members") not pinned on this device:\n"
                            + unconfirmed.map { "  \($0.email)  fingerprint \($0.fingerprint)" }.joined(separator: "\n")
                            + "\nCompare with what `coffer contacts verify` shows on their side."
                    )
                    if !yes {
                        guard Terminal.confirm("Seal the new key to \(unconfirmed.count == 1 ? "this member" : "these members")?") else {
                            throw CLIError("not confirmed; nobody was removed and the key was not rotated")
                        }
                    }
                }
                let local = try await LocalSession.open(options)
                let outcome: RevokeOutcome
                do {
                    outcome = try await local.engine.revoke(member: member, vaultId: target.summary.id, confirming: unconfirmed)
                } catch let error as SharingTrustError where error == .notOwner(vaultId: target.summary.id) {
                    throw error  // refused before anything was recorded
                } catch {
                    let reason = (error as? CofferClientError).map(ClientErrorText.describe) ?? "\(error)"
                    throw CLIError("revoking \(member.email) from \"\(target.metadata.name)\" did not finish: \(reason); it is recorded on this device and the next command finishes it (see `coffer status`)")
                }
                // This device's copy reads the new key and the re-encrypted items now, not at the next sync.
                _ = try? await local.engine.sync()
                try options.client.emit(
                    RevokeRow(vaultId: target.summary.id, email: member.email, reencrypted: outcome.reencrypted, keyEpoch: outcome.keyEpoch),
                    text: "Removed \(member.email) from \"\(target.metadata.name)\"; rotated the vault key (key \(outcome.keyEpoch)) and re-encrypted \(outcome.reencrypted) items."
                )
            }
        }
    }

    /// `coffer vault leave VAULT`.
    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Leave a vault someone shared with you.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let sharing = try await options.makeSharingClient()
                let target = try await VaultLookup.find(vault, in: sharing.vaults)
                try await sharing.leave(vaultId: target.summary.id)
                try options.client.emit(SuccessResponse(), text: "Left \"\(target.metadata.name)\".")
            }
        }
    }
}

extension Coffer {
    /// `coffer contacts …`: the sharing keys pinned on this device.
    struct Contacts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sharing keys pinned on first use, with fingerprints to compare out of band.",
            subcommands: [List.self, Verify.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List pinned contacts.")
            @OptionGroup var options: AccountOptions

            func run() async throws {
                try await runClientCommand {
                    let contacts = try await options.makeSharingClient().contacts.all()
                    let text = contacts.isEmpty ? "No pinned contacts yet; sharing a vault pins the recipient's key." :
                        (["EMAIL                               STATUS    FINGERPRINT"]
                            + contacts.map { "\($0.email.padding(toLength: 35, withPad: " ", startingAt: 0)) \(($0.verified ? "verified" : "pinned").padding(toLength: 9, withPad: " ", startingAt: 0)) \($0.fingerprint)" })
                        .joined(separator: "\n")
                    try options.client.emit(contacts, text: text)
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show a contact's (or your own) fingerprint as the server gives it and as pinned; --accept pins it as verified."
            )
            @OptionGroup var options: AccountOptions
            @Argument(help: "The contact's email (your own shows your fingerprint).") var email: String
            @Flag(help: "Pin the key the server gives now and mark it verified (after comparing fingerprints).") var accept = false

            func run() async throws {
                try await runClientCommand {
                    let sharing = try await options.makeSharingClient()
                    let client = sharing.vaults.client
                    if let session = await client.session, AccountEmail.normalized(email) == session.email {
                        // Your own: from the identity key this device opened, not from the server's word.
                        let identity = Base64URL.encode(try await client.identityKey().publicKey.rawRepresentation)
                        let fingerprint = KeyFingerprint.of(userId: session.userId, identityKey: identity)
                        try options.client.emit(
                            VerifyRow(email: session.email, userId: session.userId, fingerprint: fingerprint, status: "yours"),
                            text: "\(session.email) (you)\n  fingerprint: \(fingerprint)"
                        )
                        return
                    }
                    let check = try await sharing.lookup(email: email)
                    let offered = check.offered
                    var status: String
                    switch check {
                    case .new: status = "not pinned yet"
                    case .pinned(let pinned): status = pinned.verified ? "pinned, verified" : "pinned"
                    case .changed(let pinned, _): status = "CHANGED since pinned (pinned fingerprint \(pinned.fingerprint))"
                    }
                    if accept {
                        try sharing.contacts.pin(
                            PinnedContact(email: offered.email, userId: offered.userId, publicKey: offered.publicKey, identityKey: offered.identityKey, verified: true)
                        )
                        status = "pinned, verified"
                    }
                    try options.client.emit(
                        VerifyRow(email: offered.email, userId: offered.userId, fingerprint: offered.fingerprint, status: status),
                        text: "\(offered.email)\n  fingerprint: \(offered.fingerprint)\n  status:      \(status)"
                    )
                }
            }
        }
    }
}

struct ShareRow: Encodable {
    var share: CofferProtocol.Share
    var fingerprint: String
}

struct MemberRow: Encodable {
    var userId: String
    var email: String
    var role: String
    var since: String
    var fingerprint: String
    var pin: String
    /// The member's signed membership as this device can check it: `owner`, `signed` (chains to
    /// the owner's identity), `MISMATCH`, `unsigned` (granted before membership statements),
    /// `unchecked` (the owner is not pinned here) or `unverified` (signed by someone it cannot verify).
    var membership: String
}

struct RevokeRow: Encodable {
    var vaultId: String
    var email: String
    var reencrypted: Int
    var keyEpoch: Int
}

struct VerifyRow: Encodable {
    var email: String
    var userId: String
    var fingerprint: String
    var status: String
}
