import TraceStore

/// How a run ended.
public struct SimulationResult: Sendable {
    /// `stopped`: a budget (`maxEvents`) ended the run before its scenario did, without a
    /// violation; its final checks never ran, so it neither passed nor failed.
    public enum Verdict: String, Sendable { case pass, fail, stopped }
    public var verdict: Verdict
    public var violation: Violation?
    /// Events recorded (and digested).
    public var events: UInt64
    /// Rolling digest of every event: equal digests mean identical traces.
    public var digest: UInt64
    public var virtualEndTime: UInt64
    /// Why the run stopped early, if it did (a circuit breaker, a storage failure).
    public var stopReason: String?
    public var statistics: Statistics
    /// What a check could not decide (a linearizability search that ran out of steps): the run
    /// passed, but not every check vouches for it.
    public var warnings: [String] = []
}

/// Counters a run keeps, for summaries and tests.
public struct Statistics: Sendable, Equatable {
    public var messagesSent = 0
    public var messagesDelivered = 0
    public var messagesDropped = 0
    public var messagesDuplicated = 0
    public var timersFired = 0
    public var requests = 0
    public var requestsOk = 0
    public var faultsInjected = 0
    public var steps = 0
}

/// Runs a cluster in one thread under a seeded scheduler, in virtual time, recording every event
/// and decision. Deterministic: the same configuration and system give the same trace in any
/// process. Not thread-safe.
public final class Simulator {
    public let configuration: SimulationConfiguration
    let system: SystemDefinition
    let decider: Decider
    var queue = EventQueue()
    /// Virtual time now, in nanoseconds.
    public private(set) var time: UInt64 = 0
    let recorder: RunRecorder?
    /// The recorder without reference counting on the hot path (kept alive by `recorder`).
    private let unmanagedRecorder: Unmanaged<RunRecorder>?
    private var rollingDigest = StableDigest()
    public private(set) var eventCount: UInt64 = 0
    /// Sees every event as it is emitted (replay compares them with a recording). Set before `run`.
    public var observer: ((EventKind, UInt64, UInt32, UInt32, UInt64, UnsafeRawBufferPointer) -> Void)?
    public internal(set) var statistics = Statistics()
    /// Client operations, in invocation order.
    public private(set) var history: [HistoryEntry] = []
    private var outstanding: [UInt64: Int] = [:]  // request id → history index (lookups only)
    private var clientBusy: [Bool]
    var checkers: [Checker] = []
    private var stepCheckers: [Checker] = []
    public private(set) var violation: Violation?
    private var stopReason: String?
    private var stopped = false
    /// The run's closing (its final checks, notes, digests, violation and end) is being recorded:
    /// after a stop, only it is.
    private var finishing = false
    /// When the liveness phase began (every fault healed), if it has.
    public internal(set) var livenessStart: UInt64?

    // Nodes
    final class NodeSlot {
        var node: Node?
        var context: NodeContext!
        var up = true
        var paused = false
        var incarnation: UInt32 = 0
        var busyUntil: UInt64 = 0
        var processingDelay: UInt64 = 0
        var held: [Scheduled] = []
        var disk: SimulatedDisk
        var clock = SimulatedClock()
        var memoryUsed = 0
        var memoryBudget: Int? = nil
        var byzantine = false
        var byzantineActive = false
        var byzantineStrategies: [ByzantineStrategy] = ByzantineStrategy.allCases
        var byzantineHonesty: UInt64 = 2
        var sentHistory: [(target: NodeID, message: Message)] = []
        /// A crash point fired in the running handler: the node is dead from that point on, so
        /// nothing more it does reaches the world, and it crashes when the handler returns.
        var crashing = false
        /// For a pinned crash that fired: how long the node stays down.
        var pinnedDownFor: UInt64?
        /// The identity of the crash point that fired (when external events are tracked).
        var crashIdentity: UInt64?
        init(disk: SimulatedDisk) { self.disk = disk }
    }
    var slots: [NodeSlot] = []

    // Network
    struct InFlight {
        var message: Message
        var source: NodeID
        var target: NodeID
        var id: UInt64
    }
    var inFlight: [InFlight?] = []
    var freeInFlight: [Int] = []
    var nextMessageID: UInt64 = 1
    var network: NetworkConfiguration
    /// Per directed link (source * n + target): partitions blocking it, messages in flight, clogged until.
    var blocked: [Int]
    var linkLoad: [Int]
    /// Clogged links hold their messages (entries to deliver) until the clog heals.
    var clogged: [Bool]
    var cloggedHeld: [[Scheduled]]
    var extraDelay: UInt64 = 0

    // Timers
    private var nextTimerID: UInt64 = 1
    private var cancelledTimers: Set<UInt64> = []

    // Clients
    private var nextRequestID: UInt64 = 1

    // Nemesis
    var nemesis: NemesisState

    private var scratch: [UInt8] = []
    private let nodeCount: Int

    public init(configuration: SimulationConfiguration, system: SystemDefinition, recorder: RunRecorder?) {
        precondition(configuration.nodes >= 1 && configuration.nodes <= 4096, "node count out of range")
        self.configuration = configuration
        self.system = system
        self.recorder = recorder
        self.unmanagedRecorder = recorder.map { Unmanaged.passUnretained($0) }
        self.nodeCount = configuration.nodes
        self.decider = Decider(seed: configuration.seed, nodeCount: configuration.nodes)
        self.network = configuration.network
        let links = configuration.nodes * configuration.nodes
        blocked = [Int](repeating: 0, count: links)
        linkLoad = [Int](repeating: 0, count: links)
        clogged = [Bool](repeating: false, count: links)
        cloggedHeld = [[Scheduled]](repeating: [], count: links)
        clientBusy = [Bool](repeating: false, count: configuration.clients)
        nemesis = NemesisState(configuration: configuration.nemesis)
        scratch.reserveCapacity(256)
        operationOrdinals = [UInt64](repeating: 0, count: configuration.clients)
        if let interventions = configuration.interventions {
            self.interventions = InterventionState(interventions, clients: configuration.clients)
            // A run shifted in time starts at a later tick and later client operations.
            tickOrdinal = interventions.tickShift
            for (client, shift) in interventions.operationShifts.enumerated() where client < configuration.clients {
                operationOrdinals[client] = shift
            }
        }
    }

    /// Nemesis ticks so far (1-based ordinal of the current one).
    var tickOrdinal: UInt64 = 0
    /// Operations each client has started so far.
    var operationOrdinals: [UInt64]

    var interventions: InterventionState?

    /// Keeps a log of the run's external events (for a shrinker); call before `run`.
    public func trackExternalEvents() {
        if interventions == nil { interventions = InterventionState(Interventions(), clients: configuration.clients) }
    }

    /// The external events so far, when tracked.
    public var externalEvents: ExternalEventLog? { interventions?.log }

    /// Replaces live draws with recorded ones (replay).
    public func setDecisionFeed(_ feed: DecisionFeed?) { decider.feed = feed }

    /// The current instance of node `id`, or nil while it is crashed.
    public func node(_ id: NodeID) -> Node? { slots[Int(id)].node }

    /// Whether node `id` is up (not crashed; it may be paused).
    public func isUp(_ id: NodeID) -> Bool { slots[Int(id)].up }

    /// The disk of node `id` (for checkers).
    public func disk(_ id: NodeID) -> SimulatedDisk { slots[Int(id)].disk }

    // MARK: - Recording

    /// Records one event; returns its number.
    @discardableResult
    @inline(__always)
    func emit(_ kind: EventKind, node: UInt32 = 0, peer: UInt32 = 0, id: UInt64 = 0,
              payload: UnsafeRawBufferPointer) -> UInt64 {
        let number = eventCount
        eventCount += 1
        rollingDigest.mix(UInt64(kind.rawValue) << 56 ^ time)
        rollingDigest.mix(UInt64(node) << 32 | UInt64(peer))
        rollingDigest.mix(id)
        if !payload.isEmpty { rollingDigest.mix(payload) }
        if let observer { observer(kind, time, node, peer, id, payload) }
        if let unmanagedRecorder, !stopped || finishing {
            let failure: Error? = unmanagedRecorder._withUnsafeGuaranteedRef { recorder in
                do {
                    try recorder.append(kind: kind, time: time, node: node, peer: peer, id: id, payload: payload)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure {
                recordingFailure = recordingFailure ?? failure
                stop(reason: "recording failed: \(failure)")
            }
        }
        if budgetReason == nil && !stopped {
            if eventCount >= configuration.maxEvents {
                budgetReason = "event budget of \(configuration.maxEvents) reached"
                budgetRanOutAt = eventCount
            } else if eventCount & 1023 == 0, let wallTimeLimit, wallTimeLimit.expired() {
                budgetReason = wallTimeLimit.reason
                budgetRanOutAt = eventCount
            }
        }
        return number
    }

    @discardableResult
    @inline(__always)
    func emit(_ kind: EventKind, node: UInt32 = 0, peer: UInt32 = 0, id: UInt64 = 0, payload: [UInt8] = []) -> UInt64 {
        payload.withUnsafeBytes { emit(kind, node: node, peer: peer, id: id, payload: $0) }
    }

    /// Records an event whose payload is a message's encoding, without allocating.
    @discardableResult
    @inline(__always)
    private func emit(_ kind: EventKind, node: UInt32, peer: UInt32, id: UInt64, message: Message) -> UInt64 {
        scratch.removeAll(keepingCapacity: true)
        ByteWriter.appendVarint(UInt64(message.type), to: &scratch)
        ByteWriter.appendVarint(message.key, to: &scratch)
        scratch.append(contentsOf: message.body)
        return scratch.withUnsafeBytes { emit(kind, node: node, peer: peer, id: id, payload: $0) }
    }

    /// Why the recorder failed, when it did (the run stopped there).
    public private(set) var recordingFailure: Error?

    /// The event budget ended the run (`SimulationResult.Verdict.stopped`).
    private var budgetEnded = false
    /// A budget ran out during the step under way: the run stops when that step is done, so that
    /// every event the step made is recorded and a replay stops in the same place.
    private var budgetReason: String?
    /// How many events the run had made when its budget ran out.
    private var budgetRanOutAt: UInt64 = 0
    /// The start of the note a run stopped by a budget records before its closing digests, with
    /// the number of events it had made when the budget ran out (as the note's id): a replay of
    /// a run the wall clock stopped stops there too.
    public static let budgetNote = "run stopped: "

    private func stopIfOverBudget() {
        guard let budgetReason, !stopped else { return }
        stop(reason: budgetReason)
        budgetEnded = true
    }

    /// A circuit breaker on the wall clock, set by whoever runs the simulation (`run
    /// --max-seconds`): asked every 1,024 events, it ends the run, not judged, when it expires.
    /// It is the only place a clock reaches a run, and a run it ends depends on the machine's speed.
    public var wallTimeLimit: (reason: String, expired: () -> Bool)?

    func stop(reason: String) {
        if stopReason == nil { stopReason = reason }
        stopped = true
    }

    /// Records a violation (the first one wins) and stops the run, unless the configuration says
    /// to run the whole scenario anyway (what `run` records: the aftermath, and metrics over the
    /// whole run).
    func report(_ found: Violation) {
        guard violation == nil else { return }
        var found = found
        found.time = time
        // A checker that names no witness is judging the step just taken: its last event.
        if found.events.isEmpty && eventCount > 0 { found.events = [eventCount - 1] }
        violation = found
        if configuration.stopOnViolation ?? true { stopped = true }
    }

    // MARK: - Decisions

    /// Draws a value in 0 ..< bound for `stream` and records the decision.
    @inline(__always)
    func decide(stream: UInt32, tag: UInt32, below bound: UInt64) -> UInt64 {
        let value = decider.draw(stream: stream, tag: tag, below: bound)
        emit(.decision, node: stream, peer: tag, id: value, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        return value
    }

    /// True with probability `ratio`; no draw (and no decision) when the ratio is 0 or 1.
    @inline(__always)
    func chance(stream: UInt32, tag: UInt32, _ ratio: Ratio) -> Bool {
        if ratio.numerator == 0 { return false }
        if ratio.numerator >= ratio.denominator { return true }
        return decide(stream: stream, tag: tag, below: ratio.denominator) < ratio.numerator
    }

    // MARK: - Running

    /// Runs the whole scenario and returns its verdict.
    public func run() -> SimulationResult {
        begin()
        while !stopped, let entry = nextEntry() {
            time = entry.time
            dispatch(entry)
            if budgetReason != nil { stopIfOverBudget() }
        }
        return finish()
    }

    private var begun = false

    /// Starts the nodes, clients and nemesis without running anything else (for stepping).
    public func begin() {
        precondition(!begun, "begin called twice")
        begun = true
        start()
    }

    /// Runs every event due at or before `limit` (virtual nanoseconds), then sets the clock to it.
    /// For tests and scripted scenarios; `run()` does the whole scenario.
    public func run(until limit: UInt64) {
        if !begun { begin() }
        while !stopped, let next = queue.first, next.time <= limit, let entry = nextEntry() {
            time = entry.time
            dispatch(entry)
            if budgetReason != nil { stopIfOverBudget() }
        }
        if !stopped && limit > time { time = limit }
    }

    /// Ends a stepped run: final checks, digests and the verdict.
    public func end() -> SimulationResult {
        if !begun { begin() }
        return finish()
    }

    /// Ends the run early without a verdict of its own (a replay that diverged or reached `--until`).
    public func stopReplay() { stop(reason: "replay stopped") }

    /// Whether the run has stopped (a violation, a budget, the end).
    public var isStopped: Bool { stopped }

    /// Whether the run-start event carries the configuration as JSON (as every recorded run's
    /// does). A shrinker's candidate runs, never recorded and judged only by their events, leave it
    /// out: with thousands of interventions, encoding it took a third of each candidate's time.
    public var configurationInRunStart = true

    private func start() {
        if configurationInRunStart || unmanagedRecorder != nil {
            let configurationJSON = (try? String(decoding: JSONCoding.encoder.encode(configuration), as: UTF8.self)) ?? "{}"
            emit(.runStart, node: UInt32(nodeCount), id: configuration.seed, payload: Array(configurationJSON.utf8))
        } else {
            emit(.runStart, node: UInt32(nodeCount), id: configuration.seed)
        }
        checkers = system.makeCheckers()
        stepCheckers = checkers.filter(\.checksEveryStep)
        for id in 0..<nodeCount {
            let slot = NodeSlot(disk: SimulatedDisk(configuration: configuration.disk))
            slots.append(slot)
            slot.context = NodeContext(simulator: self, id: NodeID(id))
        }
        startNemesis()
        for id in 0..<nodeCount {
            let slot = slots[id]
            slot.node = system.makeNode(id: NodeID(id))
            slot.node!.start(slot.context)
            if slot.crashing { crashAtPoint(NodeID(id)) }
        }
        for client in 0..<configuration.clients {
            queue.push(time: configuration.clientIntervalNanoseconds / UInt64(configuration.clients) * UInt64(client), kind: .clientNext, a: UInt32(client))
        }
        queue.push(time: configuration.durationNanoseconds, kind: .livenessPhase)
        if configuration.digestIntervalNanoseconds > 0 {
            queue.push(time: configuration.digestIntervalNanoseconds, kind: .digest)
        }
        queue.push(time: configuration.endNanoseconds, kind: .end)
    }

    /// Takes the next entry; when several are due at the same instant, which runs first is a
    /// recorded decision.
    @inline(__always)
    private func nextEntry() -> Scheduled? {
        guard let first = queue.pop() else { return nil }
        guard let next = queue.first, next.time == first.time else { return first }
        var tied = [first]
        while tied.count < 64, let candidate = queue.first, candidate.time == first.time {
            tied.append(queue.pop()!)
        }
        time = first.time
        let chosen = Int(decide(stream: DecisionStream.scheduler, tag: DecisionTag.pick, below: UInt64(tied.count)))
        for (index, entry) in tied.enumerated() where index != chosen { queue.pushEntry(entry) }
        return tied[chosen]
    }

    private func dispatch(_ entry: Scheduled) {
        switch entry.kind {
        case .deliver: deliver(entry)
        case .timer: fireTimer(entry)
        case .request: arrive(entry)
        case .clientTimeout: clientTimeout(entry)
        case .clientNext: issueOperation(client: entry.a)
        case .nemesisTick: nemesisTick()
        case .heal: healFault(id: entry.b)
        case .livenessPhase: beginLivenessPhase()
        case .digest:
            recordDigests()
            if time + configuration.digestIntervalNanoseconds < configuration.endNanoseconds {
                queue.push(time: time + configuration.digestIntervalNanoseconds, kind: .digest)
            }
        case .end: stopped = true
        }
    }

    /// Holds or postpones an entry for a paused or busy node; returns true when it did.
    @inline(__always)
    private func deferIfUnavailable(_ entry: Scheduled, _ slot: NodeSlot) -> Bool {
        if slot.paused {
            slot.held.append(entry)
            return true
        }
        if slot.busyUntil > time {
            queue.pushEntry(Scheduled(time: slot.busyUntil, sequence: entry.sequence, kind: entry.kind, node: entry.node,
                                      a: entry.a, incarnation: entry.incarnation, b: entry.b))
            return true
        }
        return false
    }

    @inline(__always)
    private func afterHandling(_ slot: NodeSlot, _ node: NodeID) {
        statistics.steps += 1
        if slot.crashing { crashAtPoint(node) }
        interventions?.cause = nil
        if slot.processingDelay > 0 { slot.busyUntil = Swift.max(slot.busyUntil, time) + slot.processingDelay }
        if !stepCheckers.isEmpty {
            for checker in stepCheckers {
                if let found = checker.afterStep(self) { report(found); return }
            }
        }
    }

    private func finish() -> SimulationResult {
        finishing = true
        if violation == nil && stopReason == nil {
            for checker in checkers {
                if let found = checker.finish(self) { report(found); break }
            }
        }
        if violation == nil && stopReason == nil, let found = checkLiveness() { report(found) }
        if budgetEnded, let budgetReason {
            emit(.log, node: 0, id: budgetRanOutAt, payload: Array("\(Self.budgetNote)\(budgetReason) (after event #\(budgetRanOutAt - 1))".utf8))
        }
        recordDigests()
        if let violation {
            let json = (try? JSONCoding.encoder.encode(violation)).map { Array($0) } ?? []
            emit(.violation, node: 0, peer: UInt32(violation.events.count), id: violation.events.first ?? 0, payload: json)
        }
        let verdict: SimulationResult.Verdict = violation != nil ? .fail : budgetEnded ? .stopped : .pass
        emit(.runEnd, id: eventCount, payload: Array(verdict.rawValue.utf8))
        if let recorder {
            do {
                try recorder.finish(verdict: verdict.rawValue, summary: violation?.description ?? stopReason ?? warnings.first.map { "warning: \($0)" },
                                    virtualEndTime: time,
                                    digest: String(rollingDigest.value, radix: 16))
            } catch {
                recordingFailure = recordingFailure ?? error
                stopReason = "recording failed: \(error)"
            }
        }
        return SimulationResult(verdict: verdict, violation: violation, events: eventCount, digest: rollingDigest.value,
                                virtualEndTime: time, stopReason: stopReason, statistics: statistics, warnings: warnings)
    }

    /// Checks call this for what they could not decide; it reaches the run's result and summary.
    public func warn(_ text: String) { warnings.append(text) }
    public private(set) var warnings: [String] = []

    private func recordDigests() {
        for (id, slot) in slots.enumerated() {
            emit(.stateDigest, node: UInt32(id), peer: slot.up ? 1 : 0, id: slot.node?.stateDigest() ?? 0)
        }
    }

    /// After every fault healed, the system must make progress: some client operation invoked in
    /// the liveness phase must succeed before the run ends.
    private func checkLiveness() -> Violation? {
        // A scenario without a liveness phase (a shrunk run cut after its violation) judges none.
        guard let start = livenessStart, configuration.clients > 0, configuration.livenessNanoseconds > 0 else { return nil }
        let recovered = history.contains { $0.invokedAt >= start && $0.reply?.outcome == .ok }
        if recovered { return nil }
        // A shrunk run that left the liveness phase's operations out has nothing to judge.
        let leftOut = !(configuration.interventions?.skippedOperations.isEmpty ?? true)
        if leftOut && !history.contains(where: { $0.invokedAt >= start }) { return nil }
        let witnesses = history.filter { $0.invokedAt >= start }.prefix(5).map(\.invokeEvent)
        return Violation(checker: "liveness", kind: "no-recovery",
                         explanation: "no client operation succeeded within \(configuration.livenessNanoseconds / 1_000_000) ms after every fault healed",
                         events: Array(witnesses))
    }

    // MARK: - Network

    func send(from source: NodeID, to target: NodeID, _ original: Message) {
        precondition(Int(target) < nodeCount, "n\(source) sent to n\(target), which does not exist")
        guard source != target else { return }
        var message = original
        var from = source
        let sourceSlot = slots[Int(source)]
        guard !sourceSlot.crashing else { return }
        var extraByzantineDelay: UInt64 = 0
        if sourceSlot.byzantineActive {
            guard let lie = byzantineTransform(source: source, target: target, message) else { return }
            message = lie.message
            from = lie.from
            extraByzantineDelay = lie.delay
        }
        statistics.messagesSent += 1
        let id = nextMessageID
        nextMessageID += 1
        emit(.send, node: from, peer: target, id: id, message: message)
        if sourceSlot.byzantine && sourceSlot.sentHistory.count < 64 {
            sourceSlot.sentHistory.append((target, message))
        }
        let link = Int(from) * nodeCount + Int(target)
        if let interventions, interventions.dropsSend(message, from: from, to: target, healed: livenessStart != nil) {
            // Its latency is still drawn so later messages keep their recorded ones.
            _ = drawLatency()
            drop(from: from, to: target, id: id, reason: "removed")
            return
        }
        if blocked[link] > 0 {
            drop(from: from, to: target, id: id, reason: "partition")
            return
        }
        if chance(stream: DecisionStream.network, tag: DecisionTag.loss, network.loss) {
            drop(from: from, to: target, id: id, reason: "loss")
            return
        }
        if network.linkCapacity > 0 && linkLoad[link] >= network.linkCapacity {
            drop(from: from, to: target, id: id, reason: "link-full")
            return
        }
        schedule(InFlight(message: message, source: from, target: target, id: id), link: link, extra: extraByzantineDelay)
        if chance(stream: DecisionStream.network, tag: DecisionTag.duplicate, network.duplication) {
            statistics.messagesDuplicated += 1
            emit(.duplicate, node: from, peer: target, id: id)
            schedule(InFlight(message: message, source: from, target: target, id: id), link: link, extra: 0)
        }
    }

    @inline(__always)
    private func schedule(_ flight: InFlight, link: Int, extra: UInt64) {
        var delay = drawLatency() + extraDelay + extra
        if chance(stream: DecisionStream.network, tag: DecisionTag.reorder, network.reordering) {
            delay += decide(stream: DecisionStream.network, tag: DecisionTag.reorder, below: network.reorderDelayMaxNanoseconds / 1_000 + 1) * 1_000
        }
        let at = time + delay
        let index: Int
        if let free = freeInFlight.popLast() {
            inFlight[free] = flight
            index = free
        } else {
            inFlight.append(flight)
            index = inFlight.count - 1
        }
        linkLoad[link] += 1
        if clogged[link] {
            // Held until the clog heals; the delay then still applies.
            cloggedHeld[link].append(Scheduled(time: delay, sequence: 0, kind: .deliver, node: flight.target,
                                               a: flight.source, incarnation: 0, b: UInt64(index)))
            return
        }
        queue.push(time: at, kind: .deliver, node: flight.target, a: flight.source, b: UInt64(index))
    }

    /// A latency drawn from the network's model, at microsecond resolution.
    @inline(__always)
    private func drawLatency() -> UInt64 {
        switch network.latency {
        case .constant(let value):
            return value
        case .uniform(let low, let high):
            guard high > low else { return low }
            return low + decide(stream: DecisionStream.network, tag: DecisionTag.latency, below: (high - low) / 1_000 + 1) * 1_000
        case .exponential(let mean, let low):
            // Inverse CDF on a 16-bit uniform draw; the draw is the recorded decision.
            let draw = decide(stream: DecisionStream.network, tag: DecisionTag.latency, below: 65_536)
            let u = (Double(draw) + 0.5) / 65_536
            let extra = Swift.min(-Double(mean) * _log(u), Double(mean) * 20)
            return low + UInt64(extra) / 1_000 * 1_000
        }
    }

    private func drop(from source: NodeID, to target: NodeID, id: UInt64, reason: StaticString) {
        statistics.messagesDropped += 1
        emit(.drop, node: source, peer: target, id: id,
             payload: UnsafeRawBufferPointer(start: reason.utf8Start, count: reason.utf8CodeUnitCount))
    }

    private func deliver(_ entry: Scheduled) {
        let index = Int(entry.b)
        let slot = slots[Int(entry.node)]
        if slot.up && deferIfUnavailable(entry, slot) { return }
        guard let flight = inFlight[index] else { preconditionFailure("delivery of a freed message slot") }
        let link = Int(flight.source) * nodeCount + Int(flight.target)
        inFlight[index] = nil
        freeInFlight.append(index)
        linkLoad[link] -= 1
        if blocked[link] > 0 {
            drop(from: flight.source, to: flight.target, id: flight.id, reason: "partition")
            return
        }
        guard slot.up, let node = slot.node else {
            drop(from: flight.source, to: flight.target, id: flight.id, reason: "crashed")
            return
        }
        statistics.messagesDelivered += 1
        emit(.deliver, node: flight.target, peer: flight.source, id: flight.id, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        interventions?.cause = (1, UInt64(flight.message.type) << 32 | UInt64(flight.source))
        node.receive(flight.message, from: flight.source, slot.context)
        afterHandling(slot, entry.node)
    }

    // MARK: - Timers

    func setTimer(node: NodeID, after delay: UInt64, tag: UInt32) -> UInt64 {
        let id = nextTimerID
        nextTimerID += 1
        let slot = slots[Int(node)]
        guard !slot.crashing else { return id }
        emit(.timerSet, node: node, peer: tag, id: id)
        queue.push(time: time + delay, kind: .timer, node: node, a: tag, incarnation: slot.incarnation, b: id)
        return id
    }

    func cancelTimer(node: NodeID, timer: UInt64) {
        cancelledTimers.insert(timer)
    }

    private func fireTimer(_ entry: Scheduled) {
        let slot = slots[Int(entry.node)]
        guard slot.up, slot.incarnation == entry.incarnation, let node = slot.node else { return }
        if cancelledTimers.remove(entry.b) != nil { return }
        if deferIfUnavailable(entry, slot) { return }
        statistics.timersFired += 1
        emit(.timerFire, node: entry.node, peer: entry.a, id: entry.b)
        interventions?.cause = nil
        node.timer(entry.a, slot.context)
        afterHandling(slot, entry.node)
    }

    // MARK: - Clients

    /// Clients stop issuing operations for the last fifth of the liveness phase, so replicas can
    /// quiesce before the final checks.
    var quietFrom: UInt64 { configuration.endNanoseconds - configuration.livenessNanoseconds / 5 }

    private func issueOperation(client: UInt32) {
        guard !stopped, Int(client) < clientBusy.count, !clientBusy[Int(client)], time < quietFrom else { return }
        if let interventions {
            // Past a cut stretch, the client goes on with the recording's operations after it.
            while interventions.clientsPastCuts[Int(client)] < interventions.timeCuts.count
                    && interventions.timeCuts[interventions.clientsPastCuts[Int(client)]].at <= time {
                let cut = interventions.timeCuts[interventions.clientsPastCuts[Int(client)]]
                interventions.clientsPastCuts[Int(client)] += 1
                if Int(client) < cut.operationShifts.count {
                    operationOrdinals[Int(client)] = max(operationOrdinals[Int(client)], cut.operationShifts[Int(client)])
                }
                if Int(client) < cut.resumeAfter.count {
                    let delay = cut.resumeAfter[Int(client)]
                    guard delay != UInt64.max else { return }
                    if cut.at + delay > time {
                        if cut.at + delay < configuration.endNanoseconds { queue.push(time: cut.at + delay, kind: .clientNext, a: client) }
                        return
                    }
                }
            }
        }
        operationOrdinals[Int(client)] += 1
        let identity = UInt64(client) << 32 | operationOrdinals[Int(client)]
        decider.feed?.beginOperation(identity)
        let operation = system.nextOperation(client: client) { bound in
            self.decide(stream: DecisionStream.workload, tag: DecisionTag.workloadValue, below: bound)
        }
        let target = NodeID(decide(stream: DecisionStream.workload, tag: DecisionTag.workloadTarget, below: UInt64(nodeCount)))
        if let interventions {
            if interventions.skippedOperations.contains(identity) {
                // Left out: the client waits as long as the operation took (if the shrinker said),
                // thinks, and moves on to its next operation.
                let pause = interventions.pauses[identity] ?? 0
                guard pause != UInt64.max else { return }
                var next = time + pause + configuration.clientIntervalNanoseconds
                // A wait that reaches into a cut stretch ends at the cut, where the client goes on
                // as after the stretch.
                let passed = interventions.clientsPastCuts[Int(client)]
                if passed < interventions.timeCuts.count { next = min(next, max(time + 1, interventions.timeCuts[passed].at)) }
                if next < configuration.endNanoseconds { queue.push(time: next, kind: .clientNext, a: client) }
                return
            }
            interventions.log.operations.append((identity, eventCount))
        }
        let request = ClientRequest(id: nextRequestID, client: client, operation: operation)
        interventions?.requestIdentities[request.id] = identity
        nextRequestID += 1
        statistics.requests += 1
        let event = emit(.clientInvoke, node: client, peer: target, id: request.id, payload: operation.encoded())
        outstanding[request.id] = history.count
        history.append(HistoryEntry(request: request, target: target, invokedAt: time, invokeEvent: event))
        clientBusy[Int(client)] = true
        queue.push(time: time + 50_000, kind: .request, node: target, a: client, b: request.id)
        queue.push(time: time + configuration.clientTimeoutNanoseconds, kind: .clientTimeout, a: client, b: request.id)
    }

    private func arrive(_ entry: Scheduled) {
        guard let index = outstanding[entry.b] else { return }  // already timed out
        let slot = slots[Int(entry.node)]
        guard slot.up, let node = slot.node else {
            complete(index: index, Reply.fail)  // connection refused: it certainly did not happen
            return
        }
        if deferIfUnavailable(entry, slot) { return }
        if let interventions { interventions.cause = interventions.requestIdentities[entry.b].map { (2, $0) } }
        node.request(history[index].request, slot.context)
        afterHandling(slot, entry.node)
    }

    func reply(node: NodeID, to request: ClientRequest, _ reply: Reply) {
        guard !slots[Int(node)].crashing else { return }
        guard let index = outstanding[request.id] else { return }  // the client gave up already
        complete(index: index, reply)
    }

    private func clientTimeout(_ entry: Scheduled) {
        guard let index = outstanding[entry.b] else { return }
        complete(index: index, Reply(outcome: .info))
    }

    private func complete(index: Int, _ reply: Reply) {
        let request = history[index].request
        outstanding[request.id] = nil
        let event = emit(.clientComplete, node: request.client, peer: reply.outcome.rawValue, id: request.id, payload: reply.encoded())
        history[index].completedAt = time
        history[index].completeEvent = event
        history[index].reply = reply
        if reply.outcome == .ok { statistics.requestsOk += 1 }
        clientBusy[Int(request.client)] = false
        for checker in checkers {
            if let found = checker.operationCompleted(history[index], in: self) { report(found); return }
        }
        if time + configuration.clientIntervalNanoseconds < configuration.endNanoseconds {
            queue.push(time: time + configuration.clientIntervalNanoseconds, kind: .clientNext, a: request.client)
        }
    }

    // MARK: - Clock, disk, memory (for NodeContext)

    func clockReading(of node: NodeID) -> UInt64 { slots[Int(node)].clock.read(at: time) }

    func diskRead(node: NodeID, _ key: String) throws(DiskError) -> [UInt8]? {
        let slot = slots[Int(node)]
        slot.busyUntil = Swift.max(slot.busyUntil, time) + slot.disk.configuration.readLatencyNanoseconds
        if chance(stream: DecisionStream.disk, tag: DecisionTag.diskReadError, slot.disk.configuration.readErrors) {
            emit(.diskFault, node: node, peer: 1, payload: Array("read error \(key)".utf8))
            throw .ioError
        }
        guard var value = slot.disk.currentValue(key) else { return nil }
        if !value.isEmpty && chance(stream: DecisionStream.disk, tag: DecisionTag.diskReadCorruption, slot.disk.configuration.readCorruption) {
            let index = Int(decide(stream: DecisionStream.disk, tag: DecisionTag.diskReadCorruption, below: UInt64(value.count)))
            value[index] ^= 0x40
            emit(.diskFault, node: node, peer: 2, payload: Array("corrupt read \(key)".utf8))
        }
        return value
    }

    func diskWrite(node: NodeID, _ key: String, _ value: [UInt8]) throws(DiskError) {
        let slot = slots[Int(node)]
        guard !slot.crashing else { return }
        slot.busyUntil = Swift.max(slot.busyUntil, time) + slot.disk.configuration.writeLatencyNanoseconds
        if chance(stream: DecisionStream.disk, tag: DecisionTag.diskWriteError, slot.disk.configuration.writeErrors) {
            emit(.diskFault, node: node, peer: 3, payload: Array("write error \(key)".utf8))
            throw .ioError
        }
        let growth = value.count + 16 - (slot.disk.currentValue(key).map { $0.count + 16 } ?? 0)
        if growth > 0 && slot.disk.usedBytes + growth > slot.disk.capacityBytes {
            emit(.diskFault, node: node, peer: 4, payload: Array("disk full \(key)".utf8))
            throw .full
        }
        var target = key
        if chance(stream: DecisionStream.disk, tag: DecisionTag.diskMisdirect, slot.disk.configuration.misdirectedWrites) {
            let keys = slot.disk.durableKeys.filter { $0 != key }
            if !keys.isEmpty {
                target = keys[Int(decide(stream: DecisionStream.disk, tag: DecisionTag.diskMisdirect, below: UInt64(keys.count)))]
                emit(.diskFault, node: node, peer: 5, payload: Array("misdirected write \(key) -> \(target)".utf8))
            }
        }
        slot.disk.pending.append((target, value))
    }

    func diskDelete(node: NodeID, _ key: String) throws(DiskError) {
        let slot = slots[Int(node)]
        guard !slot.crashing else { return }
        slot.busyUntil = Swift.max(slot.busyUntil, time) + slot.disk.configuration.writeLatencyNanoseconds
        if chance(stream: DecisionStream.disk, tag: DecisionTag.diskWriteError, slot.disk.configuration.writeErrors) {
            emit(.diskFault, node: node, peer: 3, payload: Array("delete error \(key)".utf8))
            throw .ioError
        }
        slot.disk.pending.append((key, nil))
    }

    func diskFsync(node: NodeID) throws(DiskError) {
        let slot = slots[Int(node)]
        guard !slot.crashing else { return }
        slot.busyUntil = Swift.max(slot.busyUntil, time) + slot.disk.configuration.fsyncLatencyNanoseconds
        if chance(stream: DecisionStream.disk, tag: DecisionTag.diskWriteError, slot.disk.configuration.writeErrors) {
            emit(.diskFault, node: node, peer: 6, payload: Array("fsync error".utf8))
            throw .ioError
        }
        for write in slot.disk.pending { slot.disk.durable[write.key] = write.value }
        slot.disk.pending.removeAll()
    }

    func diskKeys(node: NodeID, prefix: String) -> [String] {
        let disk = slots[Int(node)].disk
        var present = Set(disk.durable.keys.filter { $0.hasPrefix(prefix) })
        for write in disk.pending where write.key.hasPrefix(prefix) {
            if write.value == nil { present.remove(write.key) } else { present.insert(write.key) }
        }
        return present.sorted()
    }

    func diskUsage(node: NodeID) -> (used: Int, capacity: Int) {
        let disk = slots[Int(node)].disk
        return (disk.usedBytes, disk.capacityBytes)
    }

    func allocate(node: NodeID, _ bytes: Int) -> Bool {
        let slot = slots[Int(node)]
        if let budget = slot.memoryBudget, slot.memoryUsed + bytes > budget {
            emit(.resourcePressure, node: node, peer: 1, id: UInt64(bytes), payload: Array("allocation refused".utf8))
            return false
        }
        slot.memoryUsed += bytes
        return true
    }

    func release(node: NodeID, _ bytes: Int) {
        let slot = slots[Int(node)]
        slot.memoryUsed = Swift.max(0, slot.memoryUsed - bytes)
    }
}

/// Stable JSON for configurations and violations.
public enum JSONCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

import Foundation

@inline(__always)
func _log(_ x: Double) -> Double { Foundation.log(x) }
