import CofferProtocol
import CofferServer
import Foundation
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Testing

/// `--database postgres://…` read the way libpq reads it, including a Unix socket directory.
@Suite("PostgreSQL database URLs")
struct PostgresURLTests {
    @Test("host, port, role, password, database and TLS mode come from the URL")
    func tcp() throws {
        let configuration = try PostgresStore.configuration(url: "postgres://alice:p%40ss@db.example:6543/coffer?sslmode=disable")
        #expect(configuration.host == "db.example")
        #expect(configuration.port == 6543)
        #expect(configuration.unixSocketPath == nil)
        #expect(configuration.username == "alice")
        #expect(configuration.password == "p@ss")
        #expect(configuration.database == "coffer")
        let defaults = try PostgresStore.configuration(url: "postgresql://db.example")
        #expect(defaults.port == 5432)
        #expect(defaults.username == "postgres")
        #expect(defaults.password == nil)
        #expect(defaults.database == nil)
        let ipv6 = try PostgresStore.configuration(url: "postgres://coffer@[::1]:5433/vaults")
        #expect(ipv6.host == "::1")
        #expect(ipv6.port == 5433)
    }

    @Test("a socket directory, given as ?host= or percent-encoded as the host, means its .s.PGSQL.<port> file")
    func unixSocket() throws {
        let viaQuery = try PostgresStore.configuration(url: "postgres://coffer@/vaults?host=/var/run/postgresql")
        #expect(viaQuery.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
        #expect(viaQuery.host == nil)
        #expect(viaQuery.username == "coffer")
        #expect(viaQuery.database == "vaults")
        let viaHost = try PostgresStore.configuration(url: "postgres://coffer@%2Ftmp%2Fpg%2F:6000/vaults")
        #expect(viaHost.unixSocketPath == "/tmp/pg/.s.PGSQL.6000")
        let parameters = try PostgresStore.configuration(url: "postgres:///?host=/tmp/pg&port=7000&user=bob&dbname=items&password=x")
        #expect(parameters.unixSocketPath == "/tmp/pg/.s.PGSQL.7000")
        #expect(parameters.username == "bob")
        #expect(parameters.password == "x")
        #expect(parameters.database == "items")
    }

    @Test("bad URLs are refused with a message that says what is wrong")
    func refused() {
        let cases: [(url: String, message: String)] = [
            ("mysql://db.example/coffer", "not a valid postgres://"),
            ("postgres:///coffer", "names no host"),
            ("postgres://db.example/coffer?sslmode=sometimes", "sslmode must be disable, prefer or require"),
            ("postgres://db.example/coffer?connect_timeout=5", "unknown parameter 'connect_timeout'"),
            ("postgres://db.example/coffer?port=99999", "port must be 1–65535"),
            ("postgres:///coffer?host=/tmp/pg&sslmode=require", "Unix socket"),
        ]
        for (url, message) in cases {
            #expect {
                try PostgresStore.configuration(url: url)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    /// scripts/test exports the socket form of its cluster's URL next to the TCP one.
    static let socketURL = ProcessInfo.processInfo.environment["COFFER_TEST_POSTGRES_SOCKET_URL"].flatMap { $0.isEmpty ? nil : $0 }

    @Test("a server reached through the test cluster's Unix socket answers requests", .enabled(if: socketURL != nil))
    func liveSocket() async throws {
        let url = try #require(Self.socketURL)
        #expect(try PostgresStore.configuration(url: url).unixSocketPath != nil)
        try await makeTestApp(.postgres) { $0.database = .postgres(url: url) }.test(.router) { client in
            let health = try await client.get("/health")
            #expect(health.status == .ok)
            #expect(try health.decode(HealthResponse.self).database == "ok")
        }
    }
}
