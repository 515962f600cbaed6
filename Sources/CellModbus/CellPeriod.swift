import CRealtime
import CellControl
import CellCore
import Glibc
import Modbus

/// The devices of a cell, and one period's exchange with all of them at once.
///
/// Every device's first request goes out before any reply is awaited; then replies are collected as they arrive
/// (`ppoll` over the connections' sockets; an in-memory transport's replies are there at once), and each driver
/// sends its next request, if it has one, as soon as its previous reply is in. The exchange therefore costs about
/// one round trip of the slowest device, not the sum of all of them. Each device keeps its own deadline (its
/// client's response timeout from its own send) and its own failure bookkeeping.
///
/// Thread: the control thread (or the virtual run's thread). `exchange` does not allocate.
public final class CellExchange: @unchecked Sendable {
    /// The arms, in the order of the cell definition (and of `ProcessImage.armInputs`).
    public let arms: [RA610Driver]
    public let station: TS200Driver
    /// The clock of the clients' deadlines.
    public let clock: any ModbusClock
    /// Every connection: the arms' (one each), then the station's.
    private let channels: [ModbusClient]
    /// For each channel: the arm's index, or `arms.count` for the station; and the station's connection index.
    private let channelDevice: [Int]
    private let channelConnection: [Int]
    private let pollFDs: UnsafeMutableBufferPointer<pollfd>
    private let pollChannels: UnsafeMutableBufferPointer<Int>

    /// Thread: start-up.
    public init(arms: [RA610Driver], station: TS200Driver, clock: any ModbusClock) {
        self.arms = arms
        self.station = station
        self.clock = clock
        var channels: [ModbusClient] = []
        var devices: [Int] = []
        var connections: [Int] = []
        for (index, arm) in arms.enumerated() {
            channels.append(arm.client)
            devices.append(index)
            connections.append(0)
        }
        for (index, client) in station.clients.enumerated() {
            channels.append(client)
            devices.append(arms.count)
            connections.append(index)
        }
        for channel in channels {
            precondition(channel.clock === clock, "\(channel.peerDescription) runs on another clock")
        }
        self.channels = channels
        channelDevice = devices
        channelConnection = connections
        pollFDs = .allocate(capacity: channels.count)
        pollFDs.initialize(repeating: pollfd())
        pollChannels = .allocate(capacity: channels.count)
        pollChannels.initialize(repeating: 0)
    }

    deinit {
        pollFDs.deallocate()
        pollChannels.deallocate()
    }

    /// Closes every connection (shutdown). Thread: the owner.
    public func close() {
        for arm in arms { arm.close() }
        station.close()
    }

    /// Sends the arms' outputs of `image` (what the previous step computed; one 0x17 each, write and read at once),
    /// completes what the last `dispatch` sent to the station, and reads every device into the inputs of `image`,
    /// all devices at once. Thread: the control thread. Does not allocate; returns by the latest deadline of the
    /// requests in flight (a connect attempt, bounded by the connect timeout, may come first).
    public func exchange(_ image: inout ProcessImage, nowNanoseconds: UInt64) {
        assert(image.armInputs.count == arms.count && image.armOutputs.count == arms.count, "one image slot per arm")
        for index in arms.indices {
            arms[index].beginExchange(image.armOutputs[index], nowNanoseconds: nowNanoseconds)
        }
        station.beginExchange(current: image.stationInputs, nowNanoseconds: nowNanoseconds)
        collectReplies()
        for index in arms.indices { arms[index].endExchange(into: &image.armInputs[index]) }
        station.endExchange(into: &image.stationInputs)
    }

    /// After the step: sends the station the writes its outputs in `image` ask for (or a due read-back), without
    /// waiting; the next `exchange` completes them. Thread: the control thread. Does not allocate or block.
    public func dispatch(_ image: ProcessImage) {
        station.dispatch(image.stationOutputs, current: image.stationInputs)
    }

    /// Completes requests as their replies arrive (or their deadlines pass) until none is in flight.
    private func collectReplies() {
        while true {
            var polled = 0
            var earliestDeadline = UInt64.max
            var completedAny = false
            for channel in channels.indices where channels[channel].hasPendingRequest {
                let client = channels[channel]
                let descriptor = client.readinessDescriptor
                if descriptor < 0 {
                    // No socket to wait on (in memory): the reply, if any, is there.
                    advance(channel)
                    completedAny = true
                    continue
                }
                pollFDs[polled] = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                pollChannels[polled] = channel
                polled += 1
                earliestDeadline = min(earliestDeadline, client.pendingDeadlineNanoseconds)
            }
            if completedAny { continue }
            if polled == 0 { return }
            let now = clock.nowNanoseconds
            let ready = lampcell_poll_ns(pollFDs.baseAddress, UInt(polled), earliestDeadline > now ? earliestDeadline - now : 0)
            let after = clock.nowNanoseconds
            for slot in 0..<polled {
                let channel = pollChannels[slot]
                let client = channels[channel]
                guard client.hasPendingRequest else { continue }
                // Readable (a reply, a close, an error), past its deadline, or poll failed: receive decides.
                if ready < 0 || pollFDs[slot].revents != 0 || after >= client.pendingDeadlineNanoseconds {
                    advance(channel)
                }
            }
        }
    }

    /// Hands a channel's reply (or its timeout) to its driver.
    @inline(__always)
    private func advance(_ channel: Int) {
        let device = channelDevice[channel]
        if device < arms.count {
            arms[device].continueExchange()
        } else {
            station.continueExchange(connection: channelConnection[channel])
        }
    }
}

/// Timings of one period's phases, ns of the period's clock.
public struct PeriodPhaseTimes: Sendable, Equatable {
    /// The exchange with every device.
    public var exchangeNanoseconds: UInt64 = 0
    /// The controller's step.
    public var stepNanoseconds: UInt64 = 0
    /// The dispatch of the station's writes (sent, not awaited).
    public var dispatchNanoseconds: UInt64 = 0
}

/// The control period: one definition for the plant (`ControlLoop`, on a real-time thread over libmodbus) and for
/// virtual time (`VirtualCell`, over in-memory transports).
///
/// A period exchanges with every device at once (the arms' outputs of the previous step go out, this period's inputs
/// come in; `CellExchange`), steps the controller on the fresh inputs, and dispatches the station's writes. The
/// arms' setpoints go out with the next period's exchange (a constant one-period delay); the station's writes go out
/// at once, and their replies come back while the period waits for its next deadline, so that they never lengthen the
/// read phase.
///
/// Thread: the control thread (or the virtual run's thread). `run`, `exchange` and `step` do not allocate.
public final class CellPeriod: @unchecked Sendable {
    public let controller: CellController
    public let devices: CellExchange
    /// The process image exchanged with the devices.
    public var image: ProcessImage

    /// Thread: start-up.
    public init(controller: CellController, devices: CellExchange) {
        precondition(devices.arms.count == controller.cell.arms.count, "one driver per arm of the cell")
        self.controller = controller
        self.devices = devices
        image = ProcessImage(armCount: devices.arms.count)
    }

    /// Exchange, step, dispatch. `nowNanoseconds` and `wallNanoseconds` are the controller's monotonic and wall clocks at
    /// the period's start (in virtual time they differ from the devices' clock by a constant); the step sees them
    /// advanced by the exchange's duration. Returns the phases' times, measured on the devices' clock.
    @discardableResult
    public func run(nowNanoseconds: UInt64, wallNanoseconds: UInt64) -> PeriodPhaseTimes {
        let clock = devices.clock
        let exchangeStart = clock.nowNanoseconds
        exchange()
        let stepStart = clock.nowNanoseconds
        let exchangeNanoseconds = stepStart &- exchangeStart
        step(nowNanoseconds: nowNanoseconds &+ exchangeNanoseconds, wallNanoseconds: wallNanoseconds &+ exchangeNanoseconds)
        let dispatchStart = clock.nowNanoseconds
        dispatch()
        return PeriodPhaseTimes(
            exchangeNanoseconds: exchangeNanoseconds, stepNanoseconds: dispatchStart &- stepStart,
            dispatchNanoseconds: clock.nowNanoseconds &- dispatchStart)
    }

    /// The exchange phase alone (a virtual run checks invariants between the phases). The drivers and their
    /// clients see the devices' clock, the one their deadlines and backoff are kept in.
    public func exchange() {
        devices.exchange(&image, nowNanoseconds: devices.clock.nowNanoseconds)
    }

    /// The step phase alone.
    public func step(nowNanoseconds: UInt64, wallNanoseconds: UInt64) {
        controller.step(&image, nowNanoseconds: nowNanoseconds, wallNanoseconds: wallNanoseconds)
    }

    /// The dispatch phase alone: the station's writes of this step go out.
    public func dispatch() {
        devices.dispatch(image)
    }
}
