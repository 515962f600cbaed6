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
        .target(name: "CRealtime"),

        // Libraries.
        // The one seeded generator (SplitMix64) of the package: simulator, backoff jitter, benchmarks and tests.
        .target(name: "SeededRandom"),
        // The Modbus client, its transports and the drivers are single-owner by design (one thread owns each client
        // and driver: the control thread, or a virtual run's thread): release builds skip the runtime exclusivity
        // checks there, which cost the control thread and a campaign about 8 % of their time.
        .target(
            name: "Modbus", dependencies: ["CModbus", "CRealtime", "SeededRandom"],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        .target(name: "Motion"),
        .target(
            name: "CellCore",
            dependencies: ["Motion", .product(name: "TOMLKit", package: "TOMLKit")]),
        .target(
            name: "CellModbus", dependencies: ["CellCore", "Modbus", "CRealtime"],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
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
        // Test support: counts heap allocations per thread (malloc interposition), for the zero-allocation test.
        .target(name: "CAllocationCounter"),
        .target(
            name: "CellService",
            dependencies: [
                "CellCore", "CellModbus", "CellRuntime", "Modbus", "CRealtime", "Ledger",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "SystemdSupport",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "CellRuntime",
            dependencies: [
                "CellCore", "CRealtime", .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),

        // Status and control over a local socket (HTTP/1.1 on a Unix socket, SSE, Prometheus), and its client.
        .target(
            name: "ControlAPI",
            dependencies: [
                "CellService", "CellCore", "CellRuntime", "CRealtime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Virtual-time mode: the controller against the in-process models, seeded faults, invariants, campaigns.
        .target(
            name: "CellCampaign",
            dependencies: [
                "CellCore", "CellSimulator", "CellModbus", "CellService", "Modbus", "Ledger", "CRealtime", "Motion",
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),

        // Executables.
        .executableTarget(
            name: "lampsim",
            dependencies: [
                "CellSimulator", "CellCore", "CellCampaign",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "lampcelld",
            dependencies: [
                "CellService", "CellModbus", "CellCore", "CellRuntime", "CellSimulator", "CRealtime", "SystemdSupport",
                "ControlAPI", "Ledger",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        .executableTarget(
            name: "lampctl",
            dependencies: [
                "ControlAPI", "Ledger", "CellCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Benchmarks (`make bench`, docs/BENCHMARKS.md): whole-process and micro figures beside their references.
        // Links CAllocationCounter (interposes malloc in this executable only) to count allocations per period.
        .executableTarget(
            name: "lampbench",
            dependencies: [
                "CellService", "CellSimulator", "CellModbus", "CellCore", "CellRuntime", "Modbus", "Motion", "Ledger",
                "CRealtime", "CAllocationCounter", "SeededRandom",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Tests.
        // Shared by the test targets: the repository's paths, the fuzz seed (LAMPCELL_FUZZ_SEED), SplitMix64 helpers.
        .target(name: "LampCellTestSupport", dependencies: ["SeededRandom"], path: "Tests/TestSupport"),
        .testTarget(name: "ModbusTests", dependencies: ["Modbus", "CRealtime"]),
        .testTarget(name: "MotionTests", dependencies: ["Motion", "LampCellTestSupport"]),
        .testTarget(name: "CellCoreTests", dependencies: ["CellCore", "LampCellTestSupport"]),
        .testTarget(name: "CellRuntimeTests", dependencies: ["CellRuntime", "CellCore", "CRealtime"]),
        .testTarget(
            name: "LedgerTests",
            dependencies: ["Ledger", "CellCore", "LampCellTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "CellServiceTests",
            dependencies: [
                "CellService", "CellSimulator", "CellCore", "CellModbus", "CellRuntime", "Modbus", "CRealtime",
                "CAllocationCounter",
                "Ledger", "ControlAPI", "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "SystemdSupportTests",
            dependencies: [
                "SystemdSupport", "CellCore", "Ledger", "LampCellTestSupport",
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
                "ControlAPI", "CellService", "CellSimulator", "CellCore", "CellRuntime", "CRealtime",
                "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Hostile Modbus device against the drivers and the controller (issue 7, bad input).
        .testTarget(
            name: "CellModbusTests",
            dependencies: [
                "CellModbus", "CellCore", "CellSimulator", "CellService", "Modbus", "CRealtime", "LampCellTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "CellCampaignTests",
            dependencies: ["CellCampaign", "CellCore", "CellSimulator", "Ledger", "Motion", "LampCellTestSupport"]),
        .testTarget(
            name: "CellSimulatorTests",
            dependencies: ["CellSimulator", "CellCore", "Modbus", "CRealtime", "LampCellTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
