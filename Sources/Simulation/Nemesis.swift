import TraceStore

/// The nemesis's state: which faults it may use, how often, and what it has injected.
struct NemesisState {
    var configuration: NemesisConfiguration
    /// Faults in use with their weights (after swarm selection).
    var faults: [(kind: FaultKind, weight: UInt64)] = []
    var failureRate: Ratio
    var active: [ActiveFault] = []
    var nextFaultID: UInt64 = 1
    var injecting = true
    /// Nodes whose disks took lasting damage (torn or misdirected writes), in the order damaged.
    /// Such faults never reach more nodes than the blast radius over the whole run, so a system
    /// that replicates its data can always recover.
    var damagedDisks: [NodeID] = []

    init(configuration: NemesisConfiguration) {
        self.configuration = configuration
        self.failureRate = configuration.failureRate
    }
}

/// A fault in force, with what its heal must undo.
struct ActiveFault {
    var id: UInt64
    var kind: FaultKind
    var nodes: [NodeID]
    /// Directed links it blocks (partitions) or clogs.
    var links: [Int] = []
}

extension Simulator {
    /// Nodes that may be touched at once by one fault (and by all node faults together).
    var blastRadius: Int {
        let configured = nemesis.configuration.blastRadius
        let minority = Swift.max(1, (configuration.nodes - 1) / 2)
        return configured > 0 ? Swift.min(configured, configuration.nodes) : minority
    }

    func startNemesis() {
        let suiteFaults = nemesis.configuration.only ?? FaultKind.faults(of: nemesis.configuration.suite)
        var faults = suiteFaults.map { (kind: $0, weight: UInt64(1)) }
        let byzantine = Swift.min(nemesis.configuration.byzantineNodes, Swift.max(0, (configuration.nodes - 1) / 3))
        for index in 0..<byzantine {
            let slot = slots[configuration.nodes - 1 - index]
            slot.byzantine = true
            slot.byzantineStrategies = nemesis.configuration.byzantineStrategies.isEmpty ? ByzantineStrategy.allCases : nemesis.configuration.byzantineStrategies
            slot.byzantineHonesty = nemesis.configuration.byzantineHonestyWeight
        }
        if nemesis.configuration.swarm && !faults.isEmpty {
            // Swarm testing: the seed picks a subset of the faults, their weights and the rate.
            let stream = DecisionStream.swarm
            var chosen: [(kind: FaultKind, weight: UInt64)] = []
            for fault in faults where decide(stream: stream, tag: DecisionTag.swarm, below: 2) == 1 {
                chosen.append((fault.kind, 1 + decide(stream: stream, tag: DecisionTag.swarm, below: 10)))
            }
            if chosen.isEmpty {
                let pick = Int(decide(stream: stream, tag: DecisionTag.swarm, below: UInt64(faults.count)))
                chosen = [(faults[pick].kind, 1)]
            }
            faults = chosen
            let base = nemesis.failureRate
            // Between a quarter and twice the configured rate, capped at 1.
            let scale = 1 + decide(stream: stream, tag: DecisionTag.swarm, below: 8)
            nemesis.failureRate = Ratio(Swift.min(base.numerator * scale, base.denominator * 4), base.denominator * 4)
            if suiteFaults.contains(.loss) {
                network.loss = Ratio(decide(stream: stream, tag: DecisionTag.swarm, below: 3), 100)
            }
        }
        nemesis.faults = faults
        emit(.log, node: 0, payload: Array("nemesis: \(faults.map { "\($0.kind.rawValue)×\($0.weight)" }.joined(separator: " ")) rate \(nemesis.failureRate)".utf8))
        if !faults.isEmpty && !nemesis.failureRate.isNever {
            queue.push(time: nemesis.configuration.tickNanoseconds, kind: .nemesisTick)
        }
    }

    func nemesisTick() {
        guard nemesis.injecting else { return }
        if time + nemesis.configuration.tickNanoseconds < configuration.durationNanoseconds {
            queue.push(time: time + nemesis.configuration.tickNanoseconds, kind: .nemesisTick)
        }
        let stream = DecisionStream.nemesis
        if let interventions {
            // Past a cut stretch, the ticks go on as the recording's after it.
            while interventions.ticksPastCuts < interventions.timeCuts.count
                    && interventions.timeCuts[interventions.ticksPastCuts].at <= time {
                tickOrdinal += interventions.timeCuts[interventions.ticksPastCuts].ticks
                interventions.ticksPastCuts += 1
            }
        }
        tickOrdinal += 1
        decider.feed?.beginTick(tickOrdinal)
        // Drawn even at a rate of 1, so that every tick leaves a decision a replay can align on.
        let rate = nemesis.failureRate
        guard decide(stream: stream, tag: DecisionTag.nemesisInject, below: rate.denominator) < rate.numerator else { return }
        if let interventions, interventions.skippedTicks.contains(tickOrdinal) { return }
        // Faults of a kind already in force are not stacked.
        let available = nemesis.faults.filter { fault in !nemesis.active.contains { $0.kind == fault.kind } }
        guard !available.isEmpty else { return }
        let total = available.reduce(0) { $0 + $1.weight }
        var pick = decide(stream: stream, tag: DecisionTag.nemesisFault, below: total)
        var kind = available[0].kind
        for fault in available {
            if pick < fault.weight { kind = fault.kind; break }
            pick -= fault.weight
        }
        let span = nemesis.configuration.faultMaxNanoseconds - nemesis.configuration.faultMinNanoseconds
        var duration = nemesis.configuration.faultMinNanoseconds
            + decide(stream: stream, tag: DecisionTag.nemesisDuration, below: span / 1_000_000 + 1) * 1_000_000
        // A quarter of the faults are blips of 1–50 ms: a crash that restarts at once, a brief
        // partition. Races between a fault and a protocol step live there.
        if decide(stream: stream, tag: DecisionTag.nemesisDuration, below: 4) == 0 {
            duration = (1 + decide(stream: stream, tag: DecisionTag.nemesisDuration, below: 50)) * 1_000_000
        }
        let firstEvent = eventCount
        if let fault = inject(kind) {
            interventions?.log.ticks.append((tickOrdinal, firstEvent))
            statistics.faultsInjected += 1
            nemesis.active.append(fault)
            let healAt = Swift.min(time + duration, configuration.durationNanoseconds)
            queue.push(time: healAt, kind: .heal, b: fault.id)
        }
    }

    /// Draws `count` distinct nodes (a recorded decision each), in the order drawn.
    func drawNodes(_ count: Int, from candidates: [NodeID]) -> [NodeID] {
        var pool = candidates
        var chosen: [NodeID] = []
        // Half the time, aim the first pick at a node in a special role (a leader).
        if count > 0, let primary = pool.firstIndex(where: { slots[Int($0)].node?.isPrimary == true }),
           decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisTarget, below: 2) == 0 {
            chosen.append(pool.remove(at: primary))
        }
        while chosen.count < count && !pool.isEmpty {
            let index = Int(decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisTarget, below: UInt64(pool.count)))
            chosen.append(pool.remove(at: index))
        }
        return chosen
    }

    private var allNodes: [NodeID] { (0..<NodeID(configuration.nodes)).map { $0 } }

    /// Node faults touch at most the blast radius in all, counting nodes already down or paused.
    private func nodesForNodeFault() -> [NodeID] {
        let touched = slots.filter { !$0.up || $0.paused }.count
        let room = blastRadius - touched
        guard room > 0 else { return [] }
        let count = 1 + Int(decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: UInt64(room)))
        let candidates = allNodes.filter { slots[Int($0)].up && !slots[Int($0)].paused }
        return drawNodes(count, from: candidates)
    }

    private func faultPayload(_ kind: FaultKind, _ detail: String = "") -> [UInt8] {
        Array((kind.rawValue + (detail.isEmpty ? "" : " " + detail)).utf8)
    }

    /// The leading nodes of `nodes` whose disks may be damaged together without exceeding the
    /// bound (counted as a group, not one by one).
    func nodesMayDamage(_ nodes: [NodeID]) -> [NodeID] {
        var damaged = nemesis.damagedDisks
        var allowed: [NodeID] = []
        for node in nodes where damaged.contains(node) || damaged.count < blastRadius {
            if !damaged.contains(node) { damaged.append(node) }
            allowed.append(node)
        }
        return allowed
    }

    func noteDiskDamage(_ node: NodeID) {
        if !nemesis.damagedDisks.contains(node) { nemesis.damagedDisks.append(node) }
    }

    /// Applies a fault now; nil when it could not apply (nothing to touch).
    func inject(_ kind: FaultKind) -> ActiveFault? {
        var fault = ActiveFault(id: nemesis.nextFaultID, kind: kind, nodes: [])
        nemesis.nextFaultID += 1
        let n = configuration.nodes
        switch kind {
        case .crash, .crashTorn:
            fault.nodes = nodesForNodeFault()
            if kind == .crashTorn { fault.nodes = nodesMayDamage(fault.nodes) }
            guard !fault.nodes.isEmpty else { return nil }
            for node in fault.nodes {
                if kind == .crashTorn { noteDiskDamage(node) }
                crash(node, torn: kind == .crashTorn)
            }
        case .pause:
            fault.nodes = nodesForNodeFault()
            guard !fault.nodes.isEmpty else { return nil }
            for node in fault.nodes {
                slots[Int(node)].paused = true
                emit(.pause, node: node, id: fault.id)
            }
        case .partitionHalves, .partitionMajority, .partitionIsolate, .partitionRing, .partitionBridge, .partitionOneWay:
            guard n >= 2 else { return nil }
            let order = drawNodes(n, from: allNodes)
            var links: [Int] = []
            func cut(_ a: [NodeID], _ b: [NodeID], bothWays: Bool = true) {
                for x in a { for y in b where x != y {
                    links.append(Int(x) * n + Int(y))
                    if bothWays { links.append(Int(y) * n + Int(x)) }
                } }
            }
            let detail: String
            switch kind {
            case .partitionHalves:
                let half = n / 2
                cut(Array(order[..<half]), Array(order[half...]))
                detail = "\(order[..<half].map { "n\($0)" }.joined(separator: ",")) | \(order[half...].map { "n\($0)" }.joined(separator: ","))"
            case .partitionMajority:
                let minority = Swift.max(1, Swift.min(blastRadius, (n - 1) / 2))
                cut(Array(order[..<minority]), Array(order[minority...]))
                detail = "minority \(order[..<minority].map { "n\($0)" }.joined(separator: ","))"
            case .partitionIsolate:
                cut([order[0]], Array(order[1...]))
                detail = "isolate n\(order[0])"
            case .partitionRing:
                // Each node sees itself and its ring neighbours within reach: every node has a
                // majority in view, but no two majorities coincide.
                let reach = (n / 2 + 1) / 2
                for (i, x) in order.enumerated() {
                    for (j, y) in order.enumerated() where i != j {
                        let distance = Swift.min((i - j + n) % n, (j - i + n) % n)
                        if distance > reach { links.append(Int(x) * n + Int(y)) }
                    }
                }
                detail = "ring \(order.map { "n\($0)" }.joined(separator: ","))"
            case .partitionBridge:
                // Two halves that only the bridge node (order[0]) connects.
                let rest = Array(order[1...])
                let half = rest.count / 2
                cut(Array(rest[..<half]), Array(rest[half...]))
                detail = "bridge n\(order[0]) between \(rest[..<half].map { "n\($0)" }.joined(separator: ",")) and \(rest[half...].map { "n\($0)" }.joined(separator: ","))"
            default:
                // One way: messages from the first group to the second are lost, not back.
                let half = Swift.max(1, n / 2)
                cut(Array(order[..<half]), Array(order[half...]), bothWays: false)
                detail = "one-way \(order[..<half].map { "n\($0)" }.joined(separator: ",")) -/-> \(order[half...].map { "n\($0)" }.joined(separator: ","))"
            }
            for link in links { blocked[link] += 1 }
            fault.links = links
            emit(.partition, node: 0, peer: UInt32(links.count), id: fault.id, payload: faultPayload(kind, detail))
        case .loss:
            network.loss = Ratio(10 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 40), 100)
            emit(.networkFault, node: 0, id: fault.id, payload: faultPayload(kind, "\(network.loss)"))
        case .duplication:
            network.duplication = Ratio(10 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 40), 100)
            emit(.networkFault, node: 0, id: fault.id, payload: faultPayload(kind, "\(network.duplication)"))
        case .reordering:
            network.reordering = Ratio(20 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 50), 100)
            emit(.networkFault, node: 0, id: fault.id, payload: faultPayload(kind, "\(network.reordering)"))
        case .delay:
            extraDelay = (5 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 95)) * 1_000_000
            emit(.networkFault, node: 0, id: fault.id, payload: faultPayload(kind, "+\(extraDelay / 1_000_000)ms"))
        case .clog:
            let nodes = drawNodes(1, from: allNodes)
            fault.nodes = nodes
            for node in nodes {
                for other in 0..<n where other != Int(node) {
                    fault.links.append(Int(node) * n + other)
                    fault.links.append(other * n + Int(node))
                }
            }
            for link in fault.links { clogged[link] = true }
            emit(.networkFault, node: nodes[0], id: fault.id, payload: faultPayload(kind, "links of n\(nodes[0])"))
        case .memoryPressure, .cpuStarvation, .storageFull, .diskReadErrors, .diskWriteErrors, .diskCorruption, .misdirectedWrites:
            let count = 1 + Int(decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: UInt64(blastRadius)))
            fault.nodes = drawNodes(count, from: allNodes)
            if kind == .misdirectedWrites { fault.nodes = nodesMayDamage(fault.nodes) }
            guard !fault.nodes.isEmpty else { return nil }
            for node in fault.nodes {
                if kind == .misdirectedWrites { noteDiskDamage(node) }
                let slot = slots[Int(node)]
                var detail = ""
                switch kind {
                case .memoryPressure:
                    slot.memoryBudget = slot.memoryUsed
                    detail = "budget \(slot.memoryUsed) bytes"
                case .cpuStarvation:
                    slot.processingDelay = (1 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 20)) * 1_000_000
                    detail = "+\(slot.processingDelay / 1_000_000)ms per event"
                case .storageFull:
                    slot.disk.capacityBytes = slot.disk.usedBytes
                    detail = "capacity \(slot.disk.capacityBytes) bytes"
                case .diskReadErrors: slot.disk.configuration.readErrors = Ratio(1, 4)
                case .diskWriteErrors: slot.disk.configuration.writeErrors = Ratio(1, 4)
                case .diskCorruption: slot.disk.configuration.readCorruption = Ratio(1, 10)
                default: slot.disk.configuration.misdirectedWrites = Ratio(1, 10)
                }
                let event: EventKind = (kind == .memoryPressure || kind == .cpuStarvation || kind == .storageFull) ? .resourcePressure : .diskFault
                emit(event, node: node, peer: 0, id: fault.id, payload: faultPayload(kind, detail))
            }
        case .clockSkew, .clockJump, .clockDrift:
            let count = 1 + Int(decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: UInt64(blastRadius)))
            fault.nodes = drawNodes(count, from: allNodes)
            for node in fault.nodes {
                let slot = slots[Int(node)]
                let magnitude = decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 1_000)
                let sign: Int64 = decide(stream: DecisionStream.nemesis, tag: DecisionTag.nemesisParameter, below: 2) == 0 ? -1 : 1
                var detail = ""
                switch kind {
                case .clockSkew:
                    slot.clock.offsetNanoseconds = sign * Int64(magnitude + 1) * 1_000_000  // up to ±1 s
                    detail = "offset \(slot.clock.offsetNanoseconds / 1_000_000)ms"
                case .clockJump:
                    slot.clock.offsetNanoseconds += sign * Int64(magnitude + 1) * 60_000_000  // up to ±60 s
                    detail = "jump to offset \(slot.clock.offsetNanoseconds / 1_000_000)ms"
                default:
                    slot.clock.driftStart = time
                    slot.clock.driftPartsPerMillion = sign * Int64(magnitude + 1) * 100  // up to ±10 %
                    detail = "drift \(slot.clock.driftPartsPerMillion) ppm"
                }
                emit(.clockFault, node: node, id: fault.id, payload: faultPayload(kind, detail))
            }
        case .byzantine:
            fault.nodes = allNodes.filter { slots[Int($0)].byzantine }
            guard !fault.nodes.isEmpty else { return nil }
            for node in fault.nodes {
                slots[Int(node)].byzantineActive = true
                emit(.byzantine, node: node, id: fault.id, payload: faultPayload(kind, "active"))
            }
        }
        return fault
    }

    func healFault(id: UInt64) {
        guard let index = nemesis.active.firstIndex(where: { $0.id == id }) else { return }
        let fault = nemesis.active.remove(at: index)
        heal(fault)
    }

    func heal(_ fault: ActiveFault) {
        switch fault.kind {
        case .crash, .crashTorn:
            for node in fault.nodes where !slots[Int(node)].up { restart(node) }
        case .pause:
            for node in fault.nodes { resume(node) }
        case .partitionHalves, .partitionMajority, .partitionIsolate, .partitionRing, .partitionBridge, .partitionOneWay:
            for link in fault.links { blocked[link] -= 1 }
            emit(.heal, node: 0, peer: UInt32(fault.links.count), id: fault.id, payload: Array(fault.kind.rawValue.utf8))
        case .loss, .duplication, .reordering, .delay:
            switch fault.kind {
            case .loss: network.loss = configuration.network.loss
            case .duplication: network.duplication = configuration.network.duplication
            case .reordering: network.reordering = configuration.network.reordering
            default: extraDelay = 0
            }
            emit(.heal, node: 0, id: fault.id, payload: Array(fault.kind.rawValue.utf8))
        case .clog:
            for link in fault.links {
                clogged[link] = false
                for held in cloggedHeld[link] {
                    queue.push(time: time + held.time, kind: .deliver, node: held.node, a: held.a, b: held.b)
                }
                cloggedHeld[link].removeAll()
            }
            emit(.heal, node: fault.nodes.first ?? 0, id: fault.id, payload: Array(fault.kind.rawValue.utf8))
        case .memoryPressure, .cpuStarvation, .storageFull, .diskReadErrors, .diskWriteErrors, .diskCorruption, .misdirectedWrites:
            for node in fault.nodes {
                let slot = slots[Int(node)]
                switch fault.kind {
                case .memoryPressure: slot.memoryBudget = nil
                case .cpuStarvation: slot.processingDelay = 0
                case .storageFull: slot.disk.capacityBytes = configuration.disk.capacityBytes
                case .diskReadErrors: slot.disk.configuration.readErrors = configuration.disk.readErrors
                case .diskWriteErrors: slot.disk.configuration.writeErrors = configuration.disk.writeErrors
                case .diskCorruption: slot.disk.configuration.readCorruption = configuration.disk.readCorruption
                default: slot.disk.configuration.misdirectedWrites = configuration.disk.misdirectedWrites
                }
                let event: EventKind = (fault.kind == .memoryPressure || fault.kind == .cpuStarvation || fault.kind == .storageFull) ? .resourcePressure : .diskFault
                emit(event, node: node, peer: 0, id: fault.id, payload: Array("\(fault.kind.rawValue) healed".utf8))
            }
        case .clockSkew, .clockJump, .clockDrift:
            for node in fault.nodes {
                slots[Int(node)].clock = SimulatedClock()
                emit(.clockFault, node: node, id: fault.id, payload: Array("\(fault.kind.rawValue) healed".utf8))
            }
        case .byzantine:
            for node in fault.nodes {
                slots[Int(node)].byzantineActive = false
                emit(.byzantine, node: node, id: fault.id, payload: Array("byzantine healed".utf8))
            }
        }
    }

    /// Every fault heals; the system now has the liveness bound to recover.
    func beginLivenessPhase() {
        nemesis.injecting = false
        livenessStart = time
        while !nemesis.active.isEmpty {
            heal(nemesis.active.removeFirst())
        }
        network = configuration.network
        extraDelay = 0
        emit(.log, node: 0, payload: Array("liveness phase: every fault healed".utf8))
    }

    // MARK: Node faults

    /// Crashes a node: its volatile state is gone and its un-synced writes are lost (or, with
    /// `torn`, some are applied damaged).
    func crash(_ node: NodeID, torn: Bool) {
        let slot = slots[Int(node)]
        guard slot.up else { return }
        slot.up = false
        slot.paused = false
        slot.node = nil
        slot.incarnation &+= 1
        slot.busyUntil = 0
        slot.memoryUsed = 0
        var lost = 0
        if torn {
            let tornChance = Ratio(1, 2)
            for write in slot.disk.pending {
                if let value = write.value, !value.isEmpty,
                   chance(stream: DecisionStream.disk, tag: DecisionTag.diskCorruptAtCrash, tornChance) {
                    var damaged = value
                    let index = Int(decide(stream: DecisionStream.disk, tag: DecisionTag.diskCorruptAtCrash, below: UInt64(damaged.count)))
                    damaged[index] ^= 0xFF
                    slot.disk.durable[write.key] = damaged
                } else {
                    lost += 1
                }
            }
        } else {
            lost = slot.disk.pending.count
        }
        slot.disk.pending.removeAll()
        // Work held for a paused node dies with it.
        for entry in slot.held where entry.kind == .deliver {
            if let flight = inFlight[Int(entry.b)] {
                inFlight[Int(entry.b)] = nil
                freeInFlight.append(Int(entry.b))
                linkLoad[Int(flight.source) * configuration.nodes + Int(flight.target)] -= 1
            }
        }
        slot.held.removeAll()
        emit(.crash, node: node, peer: torn ? 2 : (lost > 0 ? 1 : 0), id: UInt64(lost))
    }

    /// Restarts a crashed node from its durable disk.
    func restart(_ node: NodeID) {
        let slot = slots[Int(node)]
        guard !slot.up else { return }
        slot.up = true
        emit(.restart, node: node, id: UInt64(slot.incarnation))
        let instance = system.makeNode(id: node)
        slot.node = instance
        instance.start(slot.context)
        if slot.crashing { crashAtPoint(node) }
    }

    func resume(_ node: NodeID) {
        let slot = slots[Int(node)]
        guard slot.paused else { return }
        slot.paused = false
        emit(.resume, node: node)
        for entry in slot.held {
            queue.pushEntry(Scheduled(time: time, sequence: entry.sequence, kind: entry.kind, node: entry.node,
                                      a: entry.a, incarnation: entry.incarnation, b: entry.b))
        }
        slot.held.removeAll()
    }

    // MARK: Byzantine

    /// What a Byzantine node's outgoing message becomes: nil when withheld.
    func byzantineTransform(source: NodeID, target: NodeID, _ message: Message) -> (message: Message, from: NodeID, delay: UInt64)? {
        let stream = DecisionStream.byzantine
        let mutator: ByzantineMutator = system.byzantineMutator ?? ByteMutator()
        let random: (UInt64) -> UInt64 = { self.decide(stream: stream, tag: DecisionTag.byzantineParameter, below: $0) }
        let slot = slots[Int(source)]
        let strategies = slot.byzantineStrategies
        let pick = decide(stream: stream, tag: DecisionTag.byzantineStrategy, below: UInt64(strategies.count) + slot.byzantineHonesty)
        guard pick < UInt64(strategies.count) else { return (message, source, 0) }  // honest this time
        func note(_ what: String) {
            emit(.byzantine, node: source, peer: target, id: nextMessageID, payload: Array(what.utf8))
        }
        switch strategies[Int(pick)] {
        case .forge:
            guard configuration.nodes > 1 else { return (message, source, 0) }
            var other = NodeID(random(UInt64(configuration.nodes - 1)))
            if other >= source { other += 1 }
            note("forge as n\(other)")
            return (message, other, 0)
        case .equivocate:
            note("equivocate")
            return (mutator.equivocate(message, target: target, random: random), source, 0)
        case .corrupt:
            note("corrupt")
            return (mutator.corrupt(message, random: random), source, 0)
        case .replay:
            let history = slot.sentHistory
            guard !history.isEmpty else { return (message, source, 0) }
            let old = history[Int(random(UInt64(history.count)))]
            note("replay an old message")
            return (old.message, source, 0)
        case .withhold:
            note("withhold")
            return nil
        case .stall:
            let delay = (100 + random(900)) * 1_000_000
            note("stall \(delay / 1_000_000)ms")
            return (message, source, delay)
        }
    }

    /// Applies a fault at once (for tests and scripted scenarios).
    @discardableResult
    public func injectNow(_ kind: FaultKind) -> Bool {
        guard let fault = inject(kind) else { return false }
        nemesis.active.append(fault)
        return true
    }
}

// MARK: - Crash points

extension Simulator {
    /// One crash point in four fires, when crashes are among the faults in use, the safety phase
    /// is on, and the blast radius has room. The node dies at that point: nothing it does for the
    /// rest of the handler reaches the network, the disk or a client, and it crashes (losing
    /// un-synced writes) when the handler returns, to restart within 50 ms.
    func crashPoint(node: NodeID, site: String = "") {
        let slot = slots[Int(node)]
        guard !slot.crashing, nemesis.injecting, nemesis.faults.contains(where: { $0.kind == .crash }) else { return }
        let touched = slots.filter { !$0.up || $0.paused }.count
        guard touched < blastRadius else { return }
        // What the crash point is about: its node, its kind and what the node is handling.
        var identity: UInt64?
        if let interventions {
            interventions.crashPoints += 1
            interventions.log.crashPointTimes.append(time)
            identity = interventions.cause.map { cause in
                var about = StableDigest()
                about.mix(cause.kind)
                about.mix(cause.value)
                var digest = StableDigest()
                digest.mix(UInt64(node))
                digest.mix(site)
                digest.mix(about.value)
                return digest.value
            }
        }
        if let interventions, let pinned = interventions.pinnedCrashes {
            // Pinned: the node's earliest due crash of this kind fires here; nothing is drawn.
            guard let index = pinned.firstIndex(where: { $0.node == node && $0.notBefore <= time && ($0.site ?? site) == site })
            else { return }
            slot.pinnedDownFor = pinned[index].downFor
            interventions.pinnedCrashes!.remove(at: index)
            interventions.log.crashPoints.append((interventions.crashPoints, eventCount, site, identity))
            slot.crashing = true
            emit(.log, node: node, payload: Array("crash point".utf8))
            return
        }
        decider.feed?.beginCrashPoint(identity)
        interventions?.log.crashDraws.append((DecisionTag.crashPoint, identity))
        guard decide(stream: DecisionStream.nemesis, tag: DecisionTag.crashPoint, below: 4) == 0 else { return }
        if let interventions {
            if interventions.skippedCrashPoints.contains(interventions.crashPoints) { return }
            if let identity, interventions.skippedCrashes.contains(identity) { return }
            interventions.log.crashPoints.append((interventions.crashPoints, eventCount, site, identity))
        }
        slot.crashing = true
        slot.crashIdentity = identity
        emit(.log, node: node, payload: Array("crash point".utf8))
    }

    func crashAtPoint(_ node: NodeID) {
        let slot = slots[Int(node)]
        slot.crashing = false
        guard slot.up else { return }
        var fault = ActiveFault(id: nemesis.nextFaultID, kind: .crash, nodes: [node])
        nemesis.nextFaultID += 1
        fault.links = []
        crash(node, torn: false)
        statistics.faultsInjected += 1
        nemesis.active.append(fault)
        let restartAfter: UInt64
        if let downFor = slot.pinnedDownFor {
            slot.pinnedDownFor = nil
            restartAfter = max(1, downFor)
        } else {
            decider.feed?.beginCrashPoint(slot.crashIdentity)
            interventions?.log.crashDraws.append((DecisionTag.crashPointRestart, slot.crashIdentity))
            restartAfter = (1 + decide(stream: DecisionStream.nemesis, tag: DecisionTag.crashPointRestart, below: 50)) * 1_000_000
        }
        slot.crashIdentity = nil
        queue.push(time: min(time + restartAfter, configuration.durationNanoseconds), kind: .heal, b: fault.id)
    }
}

// MARK: - Scripted faults (tests and scripted scenarios)

extension Simulator {
    /// Crashes `node` now (losing un-synced writes, or tearing them with `torn`).
    public func crashNode(_ node: NodeID, torn: Bool = false) { crash(node, torn: torn) }
    /// Restarts a crashed `node` from its durable disk.
    public func restartNode(_ node: NodeID) { restart(node) }
    /// Pauses `node`: nothing reaches it until `resumeNode`.
    public func pauseNode(_ node: NodeID) {
        guard slots[Int(node)].up, !slots[Int(node)].paused else { return }
        slots[Int(node)].paused = true
        emit(.pause, node: node)
    }
    public func resumeNode(_ node: NodeID) { resume(node) }

    /// Blocks the directed links `source → target` for every pair given; returns the fault's id for `heal`.
    @discardableResult
    public func blockLinks(_ pairs: [(source: NodeID, target: NodeID)]) -> UInt64 {
        var fault = ActiveFault(id: nemesis.nextFaultID, kind: .partitionOneWay, nodes: [])
        nemesis.nextFaultID += 1
        fault.links = pairs.map { Int($0.source) * configuration.nodes + Int($0.target) }
        for link in fault.links { blocked[link] += 1 }
        emit(.partition, node: 0, peer: UInt32(fault.links.count), id: fault.id, payload: Array("scripted".utf8))
        nemesis.active.append(fault)
        return fault.id
    }

    /// Cuts the cluster into `groups`: no message crosses between two groups, either way.
    @discardableResult
    public func partition(_ groups: [[NodeID]]) -> UInt64 {
        var pairs: [(source: NodeID, target: NodeID)] = []
        for (i, a) in groups.enumerated() {
            for (j, b) in groups.enumerated() where i != j {
                for x in a { for y in b { pairs.append((x, y)) } }
            }
        }
        return blockLinks(pairs)
    }

    /// Heals one fault by id.
    public func heal(faultID: UInt64) { healFault(id: faultID) }

    /// Heals every fault in force.
    public func healAll() {
        while !nemesis.active.isEmpty { heal(nemesis.active.removeFirst()) }
    }

    /// Whether the directed link is blocked now.
    public func isBlocked(from source: NodeID, to target: NodeID) -> Bool {
        blocked[Int(source) * configuration.nodes + Int(target)] > 0
    }

    /// Changes the network's standing behaviour from now on.
    public func setNetwork(_ network: NetworkConfiguration) { self.network = network }

    /// Skews `node`'s clock by `offset` nanoseconds (and optionally makes it drift).
    public func setClock(of node: NodeID, offsetNanoseconds offset: Int64, driftPartsPerMillion drift: Int64 = 0) {
        let slot = slots[Int(node)]
        slot.clock.offsetNanoseconds = offset
        slot.clock.driftPartsPerMillion = drift
        slot.clock.driftStart = time
        emit(.clockFault, node: node, payload: Array("scripted offset \(offset) drift \(drift)".utf8))
    }

    /// Sets `node`'s disk capacity (storage exhaustion when at or below its use).
    public func setDiskCapacity(of node: NodeID, bytes: Int) {
        slots[Int(node)].disk.capacityBytes = bytes
        emit(.resourcePressure, node: node, peer: 3, payload: Array("scripted disk capacity \(bytes)".utf8))
    }

    /// Sets `node`'s disk fault rates.
    public func setDiskFaults(of node: NodeID, _ configuration: DiskConfiguration) {
        slots[Int(node)].disk.configuration = configuration
        emit(.diskFault, node: node, payload: Array("scripted disk faults".utf8))
    }

    /// Sets `node`'s memory budget (nil: unlimited).
    public func setMemoryBudget(of node: NodeID, bytes: Int?) {
        slots[Int(node)].memoryBudget = bytes
        emit(.resourcePressure, node: node, peer: 1, payload: Array("scripted memory budget \(bytes.map(String.init) ?? "none")".utf8))
    }

    /// Makes every event `node` handles cost `delay` nanoseconds of processing (CPU starvation).
    public func setProcessingDelay(of node: NodeID, nanoseconds delay: UInt64) {
        slots[Int(node)].processingDelay = delay
        emit(.resourcePressure, node: node, peer: 2, payload: Array("scripted processing delay \(delay)".utf8))
    }

    /// Turns `node` Byzantine: its outgoing messages pass through the Byzantine strategies.
    public func makeByzantine(_ node: NodeID, active: Bool = true, strategies: [ByzantineStrategy] = ByzantineStrategy.allCases,
                              honestyWeight: UInt64 = 0) {
        precondition(!strategies.isEmpty, "a Byzantine node needs at least one strategy")
        slots[Int(node)].byzantine = true
        slots[Int(node)].byzantineActive = active
        slots[Int(node)].byzantineStrategies = strategies
        slots[Int(node)].byzantineHonesty = honestyWeight
        emit(.byzantine, node: node, payload: Array("scripted byzantine \(active)".utf8))
    }

    /// Runs `body` as if inside `node`'s handler (scripted actions in tests).
    public func withContext<T>(of node: NodeID, _ body: (Node, NodeContext) throws -> T) rethrows -> T? {
        let slot = slots[Int(node)]
        guard slot.up, let instance = slot.node else { return nil }
        defer { if slot.crashing { crashAtPoint(node) } }
        return try body(instance, slot.context)
    }
}
