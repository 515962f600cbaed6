/// The LampCell software version, recorded with every lamp in the ledger and shown in status.
public enum LampCellVersion {
    public static let current = "0.4.0"
}
