import Foundation
import Simulation
import TraceStore

/// Budgets and reporting for a shrink.
public struct ShrinkOptions {
    /// Wall-clock seconds; when they run out the best result so far is returned.
    public var timeLimit: Double = 60
    public var maxReplays: Int = 5_000
    /// Called with a one-line status after each stage step (for a progress line on a terminal).
    public var progress: ((String) -> Void)?
    public init() {}
}

/// What a shrink found.
public struct ShrinkResult {
    public var originalRun: UInt64
    public var violation: Violation
    /// The original configuration with the interventions that remove everything not needed.
    public var configuration: SimulationConfiguration
    /// Deliveries of the whole recorded run.
    public var deliveriesBefore: Int
    /// Of those, the ones up to the violation (less when the run went on past it).
    public var deliveriesBeforeViolation: Int
    public var deliveriesAfter: Int
    public var externalBefore: Int
    public var externalAfter: Int
    public var replays: Int
    public var seconds: Double
    /// Replays spent per stage, in order.
    public var stages: [(name: String, replays: Int)]
    /// True when a budget ended the shrink before every stage was done.
    public var budgetExhausted: Bool
    /// Whether the result's candidates matched crash points by cause (`Replayer.learnCrashPoints`).
    public var crashesByCause = false
}

/// Minimizes a failing run: re-executes it from its recorded decisions (matched tolerantly, so a
/// removed message or fault does not wreck the rest of the schedule) with more and more of it left
/// out, keeping each removal after which the same violation (checker and kind) still occurs.
///
/// Stages: everything outside the violation's causal past; delta debugging of the external events
/// (faults, crash points, client operations); quiet stretches cut out of the run's middle;
/// message groups sharing a logical clock (type and key: a term, a view, a round); single
/// deliveries; fewer nodes. The stages repeat while they
/// make progress, in several searches that differ in how they match crash points and what they
/// try (`SearchPlan`); the smallest result wins. Every step is a deterministic function of the
/// recording, so the same run shrinks to the same result (unless the time limit cuts it short).
public final class Shrinker {
    let replayer: Replayer
    let makeSystem: (SimulationConfiguration) -> SystemDefinition
    let target: Violation
    /// The smallest node count a run may shrink to.
    let minimumNodes: Int

    public init(store: TraceStore, run: UInt64, minimumNodes: Int = 3,
                makeSystem: @escaping (SimulationConfiguration) -> SystemDefinition) throws {
        self.replayer = try Replayer(store: store, run: run)
        self.makeSystem = makeSystem
        self.minimumNodes = minimumNodes
        guard let violation = replayer.recordedViolation else {
            throw ShrinkError.noViolation(run: run)
        }
        self.target = violation
    }

    public var originalConfiguration: SimulationConfiguration { replayer.configuration }

    // MARK: Executing candidates

    /// One executed candidate: its violation and what it contained.
    struct Outcome {
        var violation: Violation?
        var deliveries: [Delivery] = []
        var external = ExternalEventLog()
        /// Client operation → how long it took (`UInt64.max`: it never completed).
        var pauses: [UInt64: UInt64] = [:]
        /// Client operation → the key it works on.
        var keys: [UInt64: UInt64] = [:]
        /// Per event: the node whose step it belongs to (nil for events of no node).
        var steps: [Step] = []
        /// Every send: when, and its fingerprint (`DroppedMessage` numbers the sends of each).
        var sends: [(time: UInt64, fingerprint: UInt64)] = []
        var size: Int { deliveries.count + externalCount }
        /// Fewer external events, or as many and no more events in all.
        func isSmaller(than other: Outcome) -> Bool {
            externalCount < other.externalCount || (externalCount == other.externalCount && size <= other.size)
        }
        var externalCount: Int { external.ticks.count + external.crashPoints.count + external.operations.count }
    }

    struct Delivery {
        var event: Int
        var sendEvent: Int
        var source: NodeID
        var target: NodeID
        var identity: Interventions.DroppedMessage
        var group: Interventions.MessageGroup
    }

    /// An event as the causal analysis needs it.
    struct Step {
        var time: UInt64
        var kind: EventKind
        var node: UInt32
        var peer: UInt32
        var id: UInt64
    }

    private(set) var replays = 0
    /// Wall-clock seconds of the longest candidate execution (only to keep within the time limit).
    private var longestReplay = 0.0
    /// How candidates match the recording's crash points: by what each was about (when learnt),
    /// or in the order they were reached. Part of the current state: a candidate's outcome holds
    /// for the matching it was executed with.
    private var crashesByCause = false

    func execute(_ configuration: SimulationConfiguration) -> Outcome {
        replays += 1
        let started = Date()
        defer { longestReplay = max(longestReplay, Date().timeIntervalSince(started)) }
        let simulator = Simulator(configuration: configuration, system: makeSystem(configuration), recorder: nil)
        simulator.configurationInRunStart = false
        simulator.trackExternalEvents()
        let feed = replayer.makeTolerantFeed(for: simulator, crashesByCause: crashesByCause)
        simulator.setDecisionFeed(feed)
        var outcome = Outcome()
        // Message id → (send event, fingerprint, occurrence, group).
        var sends: [UInt64: (event: Int, identity: Interventions.DroppedMessage, group: Interventions.MessageGroup)] = [:]
        var occurrences: [UInt64: UInt64] = [:]
        var requestKeys: [UInt64: UInt64] = [:]
        simulator.observer = { [unowned simulator] kind, time, node, peer, id, payload in
            let number = Int(simulator.eventCount - 1)
            outcome.steps.append(Step(time: time, kind: kind, node: node, peer: peer, id: id))
            switch kind {
            case .send:
                if let message = Message.decode(Array(payload)) {
                    let fingerprint = message.fingerprint(source: node, target: peer)
                    feed.currentMessage = fingerprint
                    outcome.sends.append((time, fingerprint))
                    let occurrence = occurrences[fingerprint, default: 0] + 1
                    occurrences[fingerprint] = occurrence
                    sends[id] = (number, Interventions.DroppedMessage(fingerprint: fingerprint, occurrence: occurrence),
                                 Interventions.MessageGroup(type: message.type, key: message.key))
                }
            case .deliver:
                feed.currentMessage = nil
                if let send = sends[id] {
                    outcome.deliveries.append(Delivery(event: number, sendEvent: send.event, source: peer, target: node,
                                                       identity: send.identity, group: send.group))
                }
            case .decision, .drop, .duplicate:
                break
            case .clientInvoke:
                feed.currentMessage = nil
                if let operation = ClientOperation.decode(Array(payload)) { requestKeys[id] = operation.key }
            default:
                feed.currentMessage = nil
            }
        }
        let result = simulator.run()
        outcome.violation = result.violation
        outcome.external = simulator.externalEvents ?? ExternalEventLog()
        var completed: [UInt64: UInt64] = [:]
        for step in outcome.steps where step.kind == .clientComplete { completed[step.id] = step.time }
        for operation in outcome.external.operations where Int(operation.event) < outcome.steps.count {
            let invoke = outcome.steps[Int(operation.event)]
            let end = completed[invoke.id]
            outcome.pauses[operation.identity] = end.map { $0 - invoke.time } ?? UInt64.max
            if let key = requestKeys[invoke.id] { outcome.keys[operation.identity] = key }
        }
        return outcome
    }

    func reproduces(_ outcome: Outcome) -> Bool {
        guard let violation = outcome.violation else { return false }
        return violation.checker == target.checker && violation.kind == target.kind
    }

    // MARK: Shrinking

    private var current: SimulationConfiguration!
    private var currentOutcome: Outcome!
    private var deadline: Date = .distantFuture
    private var maxReplays = 5_000
    private var progress: ((String) -> Void)?
    private var stage = ""
    private var exhausted = false
    private var stagePrefix = ""

    /// How one search goes. A search is a chain of accepted steps, and in a chaotic system a
    /// different step early on can end in a much smaller counterexample, so the shrinker runs
    /// several and keeps the smallest. Every search aims at external events first: it accepts a
    /// step that leaves some out even when more deliveries follow (a counterexample is read by
    /// its faults and operations first; the deliveries shrink after), tries ending the run right
    /// after the witnesses, leaves out whole keys' operations before single ones, and goes round
    /// the external events stages again, before removing deliveries, while they make progress.
    /// (Two searches that started the run at every tick before the witnesses, one of them taking
    /// only steps that made the run no larger in all, are gone: on the ten runs looked at search
    /// by search they gave the smallest result once, and the first two searches each need most
    /// of a budget.)
    private struct SearchPlan {
        /// Pin the crashes that fire (`pinCrashes`).
        var pinCrashes = false
        /// Match crash points by cause (when the recording's causes are known), not in order.
        var crashesByCause = false
        /// Its share of the replays, against the searches after it.
        var weight = 1
        /// Delta-debug all external events in the order they happened, before each kind alone:
        /// whole stretches of the run's history go at once, faults and operations together. (It
        /// replaced a search that aimed at the size in all from the same start, which on 14
        /// failing stale-read runs never gave the smallest result; this one gave two smaller.)
        var timeOrdered = false
    }
    /// Measured on eight failing commit-old-term runs and fourteen failing stale-read runs: a
    /// first search matching crash points by cause took the last commit-old-term failure of 200
    /// seeds from 153 external events to 7, and one matching them in order kept the stale-read
    /// results; each needs most of a budget to get there.
    private static let plans = [
        SearchPlan(crashesByCause: true, weight: 6),
        SearchPlan(weight: 4),
        SearchPlan(pinCrashes: true),
        SearchPlan(timeOrdered: true),
    ]
    private var plan = plans[0]
    /// The current search's share of the replays.
    private var searchMaxReplays = Int.max

    /// The wall clock only bounds how long the shrinker searches; it never reaches a simulation.
    /// Ends a little early rather than late: a replay is not started unless the longest one so
    /// far would still end before the deadline.
    private var budgetLeft: Bool {
        if replays >= maxReplays || Date().addingTimeInterval(longestReplay) >= deadline || Interrupts.stopRequested { exhausted = true }
        return !exhausted && replays < searchMaxReplays
    }

    /// Tries `interventions` on top of the current run; keeps them when the violation stays and
    /// the run is no larger.
    @discardableResult
    private func attempt(_ change: (inout Interventions) -> Void, nodes: Int? = nil,
                         configure: ((inout SimulationConfiguration) -> Void)? = nil) -> Bool {
        guard budgetLeft else { return false }
        var candidate = current!
        var interventions = candidate.interventions ?? Interventions()
        change(&interventions)
        candidate.interventions = interventions.normalized()
        if let nodes { candidate.nodes = nodes }
        configure?(&candidate)
        if candidate == current { return false }
        // Executions are deterministic: a candidate executed before that was not accepted then
        // (no violation, or no smaller than the run of that moment, which only got smaller
        // since) is not accepted now. About a fifth of a search's candidates come round again.
        let key = CandidateKey(configuration: candidate, crashesByCause: crashesByCause)
        if rejected.contains(key) { return false }
        let outcome = execute(candidate)
        // Every accepted step leaves out more and makes the run no larger.
        guard reproduces(outcome), outcome.isSmaller(than: currentOutcome) else {
            rejected.insert(key)
            return false
        }
        current = candidate
        currentOutcome = outcome
        report()
        return true
    }

    /// A candidate: its configuration and how its crash points are matched.
    private struct CandidateKey: Hashable {
        var configuration: SimulationConfiguration
        var crashesByCause: Bool
    }
    /// The candidates executed and not accepted.
    private var rejected = Set<CandidateKey>()

    /// Leaves out client operations, each keeping its client busy for as long as it took, so the
    /// client's later operations keep their time.
    private func skip(_ operations: [UInt64], in interventions: inout Interventions) {
        interventions.skippedOperations += operations
        for identity in operations {
            interventions.operationPauses.append(Interventions.OperationPause(
                identity: identity, nanoseconds: currentOutcome.pauses[identity] ?? 0))
        }
    }

    private func report() {
        progress?("shrink: \(stage), \(replays) replays, \(currentOutcome.deliveries.count) deliveries, \(currentOutcome.externalCount) external events")
    }

    /// Removes as many of `items` as it can, in halving chunks (delta debugging by complements).
    private func reduce<T>(_ items: [T], _ remove: @escaping ([T], inout Interventions) -> Void) {
        var remaining = items
        var chunk = max(1, remaining.count / 2)
        while !remaining.isEmpty && budgetLeft {
            var index = 0
            var progressed = false
            while index < remaining.count && budgetLeft {
                let slice = Array(remaining[index..<min(index + chunk, remaining.count)])
                if attempt({ remove(slice, &$0) }) {
                    remaining.removeSubrange(index..<min(index + chunk, remaining.count))
                    progressed = true
                } else {
                    index += chunk
                }
            }
            if chunk == 1 && !progressed { break }
            if !progressed { chunk = max(1, chunk / 2) } else { chunk = max(1, min(chunk, remaining.count / 2)) }
        }
        report()
    }

    public func shrink(options: ShrinkOptions = ShrinkOptions()) throws -> ShrinkResult {
        let started = Date()
        deadline = started.addingTimeInterval(options.timeLimit)
        maxReplays = options.maxReplays
        progress = options.progress
        replays = 0
        rejected.removeAll()
        longestReplay = 0
        exhausted = false
        var stages: [(String, Int)] = []
        func run(_ name: String, _ body: () -> Void) {
            guard budgetLeft else { return }
            stage = stagePrefix + name
            let before = replays
            body()
            stages.append((stagePrefix + name, replays - before))
        }

        // The recorded run as it was: its sizes are the sizes before, and its crash points tell
        // the feeds which crash point drew each recorded crash-point decision, so that a crash
        // stays with what its node was handling when others come or go.
        let whole = execute(replayer.configuration)
        replayer.learnCrashPoints(from: whole.external.crashDraws)

        // The counterexample ends at its violation (the recording may have run on past it).
        current = replayer.configuration
        current.stopOnViolation = true
        // When the witnesses happened.
        let reader = try replayer.store.reader(run: replayer.info.id)
        var recordedWitness = target.time
        if !target.events.isEmpty {
            recordedWitness = 0
            for number in target.events {
                if let event = try reader.event(at: number) { recordedWitness = max(recordedWitness, event.time) }
            }
        }
        // Cut the scenario soon after the witnesses (a quarter of their time plus half a second
        // later, without a liveness phase) when the violation still shows on the cut run: it does
        // for violations found as they happen and for prefix-closed checks such as
        // linearizability; not for convergence judged after quiescence. Every candidate, and the
        // recorded result, is then a whole run of a shorter scenario.
        let cut = recordedWitness + recordedWitness / 4 + 500_000_000
        var original: Outcome
        if target.checker != "liveness" && cut < current.durationNanoseconds + current.livenessNanoseconds {
            var shorter = current!
            shorter.durationNanoseconds = min(current.durationNanoseconds, cut)
            shorter.livenessNanoseconds = 0
            original = execute(shorter)
            if reproduces(original) {
                current = shorter
            } else {
                original = execute(current)
            }
        } else {
            original = execute(current)
        }
        guard reproduces(original) else {
            throw ShrinkError.notReproduced(run: replayer.info.id, found: original.violation)
        }
        currentOutcome = original
        // Sizes before: the whole recorded run, not only its part before the cut (and, for the
        // record, its deliveries up to the violation when it ran on past it).
        let violationTime = whole.violation?.time ?? UInt64.max
        let deliveriesToViolation = whole.deliveries.filter { $0.event < whole.steps.count && whole.steps[$0.event].time <= violationTime }.count

        // One search (of the several in `plans`, all from the same start): the stages, repeated
        // while they make progress. Each is a chain of accepted steps, and in a chaotic system a
        // different first step can lead to a much smaller counterexample.
        func search() {
            run("causal past") { causalStage() }
            if plan.pinCrashes { run("pin crashes") { pinCrashes() } }
            var pass = 0
            var externalPasses = 0
            while budgetLeft && pass < 8 {
                let before = currentOutcome.size
                let externalBefore = currentOutcome.externalCount
                let shapeBefore = (current.nodes, current.clients, current.durationNanoseconds + current.livenessNanoseconds)
                run("time") {
                    cutAfterWitnesses()
                    shiftEarlier()
                }
                run("clients") {
                    for clients in 1..<max(1, current.clients) where budgetLeft {
                        if attempt({ _ in }, configure: { $0.clients = clients }) { break }
                    }
                }
                run("external events") {
                    if plan.timeOrdered { reduce(externalsInTimeOrder()) { slice, i in self.leaveOut(slice, &i) } }
                    reduce(currentOutcome.external.ticks.map(\.ordinal)) { slice, i in i.skippedTicks += slice }
                    if let pinned = current.interventions?.pinnedCrashes {
                        reduce(pinned) { slice, i in
                            let gone = Set(slice)
                            i.pinnedCrashes = i.pinnedCrashes?.filter { !gone.contains($0) }
                        }
                    } else {
                        reduce(currentOutcome.external.crashPoints.map { External.crashPoint($0.ordinal, $0.identity) }) { slice, i in
                            self.leaveOut(slice, &i)
                        }
                    }
                    operationsByKey()
                    reduce(currentOutcome.external.operations.map(\.identity)) { slice, i in self.skip(slice, in: &i) }
                }
                run("external pairs") { removePairs() }
                run("cut") { cutAfterWitnesses() }
                run("quiet stretches") {
                    cutQuietStretches()
                    // Then the shorter stretches left, with a narrower margin: between a fault
                    // and the next operation there is often less than a tick and two margins.
                    cutQuietStretches(margin: Self.quietMargin / 3)
                }
                // Removing deliveries one by one is the dearest stage: while the external events
                // still shrink, go round them again first (each removal also takes its
                // deliveries along).
                if currentOutcome.externalCount < externalBefore && externalPasses < 8 {
                    externalPasses += 1
                    continue
                }
                pass += 1
                run("isolate nodes") { isolateNodes() }
                run("message groups") {
                    var seen = Set<Interventions.MessageGroup>()
                    var groups: [Interventions.MessageGroup] = []
                    for delivery in currentOutcome.deliveries where seen.insert(delivery.group).inserted { groups.append(delivery.group) }
                    reduce(groups) { slice, i in i.droppedGroups += slice }
                }
                run("deliveries") {
                    reduce(currentOutcome.deliveries.map(\.identity)) { slice, i in i.droppedMessages += slice }
                }
                run("liveness") {
                    // A shorter liveness phase, for violations judged after it (convergence) — not
                    // for a liveness violation, whose claim is that bound.
                    // With a planted bug, the shorter phase must still be long enough for the
                    // system without it to pass: a phase too short to converge in fails any
                    // system and proves nothing.
                    while target.checker != "liveness" && current.livenessNanoseconds >= 200_000_000 && budgetLeft {
                        let liveness = current.livenessNanoseconds / 2 / 1_000_000 * 1_000_000
                        let before = (current!, currentOutcome!)
                        if !attempt({ _ in }, configure: { $0.livenessNanoseconds = liveness }) { break }
                        if current.bug != nil && !passesWithoutBug(current) {
                            (current, currentOutcome) = before
                            report()
                            break
                        }
                    }
                }
                run("nodes") {
                    while current.nodes > minimumNodes && budgetLeft {
                        if !attempt({ _ in }, nodes: current.nodes - 1) { break }
                    }
                }
                if currentOutcome.size >= before && shapeBefore == (current.nodes, current.clients, current.durationNanoseconds + current.livenessNanoseconds) { break }
            }
        }
        let startConfiguration = current!
        let startOutcome = currentOutcome!
        var best: (configuration: SimulationConfiguration, outcome: Outcome, crashesByCause: Bool)?
        for (index, plan) in Self.plans.enumerated() {
            searchMaxReplays = Int.max
            guard budgetLeft else { break }
            // Each search may use its weight's share of what is left (what one does not use goes
            // to the next): half for the first, a third for the second, a twelfth for each of the
            // others. Capped searches did better than an uncapped first one: when it is stuck,
            // a later one more often finds a smaller counterexample than it would with the rest.
            let weights = Self.plans.map(\.weight)
            let share = Double(weights[index]) / Double(weights[index...].reduce(0, +))
            // The shares are in replays only, never in seconds: a search then ends at the same
            // point on a fast machine and a slow one, and the result depends on the wall clock
            // only when the whole time limit runs out.
            searchMaxReplays = replays + Int(Double(maxReplays - replays) * share)
            current = startConfiguration
            currentOutcome = startOutcome
            crashesByCause = false
            self.plan = plan
            // Every search starts from the same run; matched by cause, it is the same execution
            // (each recorded crash point keeps its own draws).
            if plan.crashesByCause && replayer.knowsCrashCauses {
                let outcome = execute(current)
                if reproduces(outcome) {
                    crashesByCause = true
                    currentOutcome = outcome
                }
            }
            stagePrefix = index == 0 ? "" : "search \(index + 1): "
            search()
            progress?("shrink: search \(index + 1): ended with \(currentOutcome.deliveries.count) deliveries, "
                      + "\(currentOutcome.externalCount) external events, \(replays) replays in all")
            // The smallest: fewest external events, then fewest events in all.
            if best == nil || !best!.outcome.isSmaller(than: currentOutcome) {
                best = (current, currentOutcome, crashesByCause)
            }
        }
        searchMaxReplays = Int.max
        if let best {
            current = best.configuration
            currentOutcome = best.outcome
            crashesByCause = best.crashesByCause
        }

        return ShrinkResult(originalRun: replayer.info.id, violation: currentOutcome.violation ?? target, configuration: current,
                            deliveriesBefore: whole.deliveries.count, deliveriesBeforeViolation: deliveriesToViolation,
                            deliveriesAfter: currentOutcome.deliveries.count,
                            externalBefore: whole.externalCount, externalAfter: currentOutcome.externalCount,
                            replays: replays, seconds: Date().timeIntervalSince(started),
                            stages: stages, budgetExhausted: exhausted, crashesByCause: crashesByCause)
    }

    /// Leaves out whole keys' operations (delta debugging over keys): a violation is usually
    /// about one key, and the operations on the others matter only through what they do to the
    /// system. The keys the violation's own operations use come last.
    private func operationsByKey() {
        let outcome = currentOutcome!
        var witnessKeys = Set<UInt64>()
        for number in outcome.violation?.events ?? [] where Int(number) < outcome.steps.count {
            let step = outcome.steps[Int(number)]
            guard step.kind == .clientInvoke || step.kind == .clientComplete else { continue }
            for operation in outcome.external.operations where Int(operation.event) < outcome.steps.count
                && outcome.steps[Int(operation.event)].id == step.id {
                if let key = outcome.keys[operation.identity] { witnessKeys.insert(key) }
            }
        }
        var order: [UInt64] = []
        var seen = Set<UInt64>()
        for operation in outcome.external.operations {
            if let key = outcome.keys[operation.identity], seen.insert(key).inserted { order.append(key) }
        }
        order = order.filter { !witnessKeys.contains($0) } + order.filter { witnessKeys.contains($0) }
        guard order.count > 1 else { return }
        reduce(order) { slice, i in
            let keys = Set(slice)
            self.skip(self.currentOutcome.external.operations.map(\.identity).filter { self.currentOutcome.keys[$0].map(keys.contains) ?? false },
                      in: &i)
        }
    }

    /// Cuts off, one at a time, the nodes the counterexample can do without: every message to and
    /// from such a node is lost, so all of its traffic goes at once (a follower's heartbeats and
    /// replies; removed one by one, each lost heartbeat would only start an election). The nodes
    /// with the least traffic go first.
    private func isolateNodes() {
        var traffic = [Int](repeating: 0, count: current.nodes)
        for delivery in currentOutcome.deliveries {
            if Int(delivery.source) < traffic.count { traffic[Int(delivery.source)] += 1 }
            if Int(delivery.target) < traffic.count { traffic[Int(delivery.target)] += 1 }
        }
        let isolated = Set(current.interventions?.isolatedNodes ?? [])
        let order = (0..<current.nodes).filter { !isolated.contains(UInt32($0)) && traffic[$0] > 0 }
            .sorted { (traffic[$0], $0) < (traffic[$1], $1) }
        for node in order where budgetLeft {
            attempt { i in i.isolatedNodes.append(UInt32(node)) }
        }
    }

    /// An external event of the current run, to leave out.
    private enum External: Equatable {
        /// A crash point by ordinal, or by identity when it has one (which stays with it when
        /// others come or go).
        case tick(UInt64), crashPoint(UInt64, UInt64?), operation(UInt64), pinnedCrash(Interventions.PinnedCrash)
    }

    private func leaveOut(_ items: [External], _ interventions: inout Interventions) {
        for item in items {
            switch item {
            case .tick(let ordinal): interventions.skippedTicks.append(ordinal)
            case .crashPoint(let ordinal, let identity):
                // Matched by cause, a crash point is named by its cause too; matched in order, by
                // its place in that order.
                if crashesByCause, let identity {
                    interventions.skippedCrashes.append(identity)
                } else {
                    interventions.skippedCrashPoints.append(ordinal)
                }
            case .pinnedCrash(let crash):
                if let index = interventions.pinnedCrashes?.firstIndex(of: crash) { interventions.pinnedCrashes!.remove(at: index) }
            case .operation(let identity): skip([identity], in: &interventions)
            }
        }
    }

    /// Every external event of the current run, in the order they happened: delta debugging over
    /// this list leaves out whole stretches of the run's history (its faults and operations
    /// together), where the lists by kind leave out only one kind of a stretch.
    private func externalsInTimeOrder() -> [External] {
        let log = currentOutcome.external
        var timed: [(order: UInt64, item: External)] = log.ticks.map { ($0.event, .tick($0.ordinal)) }
            + log.operations.map { ($0.event, .operation($0.identity)) }
        if let pinned = current.interventions?.pinnedCrashes {
            // A pinned crash sits at the first event from its time.
            let steps = currentOutcome.steps
            for crash in pinned {
                var low = 0, high = steps.count
                while low < high {
                    let middle = (low + high) / 2
                    if steps[middle].time < crash.notBefore { low = middle + 1 } else { high = middle }
                }
                timed.append((UInt64(low), .pinnedCrash(crash)))
            }
        } else {
            timed += log.crashPoints.map { ($0.event, .crashPoint($0.ordinal, $0.identity)) }
        }
        return timed.enumerated().sorted { ($0.element.order, $0.offset) < ($1.element.order, $1.offset) }.map(\.element.item)
    }

    /// Leaves out two external events at once, for those that are only needed together with
    /// another (a crash point and the operation that reaches it, a fault and its partner): after
    /// delta debugging no single one can go, but a pair sometimes can. Only for runs with a few
    /// external events left (the pairs grow with their square).
    private func removePairs() {
        func items() -> [External] {
            let log = currentOutcome.external
            let crashes: [External] = current.interventions?.pinnedCrashes.map { $0.map { .pinnedCrash($0) } }
                ?? log.crashPoints.map { .crashPoint($0.ordinal, $0.identity) }
            return log.ticks.map { .tick($0.ordinal) } + crashes + log.operations.map { .operation($0.identity) }
        }
        var list = items()
        guard list.count > 2 && list.count <= 40 else { return }
        var i = 0
        while i < list.count && budgetLeft {
            var j = i + 1
            var removed = false
            while j < list.count && budgetLeft {
                let pair = [list[i], list[j]]
                if attempt({ self.leaveOut(pair, &$0) }) {
                    removed = true
                    break
                }
                j += 1
            }
            if removed {
                // Identities are stable: carry on from the same position in the shorter list.
                list = items()
            } else {
                i += 1
            }
        }
        report()
    }

    /// Moves the run earlier in time: it starts as many nemesis ticks (and each client as many
    /// operations) into the recording as leaves a second before the first fault still in it, so
    /// the quiet stretch before the faults, with all its heartbeats, is gone.
    private func shiftEarlier() {
        let tickLength = current.nemesis.tickNanoseconds
        let log = currentOutcome.external
        // The witnesses' time in the current run.
        let witness = witnessTime
        // Start one, two or four seconds before the witnesses, dropping every fault, operation
        // and heartbeat before; then a second before the first
        // fault still in the run. A run that starts late must build the
        // violation again from a fresh cluster, with the recorded choices that follow; in a
        // system whose failures take many steps to set up, a later start now and then does, in
        // a much shorter run.
        var starts: [UInt64] = [1, 2, 4].compactMap { seconds in
            let lead = UInt64(seconds) * 1_000_000_000
            return witness > lead + tickLength ? (witness - lead) / tickLength * tickLength : nil
        }
        if let firstTick = log.ticks.min(by: { $0.ordinal < $1.ordinal }), Int(firstTick.event) < currentOutcome.steps.count {
            let time = currentOutcome.steps[Int(firstTick.event)].time / tickLength * tickLength
            let lead = (max(1, 1_000_000_000 / tickLength) + 1) * tickLength
            let start = time > lead ? time - lead : 0
            if start > 0 && !starts.contains(start) { starts.append(start) }
        }
        for start in starts where budgetLeft {
            if shift(to: start) { return }
        }
    }

    /// Cuts the quiet stretches between external events out of the run (all but a margin at each
    /// end, in whole ticks; the longest first): the run goes on from the state it reached with
    /// the recording's choices from after the stretch, so the heartbeats in it are gone.
    private func cutQuietStretches(margin: UInt64 = Shrinker.quietMargin) {
        let tickLength = current.nemesis.tickNanoseconds
        let steps = currentOutcome.steps
        let log = currentOutcome.external
        var times = (log.ticks.map(\.event) + log.crashPoints.map(\.event) + log.operations.map(\.event))
            .filter { Int($0) < steps.count }.map { steps[Int($0)].time }
        // Nor across a fault's end, a restart or an operation's end (a timeout keeps its time): a
        // stretch holds only heartbeats.
        for step in steps {
            switch step.kind {
            case .heal, .restart, .resume, .crash, .pause, .partition, .networkFault, .clockFault, .diskFault, .resourcePressure,
                 .clientComplete:
                times.append(step.time)
            default:
                break
            }
        }
        let witness = witnessTime
        guard witness > 0 else { return }
        times.append(witness)
        times.sort()
        var stretches: [(at: UInt64, end: UInt64)] = []
        for (earlier, later) in zip(times, times.dropFirst()) where later > earlier + 2 * margin + tickLength {
            let at = (earlier + margin + tickLength - 1) / tickLength * tickLength
            let end = (later - margin) / tickLength * tickLength
            if end > at { stretches.append((at, end)) }
        }
        // The longest first; the latest first among equals (each cut moves only what follows).
        stretches.sort { ($0.end - $0.at, $0.at) > ($1.end - $1.at, $1.at) }
        var cutSoFar: [(at: UInt64, end: UInt64)] = []
        for stretch in stretches where budgetLeft {
            // Where this stretch lies now, after the cuts made before it in this round.
            var shift: UInt64 = 0
            for done in cutSoFar where done.end <= stretch.at { shift += done.end - done.at }
            if cut(from: stretch.at - shift, to: stretch.end - shift) { cutSoFar.append(stretch) }
        }
    }

    static let quietMargin: UInt64 = 300_000_000

    /// Adjusts what the interventions name by time or by count for a run without the current
    /// run's stretch `[from, to)`: pinned crashes, skipped crash points and dropped messages in it
    /// go, those after it move up.
    private func renumber(leavingOut from: UInt64, _ to: UInt64, in interventions: inout Interventions) {
        interventions.pinnedCrashes = interventions.pinnedCrashes?.compactMap { crash in
            if crash.notBefore < from { return crash }
            if crash.notBefore < to { return nil }
            var moved = crash
            moved.notBefore -= to - from
            return moved
        }
        let times = currentOutcome.external.crashPointTimes
        let before = UInt64(times.prefix { $0 < from }.count)
        let inside = UInt64(times.prefix { $0 < to }.count) - before
        interventions.skippedCrashPoints = interventions.skippedCrashPoints.compactMap { ordinal in
            ordinal <= before ? ordinal : ordinal > before + inside ? ordinal - inside : nil
        }
        guard !interventions.droppedMessages.isEmpty else { return }
        // Per fingerprint: its sends before the stretch and in it.
        var counts: [UInt64: (before: UInt64, inside: UInt64)] = [:]
        for send in currentOutcome.sends {
            if send.time < from {
                counts[send.fingerprint, default: (0, 0)].before += 1
            } else if send.time < to {
                counts[send.fingerprint, default: (0, 0)].inside += 1
            }
        }
        interventions.droppedMessages = interventions.droppedMessages.compactMap { message in
            let count = counts[message.fingerprint] ?? (0, 0)
            if message.occurrence <= count.before { return message }
            if message.occurrence <= count.before + count.inside { return nil }
            return Interventions.DroppedMessage(fingerprint: message.fingerprint, occurrence: message.occurrence - count.inside)
        }
    }

    /// Cuts the run's stretch `[at, end)` (whole ticks) out.
    @discardableResult
    private func cut(from at: UInt64, to end: UInt64) -> Bool {
        let tickLength = current.nemesis.tickNanoseconds
        guard end > at, end < current.durationNanoseconds else { return false }
        let length = end - at
        // Each client goes on with its first operation from the stretch's end, as long after the
        // cut as it came after the stretch; one with none issues no more.
        var shifts = [UInt64](repeating: 0, count: current.clients)
        var resumes = [UInt64](repeating: UInt64.max, count: current.clients)
        for operation in currentOutcome.external.operations where Int(operation.event) < currentOutcome.steps.count {
            let time = currentOutcome.steps[Int(operation.event)].time
            let client = Int(operation.identity >> 32)
            guard time >= end, client < shifts.count, resumes[client] == UInt64.max else { continue }
            shifts[client] = (operation.identity & 0xFFFF_FFFF) - 1
            resumes[client] = time - end
        }
        return attempt({ i in
            var ticks = length / tickLength
            var cuts: [Interventions.TimeCut] = []
            for cut in i.timeCuts {
                if cut.at < at {
                    cuts.append(cut)
                } else if cut.at <= end {
                    ticks += cut.ticks  // inside the stretch: one cut now
                } else {
                    var moved = cut
                    moved.at -= length
                    cuts.append(moved)
                }
            }
            cuts.append(Interventions.TimeCut(at: at, ticks: ticks, operationShifts: shifts, resumeAfter: resumes))
            self.renumber(leavingOut: at, end, in: &i)
            i.timeCuts = cuts.sorted { $0.at < $1.at }
        }, configure: { $0.durationNanoseconds -= length })
    }

    /// When the current run's violation was witnessed: the latest of its witness events.
    private var witnessTime: UInt64 {
        var witness: UInt64 = 0
        for number in currentOutcome.violation?.events ?? [] where Int(number) < currentOutcome.steps.count {
            witness = max(witness, currentOutcome.steps[Int(number)].time)
        }
        return witness
    }

    /// Ends the scenario soon after the violation's witnesses, which may have moved earlier as
    /// the run shrank (only for runs already cut, without a liveness phase).
    private func cutAfterWitnesses() {
        guard current.livenessNanoseconds == 0 else { return }
        let witness = witnessTime
        guard witness > 0 else { return }
        // Right after the witnesses (a check made at the end of the run, such as
        // linearizability, usually still fails there, and every heartbeat after them is gone),
        // else a little later.
        for cut in [witness / 1_000_000 * 1_000_000 + 1_000_000, (witness + witness / 4 + 500_000_000) / 1_000_000 * 1_000_000]
            where cut < current.durationNanoseconds && budgetLeft {
            if attempt({ _ in }, configure: { $0.durationNanoseconds = cut }) { return }
        }
    }

    /// Starts the run `start` nanoseconds (a whole number of ticks) later in the recording.
    @discardableResult
    private func shift(to start: UInt64) -> Bool {
        let tickLength = current.nemesis.tickNanoseconds
        guard start >= tickLength, start + 100_000_000 < current.durationNanoseconds else { return false }
        let newShift = (current.interventions ?? Interventions()).recordingTime(start, tickNanoseconds: tickLength) / tickLength
        var shifts = current.interventions?.operationShifts ?? []
        while shifts.count < current.clients { shifts.append(0) }
        for operation in currentOutcome.external.operations where Int(operation.event) < currentOutcome.steps.count
            && currentOutcome.steps[Int(operation.event)].time < start {
            let client = Int(operation.identity >> 32)
            if client < shifts.count { shifts[client] = max(shifts[client], operation.identity & 0xFFFF_FFFF) }
        }
        let duration = current.durationNanoseconds - start
        return attempt({ i in
            i.tickShift = newShift
            i.operationShifts = shifts
            self.renumber(leavingOut: 0, start, in: &i)
            // Cuts before the new start are part of the shift; the others move with the run.
            i.timeCuts = i.timeCuts.compactMap { cut in
                guard cut.at > start else { return nil }
                var moved = cut
                moved.at -= start
                return moved
            }
        }, configure: { $0.durationNanoseconds = duration })
    }

    /// Turns the crash points that fire into pinned crashes (each at the first crash point its
    /// node reaches from the time it fired) and stops the others from drawing: leaving out an
    /// operation then no longer hands one crash point's draw to the next, which moved every later
    /// crash.
    private func pinCrashes() {
        guard current.interventions?.pinnedCrashes == nil else { return }
        let steps = currentOutcome.steps
        var pinned: [Interventions.PinnedCrash] = []
        for point in currentOutcome.external.crashPoints where Int(point.event) < steps.count {
            let fired = steps[Int(point.event)]
            // The node is down until its next restart (or the end of the run).
            var downFor: UInt64 = 50_000_000
            if let restart = steps[Int(point.event)...].first(where: { $0.kind == .restart && $0.node == fired.node }) {
                downFor = max(1, restart.time - fired.time)
            }
            pinned.append(Interventions.PinnedCrash(node: fired.node, notBefore: fired.time, downFor: downFor,
                                                     site: point.site.isEmpty ? nil : point.site))
        }
        attempt { i in i.pinnedCrashes = pinned }
    }

    /// Leaves out, in one step, every delivery, client operation and crash point that did not
    /// happen before the violation's witness events.
    private func causalStage() {
        guard let violation = currentOutcome.violation, !violation.events.isEmpty else { return }
        let steps = currentOutcome.steps
        let nodes = current.nodes
        // For each node, the last event of it that is in the causal past (-1: none).
        var frontier = [Int](repeating: -1, count: nodes)
        // Client request id → the node it went to.
        var requestTarget: [UInt64: UInt32] = [:]
        for step in steps where step.kind == .clientInvoke { requestTarget[step.id] = step.peer }
        for witness in violation.events where Int(witness) < steps.count {
            let step = steps[Int(witness)]
            switch step.kind {
            case .clientInvoke, .clientComplete:
                if let node = requestTarget[step.id], Int(node) < nodes { frontier[Int(node)] = max(frontier[Int(node)], Int(witness)) }
            case .violation, .runEnd, .runStart, .decision:
                break
            default:
                if Int(step.node) < nodes { frontier[Int(step.node)] = max(frontier[Int(step.node)], Int(witness)) }
            }
        }
        guard frontier.contains(where: { $0 >= 0 }) else { return }
        // One backward pass: a delivery inside a node's past puts its send inside the sender's.
        var inPast = Set<Int>()
        let deliveries = currentOutcome.deliveries
        for delivery in deliveries.reversed() {
            let target = Int(delivery.target)
            guard target < nodes, delivery.event <= frontier[target] else { continue }
            inPast.insert(delivery.event)
            let source = Int(delivery.source)
            if source < nodes { frontier[source] = max(frontier[source], delivery.sendEvent) }
        }
        let outside = deliveries.filter { !inPast.contains($0.event) }.map(\.identity)
        let operations = currentOutcome.external.operations.filter { operation in
            let step = steps[Int(operation.event)]
            return !(Int(step.peer) < nodes && Int(operation.event) <= frontier[Int(step.peer)])
        }.map { $0.identity }
        let crashPoints = currentOutcome.external.crashPoints.filter { point in
            let step = steps[Int(point.event)]
            return !(Int(step.node) < nodes && Int(point.event) <= frontier[Int(step.node)])
        }.map { External.crashPoint($0.ordinal, $0.identity) }
        if !attempt({ i in i.droppedMessages += outside; skip(operations, in: &i); leaveOut(crashPoints, &i) }) {
            if !attempt({ i in i.droppedMessages += outside }) {
                attempt { i in skip(operations, in: &i); leaveOut(crashPoints, &i) }
            }
        }
    }

    /// Whether `configuration`, recorded as the shrunk run would be and replayed tolerantly with
    /// its planted bug switched off, passes (as the regression traces are checked). Unknown
    /// (a scratch store that cannot be made) counts as passing.
    private func passesWithoutBug(_ configuration: SimulationConfiguration) -> Bool {
        replays += 2
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-shrink-\(getpid()).trace").path
        let slots = [Interrupts.removeOnInterrupt(path), Interrupts.removeOnInterrupt(path + "-lock")]
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + "-lock")
            slots.forEach(Interrupts.forget)
        }
        guard let store = try? TraceStore(path: path),
              let (run, _) = try? recordRun(configuration, into: store, toolVersion: "shrink") else { return true }
        var fixed = configuration
        fixed.bug = nil
        guard let replayer = try? Replayer(store: store, run: run),
              let report = try? replayer.replay(system: makeSystem(fixed), configuration: fixed, mode: .tolerant) else { return true }
        return report.violation == nil
    }

    /// Records the shrunk run in `store`, linked to the original; returns its id.
    public func record(_ result: ShrinkResult, into store: TraceStore, toolVersion: String) throws -> UInt64 {
        crashesByCause = result.crashesByCause
        let (run, outcome) = try recordRun(result.configuration, into: store, toolVersion: toolVersion, parentRun: result.originalRun)
        guard let violation = outcome.violation, violation.checker == target.checker, violation.kind == target.kind else {
            throw ShrinkError.notReproduced(run: replayer.info.id, found: outcome.violation)
        }
        return run
    }

    /// Executes `configuration` against the recording's decisions (tolerantly matched) and
    /// records it in `store`; returns the new run's id and its result.
    private func recordRun(_ configuration: SimulationConfiguration, into store: TraceStore, toolVersion: String,
                           parentRun: UInt64? = nil) throws -> (UInt64, SimulationResult) {
        let json = String(decoding: try JSONCoding.encoder.encode(configuration), as: UTF8.self)
        let recorder = try store.beginRun(seed: configuration.seed, configuration: json, toolVersion: toolVersion, parentRun: parentRun)
        let simulator = Simulator(configuration: configuration, system: makeSystem(configuration), recorder: recorder)
        simulator.trackExternalEvents()
        _ = replayer.attachTolerantFeed(to: simulator, crashesByCause: crashesByCause)
        return (recorder.runID, simulator.run())
    }
}

public enum ShrinkError: Error, CustomStringConvertible {
    case noViolation(run: UInt64)
    case notReproduced(run: UInt64, found: Violation?)

    public var description: String {
        switch self {
        case .noViolation(let run):
            "run \(run) passed: there is no violation to shrink (pick a failing run, e.g. 'latest-failure')"
        case .notReproduced(let run, let found):
            "re-executing run \(run) did not reproduce its violation (got \(found.map(\.description) ?? "no violation")); "
                + "replay it with 'chaostrace replay \(run)' to see where it diverges"
        }
    }
}
