import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer devices …`.
    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the account's devices or revoke one.",
            subcommands: [List.self, Revoke.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List devices, the current one marked.")
            @OptionGroup var options: AccountOptions

            func run() async throws {
                try await runClientCommand {
                    let devices = try await options.makeClient().devices()
                    var lines = ["  ID                                    NAME                 PLATFORM     LAST SEEN                 STATUS"]
                    for device in devices {
                        let marker = device.current ? "*" : " "
                        let status = device.revoked ? "revoked" : "active"
                        lines.append(
                            "\(marker) \(device.id)  \(device.name.padding(toLength: 20, withPad: " ", startingAt: 0)) "
                                + "\(device.platform.padding(toLength: 12, withPad: " ", startingAt: 0)) \(device.lastSeenAt)  \(status)"
                        )
                    }
                    try options.client.emit(DevicesResponse(devices: devices), text: lines.joined(separator: "\n"))
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a device: its sessions end at once.")
            @OptionGroup var options: AccountOptions
            @Argument(help: "The device id (see `coffer devices list`).") var id: String

            func run() async throws {
                try await runClientCommand {
                    try await options.makeClient().revokeDevice(id: id)
                    try options.client.emit(SuccessResponse(), text: "Revoked device \(id).")
                }
            }
        }
    }

    /// `coffer audit`.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the account's security events, newest first.")
        @OptionGroup var options: AccountOptions
        @Option(help: "Events per page (1–500).") var limit = 50
        @Option(help: "Show events older than this event id (from the previous page).") var before: Int64?

        func run() async throws {
            try await runClientCommand {
                let page = try await options.makeClient().audit(limit: limit, before: before)
                var lines = page.events.map { event in
                    "\(event.createdAt)  \(event.type.padding(toLength: 18, withPad: " ", startingAt: 0)) device \(event.deviceId ?? "-")"
                        + (event.detail.map { "  (\($0))" } ?? "")
                }
                if lines.isEmpty { lines = ["No events."] }
                if let next = page.nextCursor { lines.append("More: coffer audit --before \(next)") }
                try options.client.emit(page, text: lines.joined(separator: "\n"))
            }
        }
    }
}
