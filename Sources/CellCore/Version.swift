/// The LampCell software version: the one definition. The ledger records it with every lamp, the API reports it in
/// status and metrics, and `lampcelld`, `lampctl` and `lampsim --version` print it. Any thread.
public enum LampCellVersion {
    public static let current = "0.4.0"
}
