import Simulation

/// The trivial system: nodes gossip with random peers and echo what they hear; clients send a
/// value to a node and expect it back. Used for benchmarks, determinism checks and as the
/// smallest example of the node API.
///
/// Planted bugs:
/// - `echo.set-order`: a node picks its gossip peer by iterating a `Set`, whose order differs
///   between processes (caught by `--check-determinism`).
/// - `echo.stuck-after-restart`: a restarted node never answers clients again (a liveness bug).
/// - `echo.off-by-one`: a node that has echoed many gossips answers clients with the wrong value.
public struct EchoSystem: SystemDefinition {
    public static let name = "echo"
    public static let bugs = ["echo.set-order", "echo.stuck-after-restart", "echo.off-by-one"]
    public static let optionNames = ["fanout", "heartbeat_ms", "hops"]
    public static func messageName(_ type: UInt16) -> String? {
        switch type {
        case EchoMessage.gossip: "Gossip"
        case EchoMessage.echo: "Echo"
        default: nil
        }
    }
    public static let suites: [Suite] = [.none, .nodes, .network, .resources, .distributed, .byzantine]

    let configuration: SimulationConfiguration
    /// Gossip chains each node keeps going (messages in flight per node).
    let fanout: Int
    /// Period of each node's heartbeat timer.
    let heartbeatNanoseconds: UInt64
    /// Hops a gossip chain lives (0: forever).
    let hops: UInt64

    public init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.fanout = configuration.options["fanout"] ?? 1
        self.heartbeatNanoseconds = UInt64(configuration.options["heartbeat_ms"] ?? 100) * 1_000_000
        self.hops = UInt64(configuration.options["hops"] ?? 20)
    }

    public static func byzantineTolerance(nodes: Int) -> Int { (nodes - 1) / 3 }

    public func makeNode(id: NodeID) -> Node {
        EchoNode(id: id, fanout: fanout, heartbeat: heartbeatNanoseconds, hops: hops, bug: configuration.bug)
    }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        ClientOperation(function: .echo, key: UInt64(client), value: Int64(random(1_000_000)))
    }

    public func makeCheckers() -> [Checker] { [EchoChecker()] }
}

enum EchoMessage {
    static let gossip: UInt16 = 1
    static let echo: UInt16 = 2
}

final class EchoNode: Node {
    let id: NodeID
    let fanout: Int
    let heartbeat: UInt64
    let hops: UInt64
    let bug: String?
    var heard: UInt64 = 0
    var echoed: UInt64 = 0
    var restarted = false
    /// Every (peer, message key) heard, for the `echo.set-order` bug: a set that keeps growing, so
    /// its iteration order differs between two processes almost surely.
    var heardFrom: Set<UInt64> = []

    init(id: NodeID, fanout: Int, heartbeat: UInt64, hops: UInt64, bug: String?) {
        self.id = id
        self.fanout = fanout
        self.heartbeat = heartbeat
        self.hops = hops
        self.bug = bug
    }

    func start(_ context: NodeContext) {
        // A restart finds the marker written at the first start.
        if (try? context.read("started")) != nil { restarted = true }
        try? context.write("started", [1])
        try? context.fsync()
        context.setTimer(after: heartbeat, tag: 1)
        for _ in 0..<fanout { gossip(context, counter: 0) }
    }

    private func peer(_ context: NodeContext) -> NodeID {
        if bug == "echo.set-order", let first = heardFrom.first {
            // The planted bug: Set order is per-process.
            let peer = NodeID(truncatingIfNeeded: first >> 32)
            if peer != id && Int(peer) < context.clusterSize { return peer }
        }
        var peer = NodeID(context.random(below: UInt64(context.clusterSize - 1)))
        if peer >= id { peer += 1 }
        return peer
    }

    private func gossip(_ context: NodeContext, counter: UInt64) {
        guard context.clusterSize > 1 else { return }
        context.send(Message(type: EchoMessage.gossip, key: counter), to: peer(context))
    }

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        heard &+= 1
        if bug == "echo.set-order" { heardFrom.insert(UInt64(source) << 32 | message.key) }
        switch message.type {
        case EchoMessage.gossip:
            echoed &+= 1
            context.send(Message(type: EchoMessage.echo, key: message.key &+ 1), to: source)
        default:
            // The chain goes on until it has made its hops.
            if hops == 0 || message.key < hops { gossip(context, counter: message.key &+ 1) }
        }
    }

    func timer(_ tag: UInt32, _ context: NodeContext) {
        context.setTimer(after: heartbeat, tag: 1)
        for _ in 0..<fanout { gossip(context, counter: 0) }
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        if bug == "echo.stuck-after-restart" && restarted { return }
        var value = request.operation.value
        if bug == "echo.off-by-one" && echoed > 40 { value += 1 }
        context.reply(to: request, .ok(value))
    }

    func stateDigest() -> UInt64 { heard &* 0x9E37_79B9 ^ echoed }
}

/// Every successful echo returns the value sent.
final class EchoChecker: Checker {
    let name = "echo"

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard let reply = entry.reply, reply.outcome == .ok else { return nil }
        guard reply.value != entry.request.operation.value else { return nil }
        return Violation(checker: name, kind: "wrong-echo",
                         explanation: "client \(entry.request.client) sent \(entry.request.operation.value) to n\(entry.target) and got \(reply.value) back",
                         events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
    }
}
