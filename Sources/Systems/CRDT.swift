import Simulation

/// A CRDT store replicated by gossip anti-entropy: an OR-Set (grow-only adds in the workload), a
/// PN-Counter and an LWW map. Every update is made durable (double-buffered, checksummed) before
/// it is acknowledged; replicas merge each other's full state every 50 ms.
///
/// Keys: 0–9 are LWW registers (`write`/`read`), 100 is the counter (`add` a delta), 200 is the
/// set (`add` an element).
///
/// Planted bug `crdt.lww-local-clock`: LWW timestamps are the node's raw (skewed, jumping) clock
/// with no tie-break, instead of a hybrid logical clock with the node id as tie-break; a clock that
/// goes back makes a later write lose to an earlier one.
public struct CRDTSystem: SystemDefinition {
    public static let name = "crdt"
    public static let bugs = ["crdt.lww-local-clock"]
    public static func messageName(_ type: UInt16) -> String? { type == CRDTNode.gossipType ? "Gossip round" : nil }
    let configuration: SimulationConfiguration

    public init(configuration: SimulationConfiguration) { self.configuration = configuration }

    public func makeNode(id: NodeID) -> Node { CRDTNode(id: id, bug: configuration.bug) }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        switch random(3) {
        case 0: ClientOperation(function: .write, key: random(3), value: Int64(random(1_000)))
        case 1: ClientOperation(function: .add, key: CRDTState.counterKey, value: Int64(1 + random(5)))
        default: ClientOperation(function: .add, key: CRDTState.setKey, value: Int64(random(1_000_000)))
        }
    }

    public func makeCheckers() -> [Checker] { [CRDTChecker()] }
}

/// The replicated state. Merging is commutative, associative and idempotent.
struct CRDTState: Equatable {
    static let counterKey: UInt64 = 100
    static let setKey: UInt64 = 200

    struct Stamp: Equatable, Comparable {
        var time: UInt64
        var node: UInt32
        static func < (a: Stamp, b: Stamp) -> Bool { (a.time, a.node) < (b.time, b.node) }
    }

    var increments: [UInt32: Int64] = [:]
    var decrements: [UInt32: Int64] = [:]
    var elements: Set<Int64> = []
    var registers: [UInt64: (value: Int64, stamp: Stamp)] = [:]

    static func == (a: CRDTState, b: CRDTState) -> Bool {
        a.increments == b.increments && a.decrements == b.decrements && a.elements == b.elements
            && a.registers.keys.sorted() == b.registers.keys.sorted()
            && a.registers.keys.allSatisfy { a.registers[$0]!.value == b.registers[$0]!.value && a.registers[$0]!.stamp == b.registers[$0]!.stamp }
    }

    var counter: Int64 { increments.values.reduce(0, +) - decrements.values.reduce(0, +) }

    /// - Parameter tieBreak: false reproduces the planted bug (equal times keep the local value).
    mutating func merge(_ other: CRDTState, tieBreak: Bool) {
        for (node, count) in other.increments { increments[node] = max(increments[node] ?? 0, count) }
        for (node, count) in other.decrements { decrements[node] = max(decrements[node] ?? 0, count) }
        elements.formUnion(other.elements)
        for (key, remote) in other.registers {
            guard let local = registers[key] else {
                registers[key] = remote
                continue
            }
            let newer = tieBreak ? local.stamp < remote.stamp : local.stamp.time < remote.stamp.time
            if newer { registers[key] = remote }
        }
    }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        func put(_ value: UInt64) { ByteWriter.appendVarint(value, to: &bytes) }
        func putSigned(_ value: Int64) { put(ByteWriter.zigzag(value)) }
        put(UInt64(increments.count))
        for node in increments.keys.sorted() { put(UInt64(node)); putSigned(increments[node]!) }
        put(UInt64(decrements.count))
        for node in decrements.keys.sorted() { put(UInt64(node)); putSigned(decrements[node]!) }
        put(UInt64(elements.count))
        for element in elements.sorted() { putSigned(element) }
        put(UInt64(registers.count))
        for key in registers.keys.sorted() {
            let register = registers[key]!
            put(key); putSigned(register.value); put(register.stamp.time); put(UInt64(register.stamp.node))
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> CRDTState? {
        var reader = ByteReader(bytes)
        var state = CRDTState()
        guard let increments = reader.varint(), increments < 100_000 else { return nil }
        for _ in 0..<increments {
            guard let node = reader.varint(), let count = reader.signed() else { return nil }
            state.increments[UInt32(truncatingIfNeeded: node)] = count
        }
        guard let decrements = reader.varint(), decrements < 100_000 else { return nil }
        for _ in 0..<decrements {
            guard let node = reader.varint(), let count = reader.signed() else { return nil }
            state.decrements[UInt32(truncatingIfNeeded: node)] = count
        }
        guard let elements = reader.varint(), elements < 10_000_000 else { return nil }
        for _ in 0..<elements {
            guard let element = reader.signed() else { return nil }
            state.elements.insert(element)
        }
        guard let registers = reader.varint(), registers < 100_000 else { return nil }
        for _ in 0..<registers {
            guard let key = reader.varint(), let value = reader.signed(), let time = reader.varint(), let node = reader.varint() else { return nil }
            state.registers[key] = (value, Stamp(time: time, node: UInt32(truncatingIfNeeded: node)))
        }
        return reader.isAtEnd ? state : nil
    }
}

final class CRDTNode: Node {
    let id: NodeID
    let bug: String?
    var state = CRDTState()
    var ready = false
    /// The highest stamp time seen (the hybrid logical clock).
    var clock: UInt64 = 0
    var sequence: UInt64 = 0

    static let gossipTag: UInt32 = 1
    static let loadTag: UInt32 = 2
    static let gossipType: UInt16 = 1

    init(id: NodeID, bug: String?) {
        self.id = id
        self.bug = bug
    }

    func start(_ context: NodeContext) {
        load(context)
        context.setTimer(after: 50_000_000, tag: Self.gossipTag)
    }

    /// Loads the newest intact of the two state slots; with neither readable, stays out and retries.
    private func load(_ context: NodeContext) {
        var best: (sequence: UInt64, state: CRDTState)?
        var damaged = false
        for slot in ["state.a", "state.b"] {
            do {
                guard let raw = try context.read(slot) else { continue }
                guard let value = Durable.open(slot, raw) else { damaged = true; continue }
                var reader = ByteReader(value)
                guard let sequence = reader.varint(), let rest = reader.bytes(value.count - reader.offset),
                      let state = CRDTState.decode(rest) else { damaged = true; continue }
                if best == nil || sequence > best!.sequence { best = (sequence, state) }
            } catch {
                damaged = true
            }
        }
        if best == nil && damaged {
            ready = false
            context.log("crdt: no intact state on disk; retrying")
            context.setTimer(after: 500_000_000, tag: Self.loadTag)
            return
        }
        if let best {
            sequence = best.sequence
            state = best.state
            clock = state.registers.values.map(\.stamp.time).max() ?? 0
        }
        ready = true
    }

    /// Makes `candidate` durable in the slot not holding the newest state, then adopts it.
    private func persist(_ candidate: CRDTState, _ context: NodeContext) -> Bool {
        let next = sequence + 1
        let slot = next % 2 == 0 ? "state.a" : "state.b"
        var value: [UInt8] = []
        ByteWriter.appendVarint(next, to: &value)
        value += candidate.encoded()
        do {
            try context.write(slot, Durable.seal(slot, value))
            try context.fsync()
        } catch {
            return false
        }
        sequence = next
        state = candidate
        return true
    }

    private func stamp(_ context: NodeContext) -> CRDTState.Stamp {
        if bug == "crdt.lww-local-clock" { return CRDTState.Stamp(time: context.now, node: 0) }
        clock = max(clock + 1, context.now)
        return CRDTState.Stamp(time: clock, node: id)
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        guard ready else { return context.reply(to: request, .fail) }
        let operation = request.operation
        var candidate = state
        switch (operation.function, operation.key) {
        case (.add, CRDTState.counterKey):
            if operation.value >= 0 {
                candidate.increments[id, default: 0] += operation.value
            } else {
                candidate.decrements[id, default: 0] -= operation.value
            }
        case (.add, CRDTState.setKey):
            candidate.elements.insert(operation.value)
        case (.write, let key) where key < 10:
            candidate.registers[key] = (operation.value, stamp(context))
        case (.read, let key):
            if key == CRDTState.counterKey { return context.reply(to: request, .ok(state.counter)) }
            return context.reply(to: request, state.registers[key].map { .ok($0.value) } ?? .okNil)
        default:
            return context.reply(to: request, .fail)
        }
        guard context.allocate(32) else { return context.reply(to: request, .fail) }
        defer { context.release(32) }
        // Nothing is acknowledged before it is durable; a failed write changed nothing we rely on.
        context.reply(to: request, persist(candidate, context) ? .ok(operation.value) : .fail)
    }

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        guard ready, message.type == Self.gossipType, let remote = CRDTState.decode(message.body) else { return }
        var merged = state
        merged.merge(remote, tieBreak: bug != "crdt.lww-local-clock")
        if let newest = remote.registers.values.map(\.stamp.time).max() { clock = max(clock, newest) }
        if merged != state { _ = persist(merged, context) }
    }

    func timer(_ tag: UInt32, _ context: NodeContext) {
        switch tag {
        case Self.loadTag:
            if !ready { load(context) }
        case Self.gossipTag:
            context.setTimer(after: 50_000_000, tag: Self.gossipTag)
            guard ready, context.clusterSize > 1 else { return }
            var peer = NodeID(context.random(below: UInt64(context.clusterSize - 1)))
            if peer >= id { peer += 1 }
            context.send(Message(type: Self.gossipType, key: sequence, body: state.encoded()), to: peer)
        default:
            break
        }
    }

    func stateDigest() -> UInt64 {
        var digest = StableDigest()
        digest.mix(state.encoded())
        return digest.value
    }
}

/// After the liveness phase (faults healed, gossip quiet): every live replica holds the same state,
/// and no acknowledged update is missing from it.
final class CRDTChecker: Checker {
    let name = "crdt"

    func finish(_ simulation: Simulator) -> Violation? {
        guard simulation.livenessStart != nil else { return nil }
        var replicas: [(NodeID, CRDTState)] = []
        for id in 0..<NodeID(simulation.configuration.nodes) {
            if let node = simulation.node(id) as? CRDTNode, node.ready { replicas.append((id, node.state)) }
        }
        guard let (firstID, reference) = replicas.first else { return nil }
        for (id, state) in replicas.dropFirst() where state != reference {
            return Violation(checker: name, kind: "divergence",
                             explanation: "after every fault healed and gossip ran, n\(firstID) and n\(id) still hold different states")
        }
        // No acknowledged update lost.
        var ackedSum: Int64 = 0
        var unknownSum: Int64 = 0
        for entry in simulation.history {
            let operation = entry.request.operation
            switch (operation.function, operation.key, entry.reply?.outcome) {
            case (.add, CRDTState.setKey, .ok?):
                if !reference.elements.contains(operation.value) {
                    return Violation(checker: name, kind: "lost-add",
                                     explanation: "the acknowledged add of \(operation.value) is missing from every replica",
                                     events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
                }
            case (.add, CRDTState.counterKey, .ok?): ackedSum += operation.value
            case (.add, CRDTState.counterKey, .info?), (.add, CRDTState.counterKey, nil): unknownSum += operation.value
            default: break
            }
        }
        if reference.counter < ackedSum || reference.counter > ackedSum + unknownSum {
            return Violation(checker: name, kind: "lost-increment",
                             explanation: "the counter reads \(reference.counter) but acknowledged increments add up to \(ackedSum) (plus up to \(unknownSum) of unknown outcome)")
        }
        // A write acknowledged by a node must not lose to an earlier write that node acknowledged.
        for key in reference.registers.keys.sorted() {
            let final = reference.registers[key]!.value
            let writes = simulation.history.filter {
                $0.request.operation.function == .write && $0.request.operation.key == key && $0.reply?.outcome == .ok
            }
            guard let winner = writes.last(where: { $0.request.operation.value == final }) else { continue }
            if let later = writes.first(where: { $0.target == winner.target && $0.invokedAt > (winner.completedAt ?? .max)
                                                  && $0.request.operation.value != final }) {
                return Violation(checker: name, kind: "lost-update",
                                 explanation: "key \(key) ends at \(final), written through n\(winner.target), though n\(winner.target) later acknowledged writing \(later.request.operation.value)",
                                 events: [winner.invokeEvent, later.invokeEvent])
            }
        }
        return nil
    }
}
