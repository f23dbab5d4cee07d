import Foundation

/// Where a `postgres://` database URL points: the server's address (TCP or Unix socket), the
/// role, the database and the TLS mode. Read the way libpq reads such a URL, so that a URL that
/// works with `psql` works here.
struct PostgresTarget: Equatable {
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
            throw ConfigurationError("database URL has an unknown parameter '\(unknown.name)' (known: host, port, user, password, dbname, sslmode)")
        }
        func parameter(_ name: String) -> String? {
            query.last(where: { $0.name == name })?.value.flatMap { $0.isEmpty ? nil : $0 }
        }

        let port: Int
        if let text = parameter("port") {
            guard let value = Int(text), (1...65535).contains(value) else {
                throw ConfigurationError("database URL port must be 1–65535, not '\(text)'")
            }
            port = value
        } else if let value = components.port {
            guard (1...65535).contains(value) else { throw ConfigurationError("database URL port must be 1–65535, not \(value)") }
            port = value
        } else {
            port = 5432
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
}
