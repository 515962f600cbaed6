// swift-tools-version: 6.1
// LampCell: cell controller for robotic headlamp assembly (Linux).
import PackageDescription

let package = Package(
    name: "LampCell",
    products: [
        .executable(name: "lampsim", targets: ["lampsim"]),
        .executable(name: "lampcelld", targets: ["lampcelld"]),
        .executable(name: "lampctl", targets: ["lampctl"]),
        .executable(name: "lampbench", targets: ["lampbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // ControlAPI: HTTP/1.1 on Unix sockets (SwiftNIO) and Prometheus text format.
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries and shims.
        .systemLibrary(
            name: "CModbus", pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]),
        .systemLibrary(
            name: "CSystemd", pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]),
        // libpq's header (libpq-dev) at build time; libpq.so.5 opened only when a plant database is configured.
        .target(name: "CPostgres"),
        .target(name: "CRealtime"),
        // crypt(3) (libxcrypt, part of libc6-dev on Debian): the panel operators' password hashes.
        .systemLibrary(name: "CCrypt"),

        // Libraries.
        // The one seeded generator (SplitMix64) of the package: simulator, backoff jitter, benchmarks and tests.
        .target(name: "SeededRandom"),
        // The Modbus client, its transports and the drivers are single-owner by design (one thread owns each client
        // and driver: the control thread, or a virtual run's thread): release builds skip the runtime exclusivity
        // checks there, which cost the control thread and a campaign about 8 % of their time.
        .target(
            name: "Modbus", dependencies: ["CModbus", "CRealtime", "SeededRandom"],
            swiftSettings: [
                .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O", "-assert-config", "Debug"], .when(configuration: .debug)),
            ]),
        // What every period runs (trajectory planning and sampling, the controller, the drivers, the Modbus client)
        // is optimised in debug builds too (-O, with asserts and preconditions kept: -assert-config Debug), so that
        // the virtual-time tests of a debug `make test` run in seconds, not minutes (measured: the virtual-time and
        // configuration-fuzzing suites 103 s at -Onone, 47 s so). The rest of a debug build stays -Onone.
        .target(
            name: "Motion",
            swiftSettings: [.unsafeFlags(["-O", "-assert-config", "Debug"], .when(configuration: .debug))]),
        // The PackML unit: state model, commands, modes, stop causes, PackTags times, counters and OEE. Pure.
        .target(name: "PackML"),
        // The domain: Hardware definitions, recipes and their compiled form, the process image, lamps, the version.
        .target(name: "CellCore", dependencies: ["Motion"]),
        // Loading and checking the TOML files (cell, recipes, daemon): the only module that imports a TOML parser.
        .target(
            name: "CellConfig",
            dependencies: ["CellCore", .product(name: "TOMLKit", package: "TOMLKit")]),
        // The controller: PackML unit, lanes, arm axes, reset; stepped once per period on the process image.
        .target(
            name: "CellControl", dependencies: ["CellCore", "PackML", "Motion", "CellRuntime"],
            swiftSettings: [.unsafeFlags(["-O", "-assert-config", "Debug"], .when(configuration: .debug))]),
        .target(
            name: "CellModbus", dependencies: ["CellCore", "CellControl", "Modbus", "CRealtime"],
            swiftSettings: [
                .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O", "-assert-config", "Debug"], .when(configuration: .debug)),
            ]),
        // The device models step at 4 kHz in virtual time: release builds skip the runtime exclusivity checks there
        // (a quarter of a campaign's time; the models are single-owner by design, see RA610Model), and debug builds
        // optimise them (-O), so that the virtual-time behaviour tests of a debug `make test` do not spend most of
        // their time in the arms' servo loop at -Onone.
        .target(
            name: "CellSimulator", dependencies: ["CellCore", "Modbus", "CRealtime", "SeededRandom"],
            swiftSettings: [
                .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O"], .when(configuration: .debug)),
            ]),
        .target(
            name: "Ledger",
            dependencies: [
                "CellCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The plant database (PostgreSQL through libpq): the ledger's replication, the central schema, recall queries.
        .target(
            name: "Plant",
            dependencies: ["CPostgres", "Ledger", .product(name: "Logging", package: "swift-log")]),
        // The shift report (HTML with SVG charts) from the ledger and the alarm and event history: `lampctl report`
        // and the panel's report button.
        .target(name: "Reports", dependencies: ["Ledger", "PackML"]),
        // Test support: counts heap allocations per thread (malloc interposition), for the zero-allocation test.
        .target(name: "CAllocationCounter"),
        .target(
            name: "CellService",
            dependencies: [
                "CellCore", "CellConfig", "CellControl", "PackML", "CellModbus", "CellRuntime", "Modbus", "CRealtime",
                "Ledger", .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "SystemdSupport",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "CellRuntime",
            dependencies: ["CRealtime", .product(name: "Histogram", package: "hdrhistogram-swift")]),

        // The API's wire types (the status document, request and answer bodies) and its client: all that `lampctl`
        // needs to talk to the daemon, without the controller, the drivers or libmodbus.
        .target(name: "ControlAPIClient", dependencies: ["CCrypt"]),
        // Status and control over a local socket (HTTP/1.1 on a Unix socket, SSE, Prometheus): the server.
        .target(
            name: "ControlAPI",
            dependencies: [
                "ControlAPIClient", "CellService", "CellCore", "CellControl", "PackML", "CellRuntime", "CRealtime", "Ledger",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The operator panel's page, script and style, compiled into the binary (no files to install).
            resources: [
                .embedInCode("Panel/index.html"), .embedInCode("Panel/panel.js"), .embedInCode("Panel/panel.css"),
            ]),

        // Virtual-time mode: the controller against the in-process models, seeded faults, invariants, campaigns.
        .target(
            name: "CellCampaign",
            dependencies: [
                "CellCore", "CellConfig", "CellControl", "PackML", "CellSimulator", "CellModbus", "CellService", "Modbus",
                "Ledger", "CRealtime", "Motion",
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),

        // Executables.
        .executableTarget(
            name: "lampsim",
            dependencies: [
                "CellSimulator", "CellCore", "CellConfig", "CellCampaign", "CRealtime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "lampcelld",
            dependencies: [
                "CellService", "CellModbus", "CellCore", "CellConfig", "CellRuntime", "CellSimulator", "CRealtime",
                "SystemdSupport", "ControlAPI", "ControlAPIClient", "Ledger", "Plant", "Reports",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        .executableTarget(
            name: "lampctl",
            dependencies: [
                "ControlAPIClient", "Ledger", "CellCore", "Plant", "Reports", "CellConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Benchmarks (`make bench`, docs/BENCHMARKS.md): whole-process and micro figures beside their references.
        // Links CAllocationCounter (interposes malloc in this executable only) to count allocations per period.
        .executableTarget(
            name: "lampbench",
            dependencies: [
                "CellService", "CellSimulator", "CellModbus", "CellCore", "CellConfig", "CellControl", "CellRuntime",
                "Modbus", "Motion", "Ledger", "CRealtime", "CAllocationCounter", "SeededRandom", "Plant",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Tests.
        // Shared by the test targets: the repository's paths, the fuzz seed (LAMPCELL_FUZZ_SEED), SplitMix64 helpers.
        .target(name: "LampCellTestSupport", dependencies: ["SeededRandom"], path: "Tests/TestSupport"),
        // Shared by the end-to-end test targets: a whole simulated cell driven by the real daemon (`CellFixture`).
        .target(
            name: "CellTestSupport",
            dependencies: [
                "CellService", "CellSimulator", "CellConfig", "CellCore", "CRealtime", "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/CellTestSupport"),
        .testTarget(name: "ModbusTests", dependencies: ["Modbus", "CRealtime"]),
        .testTarget(name: "MotionTests", dependencies: ["Motion", "LampCellTestSupport"]),
        .testTarget(name: "PackMLTests", dependencies: ["PackML"]),
        .testTarget(name: "CellConfigTests", dependencies: ["CellConfig", "CellCore", "LampCellTestSupport"]),
        .testTarget(name: "CellRuntimeTests", dependencies: ["CellRuntime", "CellCore", "CRealtime"]),
        .testTarget(
            name: "LedgerTests",
            dependencies: ["Ledger", "CellCore", "LampCellTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "CellServiceTests",
            dependencies: [
                "CellService", "CellSimulator", "CellCore", "CellConfig", "CellControl", "PackML", "CellModbus",
                "CellRuntime", "Modbus", "CRealtime", "CAllocationCounter",
                "Ledger", "ControlAPI", "ControlAPIClient", "LampCellTestSupport", "CellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "SystemdSupportTests",
            dependencies: [
                "SystemdSupport", "CellCore", "CellConfig", "Ledger", "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Probe"]),
        // Test helper: a tiny socket-activated server and journal writer that the SystemdSupport tests start
        // (under systemd-socket-activate, in a private mount namespace); not installed.
        .executableTarget(
            name: "lampcell-systemd-probe",
            dependencies: ["SystemdSupport", .product(name: "Logging", package: "swift-log")],
            path: "Tests/SystemdSupportTests/Probe"),
        .testTarget(
            name: "ControlAPITests",
            dependencies: [
                "ControlAPI", "ControlAPIClient", "CellService", "CellSimulator", "CellCore", "CellConfig", "CellRuntime",
                "CRealtime", "CellTestSupport", "CellControl", "PackML",
                "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Hostile Modbus device against the drivers and the controller (issue 7, bad input).
        .testTarget(
            name: "CellModbusTests",
            dependencies: [
                "CellModbus", "CellCore", "CellConfig", "CellSimulator", "CellService", "Modbus", "CRealtime",
                "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "CellCampaignTests",
            dependencies: [
                "CellCampaign", "CellCore", "CellConfig", "CellControl", "PackML", "CellSimulator", "Ledger", "Motion",
                "LampCellTestSupport",
            ]),
        // Replication to, and queries of, a private PostgreSQL server the tests start (initdb in a temporary folder).
        .testTarget(
            name: "PlantTests",
            dependencies: [
                "Plant", "Ledger", "CellCore", "CellConfig", "LampCellTestSupport", "CRealtime", "ControlAPIClient",
                .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
            ],
            // A self-signed certificate that signed nothing: the wrong CA of the TLS test.
            exclude: ["other-ca.crt"]),
        // The operator panel in a real browser (headless Chromium over WebDriver) against the real lampcelld, and the
        // shift report's PDF rendered by pdftoppm.
        .testTarget(
            name: "HMITests",
            dependencies: [
                "ControlAPI", "ControlAPIClient", "Ledger", "Reports", "LampCellTestSupport", "CellCore", "CRealtime",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // A status document of the simulated cell, read by the alarm tracker's test.
            exclude: ["status-stopped.json"]),
        .testTarget(
            name: "CellSimulatorTests",
            dependencies: ["CellSimulator", "CellCore", "CellConfig", "Modbus", "CRealtime", "LampCellTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
