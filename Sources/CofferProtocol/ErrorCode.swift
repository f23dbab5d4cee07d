/// Machine-readable `code` values of error bodies.
public enum ErrorCode {
    public static let invalidJSON = "invalid_json"
    public static let invalidField = "invalid_field"
    public static let missingField = "missing_field"
    public static let invalidQuery = "invalid_query"
    /// A request header's value is malformed or out of range (400).
    public static let invalidHeader = "invalid_header"
    public static let unsupportedMediaType = "unsupported_media_type"
    public static let payloadTooLarge = "payload_too_large"
    public static let backupTooLarge = "backup_too_large"
    public static let notCiphertext = "not_ciphertext"
    public static let rateLimited = "rate_limited"
    public static let userExists = "user_exists"
    public static let userNotFound = "user_not_found"
    public static let backupNotFound = "backup_not_found"
    public static let storageKeyForbidden = "storage_key_forbidden"
    public static let signatureRequired = "signature_required"
    public static let signatureInvalid = "signature_invalid"
    public static let signatureStale = "signature_stale"
    public static let signatureReplayed = "signature_replayed"
    public static let routeNotFound = "not_found"
    public static let methodNotAllowed = "method_not_allowed"
    public static let originNotAllowed = "origin_not_allowed"
    public static let internalError = "internal_error"
    public static let unavailable = "unavailable"
    /// The request is not HTTP/1.1 the server can parse (answered by the connection guard, then closed).
    public static let malformedRequest = "malformed_request"
    /// The request target is longer than the server accepts (414).
    public static let uriTooLong = "uri_too_long"
    /// The header section is larger, or has more fields, than the server accepts (431).
    public static let headersTooLarge = "headers_too_large"
    /// The method is not one HTTP/1.1 defines (501).
    public static let methodNotImplemented = "method_not_implemented"
    /// The request's HTTP version is not 1.0 or 1.1 (505).
    public static let httpVersionNotSupported = "http_version_not_supported"
    /// The request head did not arrive in time (408).
    public static let requestTimeout = "request_timeout"
}
