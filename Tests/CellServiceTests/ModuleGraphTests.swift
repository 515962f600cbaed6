import Foundation
import LampCellTestSupport
import Testing

/// The module graph a newcomer reads (`docs/ARCHITECTURE.md`) is the one `Package.swift` builds, and `lampctl`
/// links no libmodbus.
@Suite("Module graph")
struct ModuleGraphTests {
    /// One module's dependencies: those of this package, and external products.
    struct Dependencies: Equatable, CustomStringConvertible {
        var local: Set<String>
        var external: Set<String>
        var description: String { "local \(local.sorted()), external \(external.sorted())" }
    }

    /// Test support, not modules of the product: left out of the documented graph.
    static let testSupportTargets: Set<String> = ["LampCellTestSupport", "CellTestSupport", "lampcell-systemd-probe"]

    /// The text from `open` (an opening bracket at `start`) to its matching closing bracket, exclusive.
    static func balanced(_ text: [Character], from start: Int, open: Character, close: Character) -> (String, Int)? {
        var depth = 0
        var index = start
        while index < text.count {
            if text[index] == open { depth += 1 }
            if text[index] == close {
                depth -= 1
                if depth == 0 { return (String(text[(start + 1)..<index]), index) }
            }
            index += 1
        }
        return nil
    }

    /// Quoted strings of `text`, in order.
    static func quoted(_ text: String) -> [String] {
        text.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }
            .map { String($0.element) }
    }

    /// Every non-test target of `Package.swift` with its dependencies.
    static func packageGraph() throws -> [String: Dependencies] {
        let text = Array(try String(contentsOfFile: Repository.root + "/Package.swift", encoding: .utf8))
        let source = String(text)
        var graph: [String: Dependencies] = [:]
        for kind in [".target(", ".executableTarget(", ".systemLibrary("] {
            var searchFrom = source.startIndex
            while let range = source.range(of: kind, range: searchFrom..<source.endIndex) {
                searchFrom = range.upperBound
                let open = source.distance(from: source.startIndex, to: range.upperBound) - 1
                guard let (body, _) = balanced(text, from: open, open: "(", close: ")") else { continue }
                guard let name = quoted(body).first else { continue }
                var dependencies = Dependencies(local: [], external: [])
                if let list = body.range(of: "dependencies: [") {
                    let bodyCharacters = Array(body)
                    let listOpen = body.distance(from: body.startIndex, to: list.upperBound) - 1
                    if let (items, _) = balanced(bodyCharacters, from: listOpen, open: "[", close: "]") {
                        var rest = items
                        while let product = rest.range(of: ".product(") {
                            let productCharacters = Array(rest)
                            let productOpen = rest.distance(from: rest.startIndex, to: product.upperBound) - 1
                            guard let (arguments, end) = balanced(productCharacters, from: productOpen, open: "(", close: ")")
                            else { break }
                            if let productName = quoted(arguments).first { dependencies.external.insert(productName) }
                            rest = String(productCharacters[..<(productOpen - ".product".count)])
                                + String(productCharacters[(end + 1)...])
                        }
                        dependencies.local = Set(quoted(rest))
                    }
                }
                if !testSupportTargets.contains(name) { graph[name] = dependencies }
            }
        }
        return graph
    }

    /// The module table of `docs/ARCHITECTURE.md`: `| \`Name\` | holds | \`A\`, \`B\` | Ext1, Ext2 |`.
    static func documentedGraph() throws -> [String: Dependencies] {
        let text = try String(contentsOfFile: Repository.root + "/docs/ARCHITECTURE.md", encoding: .utf8)
        var graph: [String: Dependencies] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard cells.count >= 5 else { continue }
            func names(_ cell: String) -> Set<String> {
                cell == "—" ? [] : Set(cell.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " `")) })
            }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            graph[name] = Dependencies(local: names(cells[3]), external: names(cells[4]))
        }
        return graph
    }

    @Test("docs/ARCHITECTURE.md lists every module of Package.swift with exactly its dependencies")
    func documentedGraphMatchesPackage() throws {
        let package = try Self.packageGraph()
        let documented = try Self.documentedGraph()
        #expect(package.count >= 20, "Package.swift parsed into \(package.count) modules only")
        #expect(package["lampctl"]?.local.contains("ControlAPIClient") == true)
        for name in Set(package.keys).union(documented.keys).sorted() {
            #expect(package[name] == documented[name], "\(name): Package.swift \(package[name].map(\.description) ?? "no such module"), docs \(documented[name].map(\.description) ?? "not listed")")
        }
    }

    @Test("every module imports only the modules Package.swift lets it depend on; TOML only in CellConfig; PackML pure")
    func importsFollowTheGraph() throws {
        let package = try Self.packageGraph()
        let root = Repository.root + "/Sources/"
        var checked = 0
        for (module, dependencies) in package.sorted(by: { $0.key < $1.key }) {
            guard let files = FileManager.default.enumerator(atPath: root + module) else { continue }
            var imported: Set<String> = []
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root + module + "/" + file, encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("import ") {
                    imported.insert(String(line.dropFirst("import ".count)).trimmingCharacters(in: .whitespaces))
                }
            }
            checked += 1
            let undeclared = imported.intersection(package.keys).subtracting(dependencies.local).subtracting([module])
            #expect(undeclared.isEmpty, "\(module) imports \(undeclared.sorted()), which Package.swift does not list")
            if module != "CellConfig" {
                #expect(!imported.contains("TOMLKit"), "\(module) imports TOMLKit: only CellConfig parses TOML")
            }
            if module == "PackML" {
                #expect(imported.intersection(package.keys).isEmpty, "PackML imports \(imported.sorted())")
            }
        }
        #expect(checked >= 20, "only \(checked) module folders found under Sources")
    }

    @Test("lampctl links no libmodbus (it talks to the daemon through ControlAPIClient)")
    func lampctlLinksNoLibmodbus() throws {
        let lampctl = try DaemonExecutableTests.executable("lampctl")
        let lampcelld = try DaemonExecutableTests.executable("lampcelld")
        func libraries(_ path: String) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
            process.arguments = [path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: output, as: UTF8.self)
        }
        // The check can fail: the daemon does link it.
        #expect(try libraries(lampcelld).contains("libmodbus"))
        #expect(try !libraries(lampctl).contains("libmodbus"), "lampctl links libmodbus")
    }
}
