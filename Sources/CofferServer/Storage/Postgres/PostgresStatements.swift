import CofferProtocol
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
            SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at, m.key_sealed_by,
                v.key_epoch::int8, v.key_history
            FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.user_id = $1 ORDER BY v.created_at, v.id
            """
        typealias Row = (String, String, String, String, String, Int64, Int64, Int64, String?, Int64, String?)
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

    /// A pull's first round trip: whether the session asking is active (kind 2, in `first`), the
    /// user's memberships (kind 0, with each vault's cursor from the request) and the changes of
    /// the first vault, in membership order, that has any (kind 1). Most pulls touch one vault,
    /// so this is the whole pull; `first` marks that vault (its changes may be none but a
    /// metadata change). Later vaults are read one by one (`ItemsSince`), which keeps a page at
    /// `limit` items whatever the number of vaults. An ended session reads no vault.
    struct PullFirst: PostgresPreparedStatement {
        static let sql = """
            WITH c AS (SELECT * FROM unnest($2::text[], $3::int8[]) AS c(vault_id, cursor)),
            ok AS (
                SELECT 1 FROM sessions s JOIN devices d ON d.user_id = s.user_id AND d.id = s.device_id
                WHERE s.id = $5 AND s.user_id = $1 AND s.device_id = $6 AND s.revoked_at IS NULL AND s.expires_at > $7 AND d.revoked_at IS NULL
            ),
            m AS (
                SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at,
                    m.key_sealed_by, v.key_epoch::int8 AS key_epoch, v.key_history, COALESCE(c.cursor, 0) AS cursor
                FROM vault_members m JOIN vaults v ON v.id = m.vault_id LEFT JOIN c ON c.vault_id = v.id
                WHERE m.user_id = $1 AND EXISTS (SELECT 1 FROM ok)
            ),
            f AS (SELECT id, cursor FROM m WHERE revision > cursor ORDER BY created_at, id LIMIT 1)
            SELECT 0::int8 AS kind, id, owner_id, role, encrypted_metadata, wrapped_key, revision, created_at, updated_at, key_sealed_by,
                NULL::text AS item_id, NULL::text AS data, NULL::int8 AS version, NULL::bool AS deleted, NULL::text AS device_id,
                id IN (SELECT id FROM f) AS first, key_epoch, key_history
            FROM m
            UNION ALL
            SELECT 1::int8, i.vault_id, '', '', '', '', i.revision, i.created_at, i.updated_at, NULL, i.id, i.encrypted_data, i.version::int8, i.deleted, i.device_id,
                true, 0::int8, NULL
            FROM f JOIN LATERAL (
                SELECT * FROM items WHERE vault_id = f.id AND revision > f.cursor ORDER BY revision LIMIT $4
            ) i ON true
            UNION ALL
            SELECT 2, '', '', '', '', '', 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, EXISTS (SELECT 1 FROM ok), 0::int8, NULL
            """
        typealias Row = (
            Int64, String, String, String, String, String, Int64, Int64, Int64, String?, String?, String?, Int64?, Bool?, String?, Bool, Int64, String?
        )
        var identity: AuthIdentity
        var at: Timestamp
        var vaultIds: [String]
        var cursors: [Int64]
        var limit: Int

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 7)
            bindings.append(identity.userId)
            bindings.append(vaultIds)
            bindings.append(cursors)
            bindings.append(limit)
            bindings.append(identity.sessionId)
            bindings.append(identity.deviceId)
            bindings.append(at.milliseconds)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}
