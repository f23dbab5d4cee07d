import CofferKit
import CofferProtocol
import Foundation
import Testing

/// `coffer account|devices|audit` against a live `coffer serve`, as a person would use them.
@Suite("Account end to end", .serialized)
struct AccountEndToEndTests {
    @Test("register, logout, login, whoami, devices, revoke, audit, password")
    func accountLifecycle() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let laptop = directory.appendingPathComponent("laptop").path
        let phone = directory.appendingPathComponent("phone").path
        let email = "cli-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        func coffer(_ arguments: [String], config: String, stdin: String? = nil) async throws -> CommandResult {
            try await run(Paths.coffer, arguments + ["--server", server.url, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
        }

        let register = try await coffer(["account", "register", "--email", email, "--password-stdin", "--device-name", "laptop"], config: laptop, stdin: "first password\n")
        #expect(register.status == 0, "\(register.stderr)")
        #expect(register.stdoutText == "Created account \(email) and logged in on this device.\n")
        let session = try #require(FileManager.default.attributesOfItem(atPath: laptop + "/session.json")[.posixPermissions] as? Int)
        #expect(session == 0o600)

        let whoami = try await coffer(["account", "whoami", "--json"], config: laptop)
        let me = try JSONDecoder().decode(MeResponse.self, from: whoami.stdout)
        #expect(me.user.email == email)

        let logout = try await coffer(["account", "logout"], config: laptop)
        #expect(logout.stdoutText == "Logged out \(email).\n")
        let afterLogout = try await coffer(["account", "whoami"], config: laptop)
        #expect(afterLogout.status == 1)
        #expect(afterLogout.stderr == "error: not logged in: run `coffer account login` first\n")

        let wrong = try await coffer(["account", "login", "--email", email, "--password-stdin"], config: laptop, stdin: "not it\n")
        #expect(wrong.status == 1)
        #expect(wrong.stderr == "error: wrong email or password\n")
        let login = try await coffer(["account", "login", "--email", email, "--password-stdin", "--json"], config: laptop, stdin: "first password\n")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(try JSONSerialization.jsonObject(with: login.stdout) as? [String: String] != nil)

        let phoneLogin = try await coffer(["account", "login", "--email", email, "--password-stdin", "--device-name", "phone"], config: phone, stdin: "first password\n")
        #expect(phoneLogin.status == 0, "\(phoneLogin.stderr)")
        let devices = try JSONDecoder().decode(DevicesResponse.self, from: try await coffer(["devices", "list", "--json"], config: laptop).stdout)
        #expect(devices.devices.count == 2)
        let phoneDevice = try #require(devices.devices.first { $0.name == "phone" })
        #expect(!phoneDevice.current)
        let table = try await coffer(["devices", "list"], config: laptop)
        #expect(table.stdoutText.contains("phone") && table.stdoutText.contains("* "))

        let revoke = try await coffer(["devices", "revoke", phoneDevice.id], config: laptop)
        #expect(revoke.stdoutText == "Revoked device \(phoneDevice.id).\n")
        let revokedPhone = try await coffer(["account", "whoami"], config: phone)
        #expect(revokedPhone.status == 1)
        #expect(revokedPhone.stderr.contains("session has ended"))

        let password = try await coffer(["account", "password", "--password-stdin"], config: laptop, stdin: "first password\nsecond password\n")
        #expect(password.status == 0, "\(password.stderr)")
        #expect(password.stdoutText.contains("Password changed"))
        let oldPassword = try await coffer(["account", "login", "--email", email, "--password-stdin"], config: phone, stdin: "first password\n")
        #expect(oldPassword.status == 1)
        let newPassword = try await coffer(["account", "login", "--email", email, "--password-stdin"], config: phone, stdin: "second password\n")
        #expect(newPassword.status == 0, "\(newPassword.stderr)")

        let audit = try JSONDecoder().decode(AuditResponse.self, from: try await coffer(["audit", "--json"], config: laptop).stdout)
        #expect(audit.events.map(\.type) == [
            "login_succeeded", "login_failed", "password_changed", "device_revoked", "login_succeeded",
            "login_succeeded", "login_failed", "logout", "register",
        ])
        let auditText = try await coffer(["audit", "--limit", "2"], config: laptop)
        #expect(auditText.stdoutText.contains("More: coffer audit --before"))
    }
}
