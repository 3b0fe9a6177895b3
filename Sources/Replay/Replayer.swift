import Foundation
import Simulation
import TraceStore

/// Where a replay first produced something other than the recording.
public struct Divergence: Codable, Sendable {
    public var event: UInt64
    public var recorded: String?
    public var replayed: String?
    /// Recorded events just before and after, and the replayed ones just before.
    public var recordedContext: [String]
    public var replayedContext: [String]
}

/// What a replay found.
public struct ReplayReport: Codable, Sendable {
    public var run: UInt64
    public var identical: Bool
    /// Events produced by the replay.
    public var events: UInt64
    public var recordedEvents: UInt64
    public var recordedViolation: Violation?
    public var violation: Violation?
    /// The recorded violation occurred again (same checker and kind); false when there was none.
    public var violationReproduced: Bool
    public var firstDivergence: Divergence?
    /// Tolerant replays: decisions taken from the recording, recorded ones never asked for, fresh ones.
    public var matched: Int
    public var missing: Int
    public var new: Int
    public var stoppedAt: UInt64?
}

/// Re-executes a recorded run from its recorded decisions and compares every event it produces
/// with the recording.
public final class Replayer {
    public enum Mode { case strict, tolerant }

    let store: TraceStore
    let info: RunInfo
    public let configuration: SimulationConfiguration
    let recordedViolation: Violation?
    let decisions: [Event]
    /// Stream << 32 | tag, and the value, of each decision (for strict replay).
    let decisionKeys: [UInt64]
    let decisionValues: [UInt64]
    /// For each decision, the fingerprint of the message whose send it directly followed.
    let decisionMessages: [UInt64?]
    /// For each workload decision, the client operation it was drawn for (client << 32 | ordinal).
    let decisionOperations: [UInt64?]
    /// For a run the wall clock stopped (`run --max-seconds`): after how many events the clock said
    /// so, and why, from the note the run recorded (`Simulator.budgetNote`); a replay whose clock
    /// says so there stops in the same place.
    let recordedStop: (events: UInt64, reason: String)?

    /// Reads the run's configuration and decisions. Fails when the run was not recorded by the
    /// simulator (no configuration at its start).
    public init(store: TraceStore, run: UInt64) throws {
        self.store = store
        self.info = try store.run(run)
        let reader = try store.reader(run: run)
        var configuration: SimulationConfiguration?
        var decisions: [Event] = []
        var messages: [UInt64?] = []
        var violation: Violation?
        var lastSend: UInt64?
        var operations: [UInt64?] = []
        var pendingWorkload: [Int] = []
        var ordinals: [UInt64] = []
        var stop: (events: UInt64, reason: String)?
        // Operations a shrunk run left out: they drew their workload decisions but were never invoked.
        var skipped = Set<UInt64>()
        var skippedGroups: UInt64 = 0
        // When the pending workload draws end with a target and no invocation followed, their
        // operation was left out: its draws go, in order, to the operations left out on replay.
        func settleLeftOut() {
            guard let last = pendingWorkload.last, decisions[last].peer == DecisionTag.workloadTarget else { return }
            for index in pendingWorkload { operations[index] = TolerantFeed.leftOut(skippedGroups) }
            skippedGroups += 1
            pendingWorkload.removeAll()
        }
        try reader.forEach { _, event in
            switch event.kind {
            case .runStart:
                configuration = try? JSONDecoder().decode(SimulationConfiguration.self, from: Data(event.payload))
                ordinals = [UInt64](repeating: 0, count: configuration?.clients ?? 0)
                for (client, shift) in (configuration?.interventions?.operationShifts ?? []).enumerated() where client < ordinals.count {
                    ordinals[client] = shift
                }
                skipped = Set(configuration?.interventions?.skippedOperations ?? [])
            case .decision:
                decisions.append(event.materialize())
                messages.append(event.node == DecisionStream.network ? lastSend : nil)
                operations.append(nil)
                if event.node == DecisionStream.workload {
                    // An operation's target is its last draw: draws that follow one with no
                    // invocation between belong to the next operation.
                    settleLeftOut()
                    pendingWorkload.append(decisions.count - 1)
                }
            case .clientInvoke:
                // The workload decisions since the last invocation were drawn for this operation;
                // its ordinal passes over the client's operations that were left out.
                let client = Int(event.node)
                if client < ordinals.count {
                    ordinals[client] += 1
                    while skipped.contains(UInt64(client) << 32 | ordinals[client]) { ordinals[client] += 1 }
                    for index in pendingWorkload { operations[index] = UInt64(client) << 32 | ordinals[client] }
                }
                pendingWorkload.removeAll()
                lastSend = nil
            case .send:
                lastSend = Message.decode(Array(event.payload))?.fingerprint(source: event.node, target: event.peer)
            case .drop, .duplicate:
                break
            case .violation:
                violation = try? JSONDecoder().decode(Violation.self, from: Data(event.payload))
                lastSend = nil
            case .log where event.node == 0 && event.payload.starts(with: Array(Simulator.budgetNote.utf8)):
                let note = String(decoding: event.payload.dropFirst(Simulator.budgetNote.utf8.count), as: UTF8.self)
                if note.hasPrefix("wall-time budget"), let end = note.range(of: " (after event #", options: .backwards) {
                    stop = (event.id, String(note[..<end.lowerBound]))
                }
                lastSend = nil
            default:
                lastSend = nil
            }
            return true
        }
        // The last operation was left out too when its draws end the recording uninvoked.
        settleLeftOut()
        guard let configuration else {
            throw TraceStoreError.corruptRun(path: store.path, run: run, reason: "it has no simulation configuration at its start, so it cannot be replayed")
        }
        self.configuration = configuration
        self.decisions = decisions
        self.decisionKeys = decisions.map { UInt64($0.node) << 32 | UInt64($0.peer) }
        self.decisionValues = decisions.map(\.id)
        self.decisionMessages = messages
        self.decisionOperations = operations
        self.recordedViolation = violation
        recordedStop = stop
    }

    /// Makes `simulator` stop where the recording was stopped by the wall clock, if it was.
    private func stopAsRecorded(_ simulator: Simulator) {
        guard let recordedStop else { return }
        simulator.wallTimeLimit = (recordedStop.reason, { [unowned simulator] in simulator.eventCount >= recordedStop.events })
    }

    /// Replays with systems made by `makeSystem`. A strict replay first runs once and compares the
    /// rolling digest of every event with the recording's; only when they differ does it run again
    /// event by event to name the first divergent event. Tolerant replays and `until` go straight
    /// to the event-by-event replay.
    public func replay(makeSystem: (SimulationConfiguration) -> SystemDefinition, configuration override: SimulationConfiguration? = nil,
                       mode: Mode = .strict, until: UInt64? = nil) throws -> ReplayReport {
        let configuration = override ?? self.configuration
        if mode == .strict, until == nil, let recordedDigest = info.digest {
            let simulator = Simulator(configuration: configuration, system: makeSystem(configuration), recorder: nil)
            stopAsRecorded(simulator)
            let feed = StrictFeed(keys: decisionKeys, values: decisionValues)
            simulator.setDecisionFeed(feed)
            let result = simulator.run()
            if String(result.digest, radix: 16) == recordedDigest && result.events == info.eventCount {
                var report = ReplayReport(run: info.id, identical: true, events: result.events, recordedEvents: info.eventCount,
                                          recordedViolation: recordedViolation, violation: result.violation, violationReproduced: false,
                                          firstDivergence: nil, matched: feed.position, missing: 0, new: 0, stoppedAt: nil)
                if let recordedViolation, let violation = result.violation {
                    report.violationReproduced = recordedViolation.checker == violation.checker && recordedViolation.kind == violation.kind
                }
                return report
            }
        }
        return try replay(system: makeSystem(configuration), configuration: configuration, mode: mode, until: until)
    }

    /// Replays with `system` (built for `configuration`, possibly with changed code or a bug
    /// switched off), comparing event by event. In strict mode the first event that differs ends the replay; in tolerant
    /// mode recorded decisions are matched to the new execution and it runs to the end.
    public func replay(system: SystemDefinition, configuration override: SimulationConfiguration? = nil,
                       mode: Mode = .strict, until: UInt64? = nil, recorder: RunRecorder? = nil) throws -> ReplayReport {
        let configuration = override ?? self.configuration
        let simulator = Simulator(configuration: configuration, system: system, recorder: recorder)
        stopAsRecorded(simulator)
        let cursor = RunCursor(reader: try store.reader(run: info.id))
        var report = ReplayReport(run: info.id, identical: true, events: 0, recordedEvents: info.eventCount,
                                  recordedViolation: recordedViolation, violation: nil, violationReproduced: false,
                                  firstDivergence: nil, matched: 0, missing: 0, new: 0, stoppedAt: nil)
        var failure: Error?
        var halted = false
        switch mode {
        case .strict:
            let feed = StrictFeed(keys: decisionKeys, values: decisionValues)
            simulator.setDecisionFeed(feed)
            simulator.observer = { [unowned simulator] kind, time, node, peer, id, payload in
                guard report.firstDivergence == nil, failure == nil, !halted else { return }
                let number = simulator.eventCount - 1
                let recorded: RawEvent?
                do { recorded = try cursor.nextRaw() } catch { failure = error; return }
                let same = recorded.map {
                    $0.kind == kind && $0.time == time && $0.node == node && $0.peer == peer && $0.id == id
                        && $0.payload.elementsEqual(payload)
                } ?? false
                if !same {
                    report.identical = false
                    let produced = Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: Array(payload))
                    report.firstDivergence = Divergence(event: number, recorded: recorded.map { Self.describe(number, $0.materialize()) },
                                                        replayed: Self.describe(number, produced), recordedContext: [],
                                                        replayedContext: [])
                    halted = true
                    simulator.stopReplay()
                }
                if let until, number >= until {
                    halted = true
                    simulator.stopReplay()
                }
            }
            let result = simulator.run()
            if let failure { throw failure }
            report.events = result.events
            report.violation = result.violation
            report.matched = feed.position
            if let divergence = report.firstDivergence {
                let low = divergence.event >= 3 ? divergence.event - 3 : 0
                let around = try store.reader(run: info.id).events(low..<divergence.event + 4)
                report.firstDivergence!.recordedContext = around.map { Self.describe($0.number, $0.event) }
                // Everything before the divergence matched the recording.
                report.firstDivergence!.replayedContext = around.filter { $0.number < divergence.event }.map { Self.describe($0.number, $0.event) }
            } else if let until, until < info.eventCount {
                report.stoppedAt = until
            } else if result.events != info.eventCount {
                // The replay ended before or after the recording did.
                report.identical = false
                let number = min(result.events, info.eventCount)
                let recorded = try store.reader(run: info.id).event(at: number)
                report.firstDivergence = Divergence(event: number, recorded: recorded.map { Self.describe(number, $0) },
                                                    replayed: number < result.events ? "(an event)" : "(the replay ended)",
                                                    recordedContext: [], replayedContext: [])
            }
        case .tolerant:
            let feed = attachTolerantFeed(to: simulator)
            let result = simulator.run()
            report.events = result.events
            report.violation = result.violation
            report.identical = result.events == info.eventCount && feed.new == 0 && feed.remaining == 0
            report.matched = feed.matched
            report.new = feed.new
            report.missing = feed.remaining
        }
        if let recordedViolation, let violation = report.violation {
            report.violationReproduced = recordedViolation.checker == violation.checker && recordedViolation.kind == violation.kind
        }
        return report
    }

    /// Drives `simulator` with this recording's decisions matched tolerantly: the feed learns
    /// each message as it is sent, so network decisions follow their message.
    public func attachTolerantFeed(to simulator: Simulator, crashesByCause: Bool = false) -> TolerantFeed {
        let feed = makeTolerantFeed(for: simulator, crashesByCause: crashesByCause)
        simulator.setDecisionFeed(feed)
        simulator.observer = { kind, _, node, peer, _, payload in
            if kind == .send, let message = Message.decode(Array(payload)) {
                feed.currentMessage = message.fingerprint(source: node, target: peer)
            } else if kind != .decision && kind != .drop && kind != .duplicate {
                feed.currentMessage = nil
            }
        }
        return feed
    }

    /// A feed that matches this recording's decisions to a changed execution.
    private lazy var tolerantTables = TolerantFeed.Tables(decisions, messages: decisionMessages, operations: decisionOperations,
                                                          recorded: configuration.interventions ?? Interventions(),
                                                          tickNanoseconds: configuration.nemesis.tickNanoseconds)

    /// Learns which crash point drew each recorded crash-point decision: `draws` is the
    /// `ExternalEventLog.crashDraws` of an execution of this recording that matched it exactly.
    /// Feeds made `crashesByCause` then match crash points by what they are about, and one the
    /// recording did not reach does not fire. Returns false (and changes nothing) when `draws` does not fit
    /// the recording's crash-point decisions.
    @discardableResult
    public func learnCrashPoints(from draws: [(tag: UInt32, identity: UInt64?)]) -> Bool {
        let recorded = decisions.filter { $0.node == DecisionStream.nemesis && TolerantFeed.crashTags.contains($0.peer) }.map(\.peer)
        guard recorded == draws.map(\.tag), draws.contains(where: { $0.identity != nil }) else { return false }
        crashTables = TolerantFeed.Tables(decisions, messages: decisionMessages, operations: decisionOperations,
                                             recorded: configuration.interventions ?? Interventions(),
                                             tickNanoseconds: configuration.nemesis.tickNanoseconds,
                                             crashPoints: draws.map(\.identity))
        return true
    }

    /// The tables with crash points matched by cause, once learnt.
    private var crashTables: TolerantFeed.Tables?
    public var knowsCrashCauses: Bool { crashTables != nil }

    /// `crashesByCause`: match crash points by what they are about (when learnt), not in order.
    func makeTolerantFeed(for simulator: Simulator, crashesByCause: Bool = false) -> TolerantFeed {
        let feed = TolerantFeed(tables: crashesByCause ? crashTables ?? tolerantTables : tolerantTables)
        feed.leftOutOperations = Set(configuration.interventions?.skippedOperations ?? [])
        // Both runs' times are compared on the timeline of the recording they come from: a run
        // that starts later in it, or cuts a stretch out, runs that much earlier on its own clock.
        feed.timeline = simulator.configuration.interventions ?? Interventions()
        feed.clock = { [unowned simulator] in simulator.time }
        return feed
    }

    static func describe(_ number: UInt64, _ event: Event) -> String {
        var text = "#\(number) t=\(event.time) \(event.kind.name) node \(event.node) peer \(event.peer) id \(event.id)"
        if !event.payload.isEmpty {
            let printable = event.payload.allSatisfy { $0 >= 32 && $0 < 127 }
            text += printable ? " \"\(String(decoding: event.payload.prefix(80), as: UTF8.self))\""
                : " [" + event.payload.prefix(24).map { String(format: "%02x", $0) }.joined() + "]"
        }
        return text
    }
}

/// Hands out the recorded decisions in order; a decision of another stream or tag than the one
/// asked for means the replay has diverged.
final class StrictFeed: DecisionFeed {
    /// Stream, tag and value of each decision, packed for a tight loop.
    let keys: [UInt64]
    let values: [UInt64]
    var position = 0

    init(keys: [UInt64], values: [UInt64]) {
        self.keys = keys
        self.values = values
    }

    func next(stream: UInt32, tag: UInt32, bound: UInt64) -> UInt64? {
        guard position < keys.count, keys[position] == UInt64(stream) << 32 | UInt64(tag) else { return nil }
        position += 1
        return values[position - 1]
    }
}

/// Matches recorded decisions to a changed execution: network decisions follow the message they
/// were drawn for (by fingerprint), nemesis decisions the tick they were drawn at and workload
/// decisions the client operation (so a tick or an operation left out, or a run moved in time,
/// does not hand its choices to another), the others their stream and tag in order. What the
/// recording lacks is drawn afresh.
public final class TolerantFeed: DecisionFeed {
    private var byMessage: [UInt64: [(time: UInt64, tag: UInt32, value: UInt64)]] = [:]
    private var byStream: [UInt64: [(time: UInt64, value: UInt64)]] = [:]
    private var streamPositions: [UInt64: Int] = [:]
    /// Per recorded nemesis tick (by ordinal): its inject decision, then the choices of its fault.
    private var ticks: [UInt64: [(tag: UInt32, value: UInt64)]] = [:]
    private let tickNanoseconds: UInt64
    private var tickDecisions: [(tag: UInt32, value: UInt64)] = []
    /// Per client operation: the workload decisions drawn for it.
    private var byOperation: [UInt64: [(tag: UInt32, value: UInt64)]] = [:]
    private var operationDecisions: [(tag: UInt32, value: UInt64)] = []
    private var inOperation = false
    public var currentMessage: UInt64?
    /// The execution's clock and how far its times lie before the recording's (a run that starts
    /// later in the recording). With a clock, the nodes' own random streams are matched by time: a
    /// draw takes the node's first unused recorded draw not earlier than itself. A node redraws its
    /// election timeout on every heartbeat, so one heartbeat more or fewer early on (an operation
    /// left out) would otherwise hand every later draw its neighbour's value and change who wins
    /// every later election; matched by time, the timeout drawn at a moment is the one recorded
    /// then. (Tried for the crash-point and other global streams too: worse counterexamples.)
    public var clock: (() -> UInt64)?
    /// The execution's shift and cuts, which place its clock on the recording's timeline.
    public var timeline = Interventions()
    /// The recording's timeline time of the execution's current stretch (its start, or its last
    /// cut): the global streams and the messages' choices drawn before it belong to what was left out.
    private var stretchStart: UInt64 {
        guard let clock else { return 0 }
        let now = clock()
        var start: UInt64 = 0
        for cut in timeline.timeCuts where cut.at <= now { start = cut.at }
        return timeline.recordingTime(start, tickNanoseconds: tickNanoseconds)
    }
    public private(set) var matched = 0
    public private(set) var new = 0
    private var total = 0

    /// A recording's decisions sorted into what a feed matches from. Built once per recording;
    /// each feed starts from a copy (a shrink makes thousands).
    public struct Tables {
        var byMessage: [UInt64: [(time: UInt64, tag: UInt32, value: UInt64)]] = [:]
        var byStream: [UInt64: [(time: UInt64, value: UInt64)]] = [:]
        var ticks: [UInt64: [(tag: UInt32, value: UInt64)]] = [:]
        var byOperation: [UInt64: [(tag: UInt32, value: UInt64)]] = [:]
        var byCrash: [UInt64: [(time: UInt64, tag: UInt32, value: UInt64)]] = [:]
        var crashesKeyed = false
        var total = 0
        let tickNanoseconds: UInt64

        /// `recorded`: the recording's own shift and cuts, which place its times on its timeline.
        /// `crashPoints`: the identity of each recorded crash-point decision, in order
        /// (`Replayer.learnCrashPoints`).
        public init(_ decisions: [Event], messages: [UInt64?], operations: [UInt64?] = [], recorded: Interventions = Interventions(),
                    tickNanoseconds: UInt64 = 1, crashPoints: [UInt64?] = []) {
            self.tickNanoseconds = max(1, tickNanoseconds)
            crashesKeyed = !crashPoints.isEmpty
            var crashDraw = 0
            var tick: UInt64 = 0
            for (index, decision) in decisions.enumerated() {
                total += 1
                let time = recorded.recordingTime(decision.time, tickNanoseconds: self.tickNanoseconds)
                var crash: UInt64?
                if crashesKeyed && decision.node == DecisionStream.nemesis && TolerantFeed.crashTags.contains(decision.peer) {
                    crash = crashDraw < crashPoints.count ? crashPoints[crashDraw] : nil
                    crashDraw += 1
                }
                if let crash {
                    byCrash[crash, default: []].append((time, decision.peer, decision.id))
                } else if let message = messages[index] {
                    byMessage[message, default: []].append((time, decision.peer, decision.id))
                } else if decision.node == DecisionStream.nemesis && TolerantFeed.tickTags.contains(decision.peer) {
                    // A tick's decisions are drawn at its time, a whole number of ticks in.
                    if decision.peer == DecisionTag.nemesisInject { tick = time / self.tickNanoseconds }
                    ticks[tick, default: []].append((decision.peer, decision.id))
                } else if index < operations.count, let operation = operations[index] {
                    byOperation[operation, default: []].append((decision.peer, decision.id))
                } else {
                    byStream[UInt64(decision.node) << 32 | UInt64(decision.peer), default: []].append((time, decision.id))
                }
            }
        }
    }

    public init(tables: Tables) {
        tickNanoseconds = tables.tickNanoseconds
        byMessage = tables.byMessage
        byStream = tables.byStream
        ticks = tables.ticks
        byOperation = tables.byOperation
        byCrash = tables.byCrash
        crashesKeyed = tables.crashesKeyed
        total = tables.total
    }

    /// `recorded`: the recording's own shift and cuts, which place its times on its timeline.
    public convenience init(_ decisions: [Event], messages: [UInt64?], operations: [UInt64?] = [],
                            recorded: Interventions = Interventions(), tickNanoseconds: UInt64 = 1) {
        self.init(tables: Tables(decisions, messages: messages, operations: operations, recorded: recorded,
                                 tickNanoseconds: tickNanoseconds))
    }

    static let crashTags: Set<UInt32> = [DecisionTag.crashPoint, DecisionTag.crashPointRestart]

    /// A crash point's draws, by its identity, once the recording's are known
    /// (`Replayer.learnCrashPoints`).
    private var byCrash: [UInt64: [(time: UInt64, tag: UInt32, value: UInt64)]] = [:]
    private var crashesKeyed = false
    private var currentCrash: UInt64?

    public func beginCrashPoint(_ identity: UInt64?) {
        currentCrash = identity
    }

    static let tickTags: Set<UInt32> = [DecisionTag.nemesisInject, DecisionTag.nemesisFault, DecisionTag.nemesisTarget,
                                        DecisionTag.nemesisDuration, DecisionTag.nemesisParameter]

    public var remaining: Int { total - matched }

    public func beginTick(_ ordinal: UInt64) {
        tickDecisions = ticks[ordinal] ?? []
    }

    /// The recording's operations that were left out: they drew their decisions but left no
    /// invocation to name them, so they are handed out in order to the operations left out now.
    var leftOutOperations = Set<UInt64>()
    private var leftOutSeen: UInt64 = 0

    /// The stand-in identity of the recording's `number`th left-out operation.
    static func leftOut(_ number: UInt64) -> UInt64 { UInt64.max - number }

    public func beginOperation(_ identity: UInt64) {
        inOperation = !byOperation.isEmpty
        var key = identity
        if leftOutOperations.contains(identity) {
            key = Self.leftOut(leftOutSeen)
            leftOutSeen += 1
        }
        operationDecisions = byOperation[key] ?? []
    }

    private func take(_ list: inout [(tag: UInt32, value: UInt64)], tag: UInt32, bound: UInt64) -> UInt64? {
        guard let index = list.firstIndex(where: { $0.tag == tag }) else { return nil }
        let value = list.remove(at: index).value
        return value < bound ? value : nil
    }

    /// Takes the first draw of `tag` from `queue` (in recorded order) not recorded before
    /// `start`, dropping the ones that were: they belong to what the execution left out.
    private static func take(_ queue: inout [(time: UInt64, tag: UInt32, value: UInt64)], tag: UInt32, notBefore start: UInt64,
                             bound: UInt64) -> UInt64? {
        var stale = 0
        while stale < queue.count && queue[stale].time < start { stale += 1 }
        if stale > 0 { queue.removeFirst(stale) }
        guard let index = queue.firstIndex(where: { $0.tag == tag }) else { return nil }
        let recorded = queue.remove(at: index).value
        return recorded < bound ? recorded : nil
    }

    public func next(stream: UInt32, tag: UInt32, bound: UInt64) -> UInt64? {
        var value: UInt64?
        if stream == DecisionStream.network {
            if let message = currentMessage, var queue = byMessage[message] {
                value = Self.take(&queue, tag: tag, notBefore: stretchStart, bound: bound)
                byMessage[message] = queue
            }
        } else if stream == DecisionStream.nemesis && crashesKeyed && Self.crashTags.contains(tag), let crash = currentCrash {
            // A crash point takes the draws recorded for the same node, kind and cause; one the
            // recording never reached does not fire (a crash it never had would be a new fault,
            // and would take some other crash point's draw).
            currentCrash = nil
            var queue = byCrash[crash] ?? []
            value = Self.take(&queue, tag: tag, notBefore: stretchStart, bound: bound)
            byCrash[crash] = queue
            if value == nil && tag == DecisionTag.crashPoint && bound > 1 {
                new += 1
                return 1
            }
        } else if stream == DecisionStream.nemesis && Self.tickTags.contains(tag) {
            value = take(&tickDecisions, tag: tag, bound: bound)
        } else if stream == DecisionStream.workload && inOperation {
            value = take(&operationDecisions, tag: tag, bound: bound)
        } else {
            let key = UInt64(stream) << 32 | UInt64(tag)
            var position = streamPositions[key, default: 0]
            if let queue = byStream[key] {
                if let clock, stream >= DecisionStream.firstNode {
                    let now = timeline.recordingTime(clock(), tickNanoseconds: tickNanoseconds)
                    while position < queue.count && queue[position].time < now { position += 1 }
                } else {
                    // A run that starts later in the recording, or cuts a stretch out, takes the
                    // stream from there on, not the draws made in what it left out.
                    let start = stretchStart
                    while position < queue.count && queue[position].time < start { position += 1 }
                }
                if position < queue.count {
                    streamPositions[key] = position + 1
                    if queue[position].value < bound { value = queue[position].value }
                }
            }
        }
        if let value {
            matched += 1
            return value
        }
        new += 1
        return nil
    }
}
