import CofferKit
import CofferProtocol
import Foundation

/// One device of a test account: a logged-in client with its own configuration directory.
struct TestDevice: Sendable {
    let client: CofferClient
    let deviceId: String
    let directory: URL

    /// The device's sync engine, its cache in the device's directory.
    func engine(transport: (any SyncTransport)? = nil, configuration: SyncConfiguration = SyncConfiguration()) async throws -> SyncEngine {
        try await SyncEngine.open(client: client, directory: directory, transport: transport, configuration: configuration)
    }

    /// A new account registered on the first device and logged in on the others.
    static func account(server: String, devices count: Int) async throws -> [TestDevice] {
        let email = "devices-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        var devices: [TestDevice] = []
        for index in 0..<count {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-device-\(UUID().uuidString)")
            let client = try CofferClient(api: APIClient(baseURL: server), sessionStore: SessionStore(directory: directory))
            let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "device \(index)", platform: "test")
            if index == 0 {
                try await client.register(email: email, password: "device password", device: device, kdf: .browserCompatible)
            } else {
                try await client.login(email: email, password: "device password", device: device, allowPBKDF2: true)
            }
            devices.append(TestDevice(client: client, deviceId: device.id, directory: directory))
        }
        return devices
    }
}
