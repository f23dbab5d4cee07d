import CofferProtocol
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The application type `buildApplication` returns.
public typealias CofferApplication = Application<RouterResponder<AppRequestContext>>

/// Opens the store named by `configuration.database` (migrations run when the server starts).
public func openStore(_ location: DatabaseLocation, poolSize: Int = 16, logger: Logger) async throws -> any Store {
    switch location {
    case .sqlite(let path):
        return try await SQLiteStore.open(path: path, logger: logger)
    case .postgres(let url):
        return try PostgresStore(url: url, maximumConnections: poolSize, logger: logger)
    }
}

/// Builds the Coffer server: opens the configured store and wires every route, middleware and
/// background service. Running the result serves until SIGINT/SIGTERM, then shuts down gracefully.
public func buildApplication(
    configuration: ServerConfiguration,
    logger: Logger,
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    clock: @escaping @Sendable () -> Timestamp = { .now },
    onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in },
    probe: RealtimeProbe? = nil
) async throws -> CofferApplication {
    let store = try await openStore(configuration.database, poolSize: configuration.databasePoolSize, logger: logger)
    return buildApplication(
        configuration: configuration, store: store, logger: logger, registry: registry, clock: clock, onServerRunning: onServerRunning, probe: probe
    )
}

/// Builds the server around an already opened store; the application owns it from here on
/// (migrates it before serving and closes it after shutdown).
public func buildApplication(
    configuration: ServerConfiguration,
    store: any Store,
    logger: Logger,
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    clock: @escaping @Sendable () -> Timestamp = { .now },
    onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in },
    probe: RealtimeProbe? = nil
) -> CofferApplication {
    let router = Router(context: AppRequestContext.self)
    // Outermost first: every response, errors included, gets an id and security headers.
    router.add(middleware: RequestIdMiddleware())
    router.add(middleware: ClientAddressMiddleware(trustForwardedHeaders: configuration.trustForwardedHeaders))
    router.add(middleware: SecurityHeadersMiddleware(trustForwardedHeaders: configuration.trustForwardedHeaders))
    router.add(middleware: AllowListCORSMiddleware(origins: configuration.corsAllowedOrigins))
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: CompressionMiddleware(maximumBody: max(configuration.maxSyncRequestBody, configuration.maxBackupRequestBody)))
    router.add(middleware: AddressRateLimitMiddleware(store: store, limits: configuration.addressLimits, clock: clock))

    let tokens = TokenService(
        store: store, clock: clock, accessLifetime: configuration.accessTokenLifetime, rotation: configuration.signingKeyRotation
    )
    let audit = AuditLog(store: store, clock: clock, logger: logger)
    let authenticator = SessionAuthenticator(tokens: tokens, store: store, clock: clock)
    let authenticated = router.group("api").add(middleware: AuthMiddleware(authenticator: authenticator))

    // Real time: sockets of this instance, and (with PostgreSQL) the other instances through NOTIFY.
    let hub = RealtimeHub(store: store, logger: logger)
    let origin = UUID().uuidString.lowercased()
    let bus = (store as? PostgresStore).map { PostgresEventBus(store: $0, hub: hub, origin: origin, logger: logger) }
    let events = RealtimeEvents(hub: hub, bus: bus, origin: origin)
    probe?.attach(hub: hub, bus: bus)

    SystemController(store: store, registry: registry).addRoutes(to: router)
    BackupController(store: store, configuration: configuration, clock: clock).addRoutes(to: router)
    AuthController(store: store, tokens: tokens, configuration: configuration, clock: clock, audit: audit, events: events)
        .addRoutes(to: router, authenticated: authenticated)
    DevicesController(store: store, clock: clock, audit: audit, events: events).addRoutes(to: authenticated)
    let access = VaultAuthorization(store: store)
    let vaults = VaultsController(store: store, configuration: configuration, clock: clock, audit: audit, access: access, events: events)
    vaults.addRoutes(to: authenticated)
    let sync = SyncController(store: store, configuration: configuration, clock: clock, vaults: vaults, access: access, events: events)
    sync.addRoutes(to: authenticated)
    SharesController(store: store, configuration: configuration, clock: clock, audit: audit, access: access, events: events).addRoutes(to: authenticated)
    let realtime = RealtimeController(hub: hub, authenticator: authenticator, sync: sync, store: store, configuration: configuration, clock: clock)
    for route in BackupController.routes + AuthController.routes + DevicesController.routes + VaultsController.routes + SyncController.routes
        + SharesController.routes
    {
        router.answerMethodNotAllowed(path: route.path, allowed: route.methods)
    }

    var services: [any Service] = [
        StoreService(store: store),
        MaintenanceService(store: store, tokens: tokens, clock: clock, logger: logger),
    ]
    if let bus { services.append(bus) }
    var app = Application(
        router: router,
        server: guardedServer(configuration: configuration) { request, channel, _ in
            guard request.path == "/ws" else { return .dontUpgrade }
            return .upgrade([:]) { inbound, outbound, context in
                await realtime.handle(inbound, outbound, channel: channel, logger: context.logger)
            }
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    app.beforeServerStarts {
        try await store.migrate()
        try await tokens.rotateIfNeeded()
        logger.info("database ready", metadata: ["database": "\(configuration.database)"])
    }
    return app
}

/// HTTP/1.1 with the `/ws` upgrade, behind the connection guard, with the head limits of `configuration`.
private func guardedServer(
    configuration: ServerConfiguration,
    shouldUpgrade: @escaping @Sendable (HTTPRequest, any Channel, Logger) async throws -> ShouldUpgradeResult<
        WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
    >
) -> HTTPServerBuilder {
    let limits = configuration.connectionLimits
    let channel = HTTP1WebSocketUpgradeChannel.Configuration(
        http1: .init(
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: limits.maxHeaderFieldSize,
                maxHeaderListSize: limits.maxHeaderListSize,
                maxHeaderFieldCount: limits.maxHeaderFieldCount
            )
        ),
        ws: WebSocketServerConfiguration(
            maxFrameSize: max(1 << 16, configuration.maxSyncRequestBody),
            autoPing: .enabled(timePeriod: .seconds(configuration.realtimePingInterval))
        )
    )
    return HTTPServerBuilder { responder in
        GuardedHTTPChannel(
            inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: channel, shouldUpgrade: shouldUpgrade),
            limits: limits
        )
    }
}
