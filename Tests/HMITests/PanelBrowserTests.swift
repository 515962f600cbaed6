// The operator panel in a real browser: headless Chromium driven over WebDriver (chromedriver) against the real
// `lampcelld --simulate`, faults injected through the simulator's console. Wall-clock tests: each starts a daemon
// and a browser (a few seconds).

import ControlAPIClient
import Foundation
import LampCellTestSupport
import Ledger
import Testing

/// Runs `body` with a started cell and a browser on its overview page; stops both whatever happens.
private func withPanel(_ body: (PanelCell, WebDriver) async throws -> Void) async throws {
    let cell = try await PanelCell()
    let browser: WebDriver
    do {
        browser = try await WebDriver()
    } catch {
        cell.stop()
        throw error
    }
    do {
        try await browser.navigate(cell.url + "/")
        let live = try await browser.waitFor(seconds: 10) { try await browser.text("#live") == "live" }
        try #require(live, "the panel never received a status event")
        try await body(cell, browser)
    } catch {
        await browser.quit()
        let log = cell.logTail()
        cell.stop()
        Issue.record("lampcelld log: \(log)")
        throw error
    }
    await browser.quit()
    cell.stop()
}

/// A screenshot of the page as it is, checked to be a PNG of some size, into LAMPCELL_HMI_SCREENSHOTS (docs/hmi) when
/// set, else the cell's folder.
private func saveScreenshot(_ browser: WebDriver, _ cell: PanelCell, _ name: String) async throws {
    let folder = ProcessInfo.processInfo.environment["LAMPCELL_HMI_SCREENSHOTS"] ?? cell.directory
    let png = try await browser.screenshot()
    #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "\(name): \(png.count) bytes")
    try png.write(to: URL(fileURLWithPath: "\(folder)/\(name).png"))
}

/// Logs in through the panel's dialog.
private func logIn(_ browser: WebDriver, password: String = PanelCell.password) async throws {
    try await browser.click("#login-button")
    try await browser.type("#login-operator", PanelCell.operatorName)
    try await browser.type("#login-password", password)
    try await browser.click("#login-submit")
}

/// Waits until the panel's state text shows `state`.
private func waitForState(_ browser: WebDriver, _ state: String, seconds: Double = 30) async throws -> Bool {
    try await browser.waitFor(seconds: seconds) { try await browser.text("#state-text") == state }
}

/// Clicks a command button once PackML enables it.
private func press(_ browser: WebDriver, _ command: String) async throws {
    let enabled = try await browser.waitFor(seconds: 10) {
        try await browser.script("return !document.getElementById(arguments[0]).disabled;", ["command-" + command]) as? Bool == true
    }
    let result = try await browser.text("#command-result") ?? ""
    try #require(enabled, "the \(command) button stayed disabled (last result: \(result))")
    try await browser.click("#command-" + command)
}

@Suite("Operator panel in a real browser", .serialized)
struct PanelBrowserTests {
    @Test("the overview shows the state the API reports, with the state lit in the diagram; every page renders")
    func overviewShowsTheAPIState() async throws {
        try await withPanel { cell, browser in
            let api = try await cell.status()
            let shown = try await browser.waitFor(seconds: 3) { try await browser.text("#state-text") == api.packml.state }
            let seen1 = (try? await browser.text("#state-text")) ?? ""
            #expect(shown, "panel shows \(seen1), the API \(api.packml.state)")
            let lit = try await browser.script(
                "return Array.from(document.querySelectorAll('#state-diagram .lit')).map(e => e.dataset.state);") as? [String]
            #expect(lit == [api.packml.state], "lit: \(lit ?? [])")
            #expect(try await browser.text("#mode-text") == "\(api.packml.mode) mode")
            #expect(try await browser.text("#cell-id") == api.cellID)
            // Not logged in: every command button is disabled.
            let enabled = try await browser.script(
                "return Array.from(document.querySelectorAll('#command-buttons button')).filter(b => !b.disabled).length;")
            #expect(enabled as? Int == 0)
            // Every page renders, and its screenshot is taken (into LAMPCELL_HMI_SCREENSHOTS when set: docs/hmi).
            for page in ["overview", "devices", "alarms", "lamps"] {
                try await browser.navigate(cell.url + "/hmi/#" + page)
                let visible = try await browser.waitFor(seconds: 5) {
                    try await browser.script("return !document.getElementById('page-' + arguments[0]).hidden;", [page]) as? Bool == true
                }
                #expect(visible, "page \(page) is not shown")
                if page == "devices" {
                    let cards = try await browser.waitFor(seconds: 3) {
                        try await browser.script("return document.querySelectorAll('#devices .card').length;") as? Int
                            == api.devices.count
                    }
                    #expect(cards, "the devices page has no card per device")
                }
                try await saveScreenshot(browser, cell, page)
            }
        }
    }

    @Test("an injected e-stop shows on the panel within 1 s with its stop reason; Clear, Reset and Start bring Execute back")
    func estopAndRecoveryFromTheButtons() async throws {
        try await withPanel { cell, browser in
            try await logIn(browser)
            let loggedIn = try await browser.waitFor(seconds: 5) {
                try await browser.text("#operator-name") == "operator \(PanelCell.operatorName)"
            }
            let seen2 = (try? await browser.text("#login-error")) ?? ""
            try #require(loggedIn, "login failed: \(seen2)")
            // To Execute: Reset, an order from the form, Start.
            if try await browser.text("#state-text") != "Idle" {
                try await press(browser, "reset")
                try #require(try await waitForState(browser, "Idle"))
            }
            try await browser.type("#order-input-id", "ORD-PANEL-1")
            try await browser.type("#order-input-quantity", "50")
            try await browser.click("#order-assign")
            let assigned = try await browser.waitFor(seconds: 5) { try await browser.text("#order-id") == "ORD-PANEL-1 · LEFT" }
            let seen3 = (try? await browser.text("#command-result")) ?? ""
            try #require(assigned, "order not shown: \(seen3)")
            try await press(browser, "start")
            let reachedExecute = try await waitForState(browser, "Execute")
            let seen4 = (try? await browser.text("#command-result")) ?? ""
            try #require(reachedExecute, "no Execute: \(seen4)")

            // docs/hmi: with LAMPCELL_HMI_SHOWCASE_LAMPS=N the screenshots wait for N lamps (a trend to show).
            let showcaseLamps = Int(ProcessInfo.processInfo.environment["LAMPCELL_HMI_SHOWCASE_LAMPS"] ?? "") ?? 0
            if showcaseLamps > 0 {
                let made = try await browser.waitFor(seconds: Double(showcaseLamps) * 60) {
                    try await cell.status().counts.lampsFinished >= UInt64(showcaseLamps)
                }
                try #require(made, "the showcase's \(showcaseLamps) lamps were not made")
                try await browser.navigate(cell.url + "/hmi/#overview")
                _ = try await browser.waitFor(seconds: 5) { try await browser.text("#live") == "live" }
                try await saveScreenshot(browser, cell, "overview")
            }

            try cell.inject("estop press")
            let pressed = Date()
            let shown = try await browser.waitFor(seconds: 1) {
                let reason = try await browser.text("#stop-reason") ?? ""
                return reason.hasPrefix("emergency stop pressed")
            }
            let latencySeconds = Date().timeIntervalSince(pressed)
            let seen5 = (try? await browser.text("#stop-reason")) ?? ""
            #expect(shown, "the e-stop did not show within 1 s: '\(seen5)'")
            let api = try await cell.status()
            #expect(api.packml.stopReason?.kind == "emergencyStop")
            #expect(try await browser.text("#stop-reason")?.hasPrefix(api.packml.stopReason?.message ?? "-") == true)
            let remedy = try await browser.waitFor(seconds: 2) {
                (try await browser.text("#stop-remedy") ?? "").hasPrefix("E-stop pressed: release the e-stop button, then Clear")
            }
            let seen6 = (try? await browser.text("#stop-remedy")) ?? ""
            #expect(remedy, "remedy: \(seen6)")
            try await saveScreenshot(browser, cell, "overview-estop")
            // Start is not offered while aborted.
            #expect(try await browser.script("return document.getElementById('command-start').disabled;") as? Bool == true)
            print("panel: e-stop shown \(String(format: "%.0f", latencySeconds * 1000)) ms after the press")

            try cell.inject("estop release")
            try await press(browser, "clear")
            #expect(try await waitForState(browser, "Stopped"))
            try await press(browser, "reset")
            #expect(try await waitForState(browser, "Idle"))
            try await press(browser, "start")
            let backInExecute = try await waitForState(browser, "Execute")
            let seen7 = (try? await browser.text("#command-result")) ?? ""
            #expect(backInExecute, "\(seen7)")
            #expect(try await cell.status().packml.state == "Execute")

            // The alarm history names the e-stop's stop with its downtime, and the operator's commands.
            try await browser.navigate(cell.url + "/hmi/#alarms")
            let listed = try await browser.waitFor(seconds: 5) {
                let rows = try await browser.text("#alarms-history") ?? ""
                return rows.contains("emergency stop pressed") && rows.contains("Clear by \(PanelCell.operatorName)")
            }
            let seen8 = (try? await browser.text("#alarms-history")) ?? ""
            #expect(listed, "history: \(seen8)")
            try await saveScreenshot(browser, cell, "alarms")
            if let serial = try await cell.status().lastLamp?.serial {
                try await browser.navigate(cell.url + "/hmi/#lamps/" + serial)
                let found = try await browser.waitFor(seconds: 5) { try await browser.text("#lamp-detail-title")?.hasPrefix(serial) == true }
                #expect(found, "the lamp link #lamps/\(serial) found nothing")
                try await saveScreenshot(browser, cell, "lamps")
            }
            let history = try EventHistory(path: cell.eventsPath, readOnly: true)
            let stops = try history.events(fromWallNanoseconds: 0, toWallNanoseconds: .max, kinds: [.stop])
            let estop = stops.first { $0.code == "emergencyStop" }
            let stopRows = stops.map { "\($0.code) '\($0.message)' ended \($0.endedWallNanoseconds.map(String.init) ?? "never")" }
            #expect(estop?.endedWallNanoseconds != nil, "the e-stop's stop did not end at Execute: \(stopRows)")
            let commands = try history.events(fromWallNanoseconds: 0, toWallNanoseconds: .max, kinds: [.command])
            for word in ["Reset", "Start", "Clear", "order ORD-PANEL-1"] {
                #expect(
                    commands.contains { $0.code == word && $0.actor.hasPrefix(PanelCell.operatorName + " (panel") },
                    "no \(word) by the operator in \(commands.map(\.message))")
            }
        }
    }

    @Test("a command without a login is refused (401), and a wrong password opens no session")
    func commandWithoutLoginIsRefused() async throws {
        try await withPanel { cell, browser in
            let before = try await cell.status().packml.state
            let answer = try await browser.asyncScript(
                """
                const done = arguments[arguments.length - 1];
                fetch('/v1/commands/reset', {method: 'POST'}).then(r => r.json().then(b => done([r.status, b.error])));
                """) as? [Any]
            #expect(answer?.first as? Int == 401, "\(String(describing: answer))")
            let direct = try await cell.request("POST", "/v1/commands/reset")
            #expect(direct.status == 401, "\(direct.body)")
            #expect(try await cell.status().packml.state == before)

            try await logIn(browser, password: "wrong password")
            let refused = try await browser.waitFor(seconds: 5) {
                try await browser.text("#login-error") == "unknown operator or wrong password"
            }
            let seen9 = (try? await browser.text("#login-error")) ?? ""
            #expect(refused, "login error: \(seen9)")
            #expect(try await browser.text("#operator-name") == "not logged in")
            #expect(try await cell.request("GET", "/v1/session").status == 401)
            // Reading needs no login: the shift report the Alarms page's button opens.
            let report = try await cell.request("GET", "/v1/report")
            #expect(report.status == 200 && report.body.contains("Shift report · HL-CELL-01"), "\(report.status)")
        }
    }

    @Test("a forged cross-site POST is refused: another origin's form, and the session cookie without its CSRF token")
    func forgedCrossSitePostIsRefused() async throws {
        try await withPanel { cell, browser in
            try await logIn(browser)
            let loggedIn = try await browser.waitFor(seconds: 5) {
                try await browser.text("#operator-name") == "operator \(PanelCell.operatorName)"
            }
            try #require(loggedIn)
            let cookie = try await browser.cookies().first { $0["name"] as? String == "lampcell_session" }
            #expect(cookie?["httpOnly"] as? Bool == true)
            #expect(cookie?["sameSite"] as? String == "Strict")
            let before = try await cell.status().packml

            // A page of another origin that posts a form to the panel as soon as it loads.
            let attack = """
                <form id="f" method="POST" action="\(cell.url)/v1/commands/abort"></form>
                <script>document.getElementById('f').submit();</script>
                """
            try await browser.navigate("data:text/html," + (attack.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            let answered = try await browser.waitFor(seconds: 5) {
                (try await browser.script("return document.body ? document.body.textContent : '';") as? String ?? "")
                    .contains("refused")
            }
            let page = try await browser.script("return document.body ? document.body.textContent : '';") as? String ?? ""
            #expect(answered && page.contains("cross-site request refused"), "answer: \(page)")

            // The session cookie alone (what a forger's request could carry) is not enough: the CSRF token is needed.
            let value = cookie?["value"] as? String ?? ""
            let noToken = try await cell.request("POST", "/v1/commands/abort", headers: ["Cookie": "lampcell_session=\(value)"])
            #expect(noToken.status == 403 && noToken.body.contains("X-CSRF-Token"), "\(noToken.body)")
            let state = try await cell.status().packml
            #expect(state.state == before.state && state.stopReason == before.stopReason, "the cell moved: \(state.state)")
            let commands = try EventHistory(path: cell.eventsPath, readOnly: true)
                .events(fromWallNanoseconds: 0, toWallNanoseconds: .max, kinds: [.command])
            #expect(!commands.contains { $0.code == "Abort" }, "\(commands.map(\.message))")
        }
    }

    @Test("an order id holding <script> is shown as text, on the overview and in the history")
    func scriptInAnOrderIDIsText() async throws {
        try await withPanel { cell, browser in
            try await logIn(browser)
            let loggedIn = try await browser.waitFor(seconds: 5) {
                try await browser.text("#operator-name") == "operator \(PanelCell.operatorName)"
            }
            try #require(loggedIn)
            let hostile = "<script>window.pwned=1</script><img src=x onerror=pwned=2>"
            try await browser.type("#order-input-id", hostile)
            try await browser.click("#order-assign")
            let shown = try await browser.waitFor(seconds: 5) { try await browser.text("#order-id") == hostile + " · LEFT" }
            let seen10 = (try? await browser.text("#order-id")) ?? ""
            let seen11 = (try? await browser.text("#command-result")) ?? ""
            #expect(shown, "order: \(seen10), \(seen11)")
            #expect(try await cell.status().order?.id == hostile)
            try await browser.navigate(cell.url + "/hmi/#alarms")
            let listed = try await browser.waitFor(seconds: 5) {
                (try await browser.text("#alarms-history") ?? "").contains("order " + hostile)
            }
            #expect(listed)
            let injected = try await browser.script(
                "return [typeof window.pwned, document.querySelectorAll('main script, main img').length];") as? [Any]
            #expect(injected?.first as? String == "undefined" && injected?.last as? Int == 0, "\(String(describing: injected))")
        }
    }
}
