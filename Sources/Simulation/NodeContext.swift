/// Everything node code may do to the world. The simulator implements it; nothing else reaches
/// the node. Calls are only valid while the simulator is running the node's handler.
public final class NodeContext {
    unowned(unsafe) let simulator: Simulator
    public let id: NodeID

    init(simulator: Simulator, id: NodeID) {
        self.simulator = simulator
        self.id = id
    }

    /// Cluster size; peers are 0 ..< clusterSize.
    public var clusterSize: Int { simulator.configuration.nodes }

    /// The node's own clock, in nanoseconds: virtual time as skewed, jumped and drifted by faults.
    public var now: UInt64 { simulator.clockReading(of: id) }

    /// Sends `message` to `target` through the simulated network.
    public func send(_ message: Message, to target: NodeID) {
        simulator.send(from: id, to: target, message)
    }

    /// Sends `message` to every other node.
    public func broadcast(_ message: Message) {
        for target in 0..<NodeID(clusterSize) where target != id { send(message, to: target) }
    }

    /// Fires `timer(tag)` after `delay` nanoseconds of virtual time. Returns an id for `cancelTimer`.
    @discardableResult
    public func setTimer(after delay: UInt64, tag: UInt32) -> UInt64 {
        simulator.setTimer(node: id, after: delay, tag: tag)
    }

    public func cancelTimer(_ timer: UInt64) {
        simulator.cancelTimer(node: id, timer: timer)
    }

    /// A uniform random number in 0 ..< bound, from this node's stream (a recorded decision).
    public func random(below bound: UInt64) -> UInt64 {
        simulator.decide(stream: DecisionStream.node(id), tag: DecisionTag.nodeRandom, below: bound)
    }

    /// Answers a client's request.
    public func reply(to request: ClientRequest, _ reply: Reply) {
        simulator.reply(node: id, to: request, reply)
    }

    /// A line in the trace.
    public func log(_ text: String) {
        simulator.emit(.log, node: id, payload: Array(text.utf8))
    }

    // MARK: Disk

    public func read(_ key: String) throws(DiskError) -> [UInt8]? { try simulator.diskRead(node: id, key) }
    public func write(_ key: String, _ value: [UInt8]) throws(DiskError) { try simulator.diskWrite(node: id, key, value) }
    public func delete(_ key: String) throws(DiskError) { try simulator.diskDelete(node: id, key) }
    public func fsync() throws(DiskError) { try simulator.diskFsync(node: id) }
    /// Keys on the node's disk starting with `prefix`, sorted (a directory listing).
    public func keys(prefix: String) -> [String] { simulator.diskKeys(node: id, prefix: prefix) }
    /// Bytes used and available on the node's disk.
    public var diskUsage: (used: Int, capacity: Int) { simulator.diskUsage(node: id) }

    // MARK: Memory

    /// Asks for `bytes` of memory from the node's budget; false when the budget refuses (the node
    /// must degrade: shed work, refuse requests), never a crash.
    public func allocate(_ bytes: Int) -> Bool { simulator.allocate(node: id, bytes) }
    public func release(_ bytes: Int) { simulator.release(node: id, bytes) }

    /// Marks a moment where a crash is most revealing (just after a vote, between persisting and
    /// sending). Under suites with crashes the simulator sometimes kills the node right here:
    /// nothing it does afterwards in this handler reaches the network, the disk or a client, and
    /// it restarts from its durable disk moments later. Fault injection aimed by the code itself.
    /// `site` names the kind of moment ("after a vote"); a shrunk run keeps a crash at its kind.
    public func crashPoint(_ site: String = "") { simulator.crashPoint(node: id, site: site) }

    /// Reports a violation the node itself detected (an assertion of the system's own).
    public func reportViolation(kind: String, _ explanation: String) {
        simulator.report(Violation(checker: "node-assertion", kind: kind, explanation: "n\(id): \(explanation)"))
    }

    /// Reports a violation found by the harness around a node (an external process that
    /// misbehaved), under `checker`.
    public func reportViolation(checker: String, kind: String, _ explanation: String) {
        simulator.report(Violation(checker: checker, kind: kind, explanation: explanation))
    }
}
