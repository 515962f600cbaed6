import Glibc

/// Who is on the other end of an accepted Unix-socket connection (SO_PEERCRED, SO_PEERGROUPS), as the kernel
/// recorded it at connect time. Any thread.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var processID: Int32
    public var userID: UInt32
    public var groupID: UInt32
    /// Supplementary groups (SO_PEERGROUPS; on kernels without it, the user's groups from the group database).
    public var groups: [UInt32]

    public init(processID: Int32, userID: UInt32, groupID: UInt32, groups: [UInt32]) {
        self.processID = processID
        self.userID = userID
        self.groupID = groupID
        self.groups = groups
    }

    /// Most supplementary groups read with SO_PEERGROUPS (Linux allows 65536; we ask again with room for all).
    static let maximumGroups = 65_536

    /// SO_PEERGROUPS (Linux 4.13; <asm-generic/socket.h>), not exported by the Glibc module.
    static let peerGroupsOption: Int32 = 59

    /// Reads the credentials of the peer of connected socket `descriptor`; nil when the kernel gives none.
    /// Thread: the accept thread.
    static func read(descriptor: Int32) -> PeerCredentials? {
        var credentials = KernelPeerCredentials()
        var length = socklen_t(MemoryLayout<KernelPeerCredentials>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
            length == socklen_t(MemoryLayout<KernelPeerCredentials>.size)
        else { return nil }
        var groups: [UInt32] = []
        var capacity = 64
        while true {
            var buffer = [gid_t](repeating: 0, count: capacity)
            var bytes = socklen_t(capacity * MemoryLayout<gid_t>.size)
            if getsockopt(descriptor, SOL_SOCKET, Self.peerGroupsOption, &buffer, &bytes) == 0 {
                groups = Array(buffer.prefix(Int(bytes) / MemoryLayout<gid_t>.size))
                break
            }
            if errno == ERANGE, capacity < maximumGroups {
                capacity = min(maximumGroups, max(capacity * 2, Int(bytes) / MemoryLayout<gid_t>.size))
                continue
            }
            groups = Self.databaseGroups(userID: credentials.uid, groupID: credentials.gid)
            break
        }
        return PeerCredentials(
            processID: credentials.pid, userID: credentials.uid, groupID: credentials.gid, groups: groups)
    }

    /// The user's groups from the group database (fallback for kernels without SO_PEERGROUPS).
    static func databaseGroups(userID: UInt32, groupID: UInt32) -> [UInt32] {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(userID, &entry, &buffer, buffer.count, &result) == 0, result != nil,
            let name = entry.pw_name
        else { return [] }
        var count: Int32 = 256
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, groupID, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, groupID, &groups, &count) >= 0 else { return [] }
        }
        return Array(groups.prefix(Int(count)))
    }

    public var description: String {
        "pid \(processID) uid \(userID) gid \(groupID) groups \(groups.map(String.init).joined(separator: ","))"
    }
}

/// Who may command the cell: root, and members (primary or supplementary) of one group. Any thread.
public struct CommandPolicy: Sendable, Equatable {
    /// The group's name as configured.
    public var groupName: String
    /// Its id, nil when the group does not exist (then only root may command).
    public var groupID: UInt32?

    public init(groupName: String, groupID: UInt32?) {
        self.groupName = groupName
        self.groupID = groupID
    }

    /// Resolves `groupName` in the group database. Start-up.
    public static func resolve(groupName: String) -> CommandPolicy {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        let status = getgrnam_r(groupName, &entry, &buffer, buffer.count, &result)
        return CommandPolicy(groupName: groupName, groupID: status == 0 && result != nil ? entry.gr_gid : nil)
    }

    /// True when `peer` may command: root, or in the group.
    public func allows(_ peer: PeerCredentials) -> Bool {
        if peer.userID == 0 { return true }
        guard let groupID else { return false }
        return peer.groupID == groupID || peer.groups.contains(groupID)
    }
}

/// Linux `struct ucred` (SO_PEERCRED), which the Glibc module hides behind _GNU_SOURCE: three 32-bit fields.
struct KernelPeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
