import Foundation
import LampCellTestSupport
import Testing

@testable import Ledger

@Suite("The ledger's JSON columns")
struct LedgerJSONTests {
    /// Texts that need every kind of escape JSON has, and some that need none.
    static let texts = [
        "", "leak_rate", "cm³/min", "N·m", "a/b", "quote \" and backslash \\", "tab\tnew\nline\r",
        "\u{08}\u{0C}\u{01}\u{1F}\u{7F}", "°", "日本", "emoji 🔦", "<script>",
    ]

    /// Reals as measurements take them, and the edges of the format.
    static func real(_ random: inout SplitMix64) -> Double {
        switch Int.random(in: 0..<10, using: &random) {
        case 0: return Double(Int.random(in: -1000...1000, using: &random))
        case 1: return Double(Int.random(in: -100_000...100_000, using: &random)) / 100
        case 2: return Double.random(in: -1e-9...1e-9, using: &random)
        case 3: return Double.random(in: -1e22...1e22, using: &random)
        case 4: return [0.0, -0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                        1e16, 1e17, 123_456_789_012_345_680, 0.1, 1e-5][Int.random(in: 0..<12, using: &random)]
        default: return Double.random(in: -500...500, using: &random)
        }
    }

    @Test("measurements and devices are written exactly as JSONEncoder writes them, and read back equal")
    func sameTextAsJSONEncoder() throws {
        var random = SplitMix64(seed: 17)
        let encoder = LedgerSchema.makeEncoder()
        let decoder = LedgerSchema.makeDecoder()
        for _ in 0..<2000 {
            let measurements = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                LedgerMeasurement(
                    name: Self.texts.randomElement(using: &random)!, value: Self.real(&random),
                    unit: Self.texts.randomElement(using: &random)!,
                    minimum: Bool.random(using: &random) ? Self.real(&random) : nil,
                    maximum: Bool.random(using: &random) ? Self.real(&random) : nil)
            }
            let devices = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                DeviceIdentity(
                    name: Self.texts.randomElement(using: &random)!, serialNumber: Self.texts.randomElement(using: &random)!,
                    firmware: Self.texts.randomElement(using: &random)!)
            }
            let written = LedgerJSON.measurements(measurements)
            #expect(written == String(decoding: try encoder.encode(measurements), as: UTF8.self))
            let back = try decoder.decode([LedgerMeasurement].self, from: Data(written.utf8))
            #expect(back.count == measurements.count)
            for (read, original) in zip(back, measurements) {
                #expect(read.name == original.name && read.unit == original.unit)
                #expect(read.value.bitPattern == original.value.bitPattern || (read.value.isNaN && original.value.isNaN))
            }
            let devicesText = LedgerJSON.devices(devices)
            #expect(devicesText == String(decoding: try encoder.encode(devices), as: UTF8.self))
            #expect(try decoder.decode([DeviceIdentity].self, from: Data(devicesText.utf8)) == devices)
        }
    }
}
