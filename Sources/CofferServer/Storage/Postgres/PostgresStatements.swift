import PostgresNIO

/// The statements on every sync request's path, prepared once per connection: PostgreSQL then
/// skips parsing and planning them on each call, which is most of a small query's cost.
enum PostgresStatements {
    /// The session behind an access token, if it and its device are still active.
    struct ActiveSession: PostgresPreparedStatement {
        static let sql = """
            SELECT s.id, s.user_id, s.device_id, s.refresh_hash, s.created_at, s.expires_at
            FROM sessions s JOIN devices d ON d.user_id = s.user_id AND d.id = s.device_id
            WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND d.revoked_at IS NULL
            """
        typealias Row = (String, String, String, String, Int64, Int64)
        var id: String
        var at: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(id)
            bindings.append(at)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Every vault a user is a member of, oldest first.
    struct Memberships: PostgresPreparedStatement {
        static let sql = """
            SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at, m.key_sealed_by
            FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.user_id = $1 ORDER BY v.created_at, v.id
            """
        typealias Row = (String, String, String, String, String, Int64, Int64, Int64, String?)
        var userId: String

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(userId)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// A vault's items changed after a revision, in revision order.
    struct ItemsSince: PostgresPreparedStatement {
        static let sql = """
            SELECT id, vault_id, encrypted_data, version, revision, deleted, created_at, updated_at, device_id
            FROM items WHERE vault_id = $1 AND revision > $2 ORDER BY revision LIMIT $3
            """
        typealias Row = (String, String, String?, Int, Int64, Bool, Int64, Int64, String?)
        var vaultId: String
        var since: Int64
        var limit: Int

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(vaultId)
            bindings.append(since)
            bindings.append(limit)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}
