import Foundation
import PostgresNIO

/// Where a `postgres://` database URL points: the server's address (TCP or Unix socket), the
/// role, the database and the TLS mode. Read the way libpq reads such a URL, so that a URL that
/// works with `psql` works here.
struct PostgresTarget {
    enum Endpoint: Equatable {
        case tcp(host: String, port: Int)
        /// The full path of the socket file (`<directory>/.s.PGSQL.<port>`).
        case socket(path: String)
    }

    enum TLSMode: Equatable { case disable, prefer, require }

    var endpoint: Endpoint
    var username: String
    var password: String?
    var database: String?
    var tls: TLSMode

    /// Accepts `postgres://` and `postgresql://`; the host may be a socket directory, given as
    /// `?host=/dir` or percent-encoded in the host's place (`postgres://user@%2Fdir/db`).
    init(url: String) throws(ConfigurationError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
              scheme == "postgres" || scheme == "postgresql"
        else {
            throw ConfigurationError("database URL is not a valid postgres://user:pass@host:port/db URL")
        }
        let query = components.queryItems ?? []
        let known: Set<String> = ["sslmode", "host", "port", "user", "password", "dbname"]
        if let unknown = query.first(where: { !known.contains($0.name) }) {
            throw ConfigurationError("database URL has an unknown parameter '\(unknown.name)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        func parameter(_ name: String) -> String? {
            query.last(where: { $0.name == name })?.value.flatMap { $0.isEmpty ? nil : $0 }
        }

        let portText = parameter("port") ?? components.port.map(String.init) ?? "5432"
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ConfigurationError("database URL port must be 1–65535, not '\(portText)'")
        }

        let host = parameter("host") ?? components.percentEncodedHost.flatMap { $0.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 }
        guard let host else {
            throw ConfigurationError("database URL names no host: give one (postgres://user@host/db) or a socket directory (?host=/var/run/postgresql)")
        }
        if host.hasPrefix("["), host.hasSuffix("]") {
            endpoint = .tcp(host: String(host.dropFirst().dropLast()), port: port)  // an IPv6 literal, [::1]
        } else if host.hasPrefix("/") {
            let directory = host.hasSuffix("/") ? String(host.dropLast()) : host
            endpoint = .socket(path: "\(directory)/.s.PGSQL.\(port)")
        } else {
            endpoint = .tcp(host: host, port: port)
        }

        username = parameter("user") ?? components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = parameter("password") ?? components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = parameter("dbname") ?? (path.isEmpty ? nil : path)

        switch parameter("sslmode") ?? "prefer" {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer
        case "require", "verify-ca", "verify-full": tls = .require
        default: throw ConfigurationError("database URL sslmode must be disable, prefer or require")
        }
        if case .socket = endpoint, tls == .require {
            throw ConfigurationError("database URL asks for sslmode=require over a Unix socket, which carries no TLS; use a host name, or sslmode=disable")
        }
    }

    /// The connection pool's configuration.
    var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch endpoint {
        case .socket(let path):
            configuration = PostgresClient.Configuration(unixSocketPath: path, username: username, password: password, database: database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS = switch self.tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
            configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.minimumConnections = 1
        return configuration
    }

    /// A single connection's configuration (LISTEN needs one outside the pool that stays open).
    func connectionConfiguration() throws(ConfigurationError) -> PostgresConnection.Configuration {
        switch endpoint {
        case .socket(let path):
            return PostgresConnection.Configuration(unixSocketPath: path, username: username, password: password, database: database)
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            do {
                switch self.tls {
                case .disable: tls = .disable
                case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
                case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            } catch {
                throw ConfigurationError("cannot set up TLS for the database: \(error)")
            }
            return PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
    }
}
