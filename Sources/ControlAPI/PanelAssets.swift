import NIOHTTP1

/// The operator panel's files (`Sources/ControlAPI/Panel/`), built into the binary by SwiftPM (`embedInCode`): the
/// plant network has no internet, and the panel loads nothing from elsewhere. Thread: any (constants).
enum PanelAssets {
    static let page: [UInt8] = PackageResources.index_html
    static let script: [UInt8] = PackageResources.panel_js
    static let style: [UInt8] = PackageResources.panel_css

    /// The panel page's policy: only this server's own files may run or style it.
    static let pagePolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    /// The shift report's policy: no script at all; its one inline style sheet allowed (the report is a single
    /// file, the same as `lampctl report` writes; every text in it is escaped).
    static let reportPolicy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

    /// Headers of every panel answer: its Content-Security-Policy (`pagePolicy` unless the answer has its own), no
    /// framing (no clickjacking of the buttons), no content sniffing, no referrer.
    static func addSecurityHeaders(_ headers: inout HTTPHeaders, contentSecurityPolicy: String? = nil) {
        headers.add(name: "Content-Security-Policy", value: contentSecurityPolicy ?? pagePolicy)
        headers.add(name: "X-Frame-Options", value: "DENY")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
    }
}
