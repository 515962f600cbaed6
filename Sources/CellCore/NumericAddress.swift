import Glibc

/// Numeric IP addresses, as the daemon accepts them where no resolver may be trusted: the panel's listening address
/// (`[panel] address`) and the panel's Host rule. Any thread.
public enum NumericAddress {
    /// True for an IPv4 (`127.0.0.1`) or IPv6 (`::1`) address literal, without brackets or port.
    public static func isValid(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
