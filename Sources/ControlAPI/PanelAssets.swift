import NIOHTTP1

/// The operator panel's files (`Sources/ControlAPI/Panel/`), built into the binary by SwiftPM (`embedInCode`): the
/// plant network has no internet, and the panel loads nothing from elsewhere. Thread: any (constants).
enum PanelAssets {
    static let page: [UInt8] = PackageResources.index_html
    static let script: [UInt8] = PackageResources.panel_js
    static let style: [UInt8] = PackageResources.panel_css

    /// Headers of every panel answer: only this server's own files may run or style the page, no framing (no
    /// clickjacking of the buttons), no content sniffing, no referrer.
    static func addSecurityHeaders(_ headers: inout HTTPHeaders) {
        headers.add(
            name: "Content-Security-Policy",
            value: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                + "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        headers.add(name: "X-Frame-Options", value: "DENY")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
    }
}
