// Running a command to its end from a test: both pipes read on their own threads, a bound on its time.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a process printed and returned.
public struct ProcessResult: Sendable {
    /// The exit status, or the signal's number when `signalled`.
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
    /// It ran past the time allowed and was killed.
    public var timedOut: Bool
    /// A signal ended it (not the kill at the time limit).
    public var signalled: Bool
}

/// Runs `executable` with `arguments`; waits at most `timeoutSeconds` (then terminates it).
public func runProcess(_ executable: String, _ arguments: [String], timeoutSeconds: Double = 30) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes fully before waiting (a full pipe would block the child).
    let outputData = LockedData()
    let errorData = LockedData()
    let readers = [
        Thread { outputData.set(output.fileHandleForReading.readDataToEndOfFile()) },
        Thread { errorData.set(error.fileHandleForReading.readDataToEndOfFile()) },
    ]
    readers.forEach { $0.start() }
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    // SIGKILL: a child spawned from a test's worker thread inherits its blocked signal mask, so SIGTERM would stay
    // pending.
    let timedOut = process.isRunning
    if timedOut { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    while !(outputData.isSet && errorData.isSet) { Thread.sleep(forTimeInterval: 0.005) }
    return ProcessResult(
        status: process.terminationStatus, standardOutput: String(decoding: outputData.value, as: UTF8.self),
        standardError: String(decoding: errorData.value, as: UTF8.self), timedOut: timedOut,
        signalled: process.terminationReason == .uncaughtSignal && !timedOut)
}

/// Data filled in by another thread.
private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

