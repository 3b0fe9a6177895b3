/// A realistic synthetic event stream for benchmarks and tests of the store: `nodes` nodes
/// exchanging small protocol messages over a network with latency and loss, heartbeat timers,
/// client operations, and the random draws (decisions) behind the network's choices.
///
/// Deterministic: the same seed gives the same stream.
public struct SyntheticTrace: Sequence, IteratorProtocol {
    public let nodes: UInt32
    private var state: UInt64
    private var time: UInt64 = 0
    private var nextMessage: UInt64 = 1
    private var nextOperation: UInt64 = 1
    private var nextTimer: UInt64 = 1
    private var pending: [Event] = []
    private var pendingIndex = 0
    private var inFlight: [(deliverAt: UInt64, event: Event)] = []
    private var term: UInt64 = 1
    private var value: UInt64 = 0

    public init(seed: UInt64, nodes: UInt32 = 5) {
        self.state = seed &+ 0x9E37_79B9_7F4A_7C15
        self.nodes = Swift.max(nodes, 2)
    }

    private mutating func draw() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func below(_ bound: UInt64) -> UInt64 { draw() % bound }

    public mutating func next() -> Event? {
        if pendingIndex < pending.count {
            defer { pendingIndex += 1 }
            return pending[pendingIndex]
        }
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
        step()
        pendingIndex = 1
        return pending[0]
    }

    /// Advances time by one scheduling step and queues the events it produced.
    private mutating func step() {
        // Deliver messages whose time has come, oldest first.
        time += 1_000 * (1 + below(200))  // 1–200 µs between steps
        var index = 0
        while index < inFlight.count {
            if inFlight[index].deliverAt <= time {
                pending.append(Event(kind: .decision, time: time, node: 0, peer: 0, id: UInt64(index)))
                pending.append(inFlight[index].event.withTime(time))
                inFlight.remove(at: index)
            } else {
                index += 1
            }
        }
        let node = UInt32(below(UInt64(nodes)))
        switch below(100) {
        case 0..<60:
            // A protocol message to a random peer: type, term, index, value.
            var peer = UInt32(below(UInt64(nodes - 1)))
            if peer >= node { peer += 1 }
            let message = nextMessage
            nextMessage += 1
            if below(50) == 0 { term += 1 }
            value += 1
            var payload: [UInt8] = [UInt8(below(4))]
            Bytes.appendVarint(term, to: &payload)
            Bytes.appendVarint(value, to: &payload)
            pending.append(Event(kind: .send, time: time, node: node, peer: peer, id: message, payload: payload))
            let latency = 1_000_000 + 1_000 * below(4_000)
            pending.append(Event(kind: .decision, time: time, node: 1 + node, peer: 1, id: latency / 1_000))
            if below(50) == 0 {
                pending.append(Event(kind: .drop, time: time, node: node, peer: peer, id: message))
            } else {
                inFlight.append((time + latency, Event(kind: .deliver, time: 0, node: peer, peer: node, id: message)))
            }
        case 60..<80:
            let timer = nextTimer
            nextTimer += 1
            pending.append(Event(kind: .timerFire, time: time, node: node, peer: 1, id: timer))
            pending.append(Event(kind: .timerSet, time: time, node: node, peer: 1, id: timer + 1, payload: [0x80, 0xB5, 0x18]))
        case 80..<95:
            let operation = nextOperation
            nextOperation += 1
            var payload: [UInt8] = [1, UInt8(below(10))]
            Bytes.appendVarint(value, to: &payload)
            pending.append(Event(kind: .clientInvoke, time: time, node: 100 + node, peer: node, id: operation, payload: payload))
            pending.append(Event(kind: .clientComplete, time: time + 1_000 * below(3), node: 100 + node, peer: 1, id: operation))
        default:
            pending.append(Event(kind: .log, time: time, node: node, payload: Array("heartbeat term \(term)".utf8)))
        }
        // Keep times non-decreasing within the step.
        var last: UInt64 = 0
        for position in pending.indices {
            if pending[position].time < last { pending[position].time = last }
            last = pending[position].time
        }
        time = last
    }
}

extension Event {
    func withTime(_ time: UInt64) -> Event {
        var copy = self
        copy.time = time
        return copy
    }
}
