import Simulation

/// A content-addressed block store: a block's address is the digest of its content; each block
/// lives on `r` replicas chosen by rendezvous hashing; a put is acknowledged once every replica
/// has it durably; nodes push the blocks they hold to their replicas every 200 ms (repair); a full
/// disk refuses puts (backpressure). Content addressing makes every stored copy self-verifying.
///
/// Client operations: `write` of value v stores the block with content v; `read` with value v
/// fetches the block at address(v).
///
/// Planted bug `blockstore.ack-before-fsync`: the coordinator acknowledges a put once the block is
/// written (not synced) on its own disk and replicates it later, so a crash loses acknowledged blocks.
public struct BlockStoreSystem: SystemDefinition {
    public static let name = "blockstore"
    public static let bugs = ["blockstore.ack-before-fsync"]
    public static let optionNames = ["replication"]
    public static func messageName(_ type: UInt16) -> String? {
        switch type {
        case BlockNode.store: "Store request"
        case BlockNode.stored: "Stored request"
        case BlockNode.fetch: "Fetch request"
        case BlockNode.fetched: "Fetched request"
        default: nil
        }
    }
    let configuration: SimulationConfiguration
    let replication: Int

    public init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.replication = max(1, min(configuration.options["replication"] ?? 3, configuration.nodes))
    }

    public func makeNode(id: NodeID) -> Node { BlockNode(id: id, replication: replication, bug: configuration.bug) }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        let value = Int64(random(500))
        return random(3) == 0 ? ClientOperation(function: .read, value: value) : ClientOperation(function: .write, value: value)
    }

    public func makeCheckers() -> [Checker] { [BlockDurabilityChecker()] }
}

enum Block {
    static func address(of value: Int64) -> UInt64 {
        var digest = StableDigest()
        digest.mix(UInt64(bitPattern: value))
        return digest.value >> 16
    }

    static func key(_ address: UInt64) -> String { "block." + String(address, radix: 16) }
}

final class BlockNode: Node {
    let id: NodeID
    let replication: Int
    let bug: String?
    /// address → content of every block this node holds durably (or, with the bug, has written).
    var blocks: [UInt64: Int64] = [:]
    var repairCursor = 0
    /// Blocks acknowledged by the buggy write path and not yet pushed to their replicas.
    var lazy: [UInt64] = []

    struct PendingPut { var request: ClientRequest; var address: UInt64; var waiting: Set<NodeID> }
    var puts: [UInt64: PendingPut] = [:]  // request id → put
    struct PendingGet { var request: ClientRequest; var waiting: Set<NodeID> }
    var gets: [UInt64: PendingGet] = [:]

    static let store: UInt16 = 1
    static let stored: UInt16 = 2
    static let fetch: UInt16 = 3
    static let fetched: UInt16 = 4
    static let repairTag: UInt32 = 1
    static let lazyReplicateTag: UInt32 = 2

    init(id: NodeID, replication: Int, bug: String?) {
        self.id = id
        self.replication = replication
        self.bug = bug
    }

    func start(_ context: NodeContext) {
        // Every intact block on disk, in sorted key order; damaged ones are skipped (repair brings them back).
        for key in context.keys(prefix: "block.") {
            guard let raw = try? context.read(key), let bytes = Durable.open(key, raw) else { continue }
            var reader = ByteReader(bytes)
            guard let value = reader.signed(), Block.key(Block.address(of: value)) == key else { continue }
            blocks[Block.address(of: value)] = value
        }
        context.setTimer(after: 200_000_000, tag: Self.repairTag)
    }

    /// The `replication` nodes with the highest rendezvous score for `address`.
    func replicas(_ address: UInt64, clusterSize: Int) -> [NodeID] {
        let scored = (0..<NodeID(clusterSize)).map { node -> (UInt64, NodeID) in
            var digest = StableDigest()
            digest.mix(address)
            digest.mix(UInt64(node))
            return (digest.value, node)
        }
        return scored.sorted { $0 > $1 }.prefix(replication).map(\.1).sorted()
    }

    /// Stores a block durably; false when the disk refuses (full, I/O error).
    private func storeLocally(_ value: Int64, _ context: NodeContext, sync: Bool = true) -> Bool {
        let address = Block.address(of: value)
        if blocks[address] == value { return true }
        guard context.allocate(16) else { return false }
        defer { context.release(16) }
        var bytes: [UInt8] = []
        ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &bytes)
        let key = Block.key(address)
        do {
            try context.write(key, Durable.seal(key, bytes))
            if sync { try context.fsync() }
        } catch {
            return false
        }
        blocks[address] = value
        return true
    }

    private func message(_ type: UInt16, request: UInt64, value: Int64, flag: UInt8 = 0) -> Message {
        var body: [UInt8] = [flag]
        ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &body)
        return Message(type: type, key: request, body: body)
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        let value = request.operation.value
        let address = Block.address(of: value)
        let targets = replicas(address, clusterSize: context.clusterSize)
        switch request.operation.function {
        case .write:
            if bug == "blockstore.ack-before-fsync" {
                guard storeLocally(value, context, sync: false) else { return context.reply(to: request, .fail) }
                context.reply(to: request, .ok(value))
                if lazy.isEmpty { context.setTimer(after: 100_000_000, tag: Self.lazyReplicateTag) }
                lazy.append(address)
                return
            }
            var waiting = Set(targets)
            if waiting.contains(id) {
                guard storeLocally(value, context) else { return context.reply(to: request, .fail) }
                waiting.remove(id)
            }
            if waiting.isEmpty { return context.reply(to: request, .ok(value)) }
            puts[request.id] = PendingPut(request: request, address: address, waiting: waiting)
            for target in waiting.sorted() { context.send(message(Self.store, request: request.id, value: value), to: target) }
        case .read:
            if let found = blocks[address] { return context.reply(to: request, .ok(found)) }
            let others = targets.filter { $0 != id }
            if others.isEmpty { return context.reply(to: request, .okNil) }
            gets[request.id] = PendingGet(request: request, waiting: Set(others))
            for target in others { context.send(message(Self.fetch, request: request.id, value: value), to: target) }
        default:
            context.reply(to: request, .fail)
        }
    }

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        var reader = ByteReader(message.body)
        guard let flag = reader.byte(), let value = reader.signed() else { return }
        let address = Block.address(of: value)
        switch message.type {
        case Self.store:
            let ok = storeLocally(value, context)
            if message.key != 0 { context.send(self.message(Self.stored, request: message.key, value: value, flag: ok ? 1 : 0), to: source) }
        case Self.stored:
            guard var put = puts[message.key] else { return }
            if flag == 0 {
                puts[message.key] = nil
                return context.reply(to: put.request, .fail)  // backpressure: a replica refused
            }
            put.waiting.remove(source)
            if put.waiting.isEmpty {
                puts[message.key] = nil
                context.reply(to: put.request, .ok(put.request.operation.value))
            } else {
                puts[message.key] = put
            }
        case Self.fetch:
            let found = blocks[address]
            context.send(self.message(Self.fetched, request: message.key, value: found ?? value, flag: found == nil ? 0 : 1), to: source)
        case Self.fetched:
            guard var get = gets[message.key] else { return }
            if flag == 1 && Block.address(of: value) == Block.address(of: get.request.operation.value) {
                gets[message.key] = nil
                return context.reply(to: get.request, .ok(value))
            }
            get.waiting.remove(source)
            if get.waiting.isEmpty {
                gets[message.key] = nil
                context.reply(to: get.request, .okNil)
            } else {
                gets[message.key] = get
            }
        default:
            break
        }
    }

    func timer(_ tag: UInt32, _ context: NodeContext) {
        switch tag {
        case Self.repairTag:
            context.setTimer(after: 200_000_000, tag: Self.repairTag)
            repair(context, count: 8)
        case Self.lazyReplicateTag:
            // The buggy write path catches up later: sync, then push what it acknowledged.
            try? context.fsync()
            for address in lazy {
                guard let value = blocks[address] else { continue }
                for target in replicas(address, clusterSize: context.clusterSize) where target != id {
                    context.send(message(Self.store, request: 0, value: value), to: target)
                }
            }
            lazy.removeAll()
        default:
            break
        }
    }

    /// Pushes up to `count` held blocks (round robin, by address) to their replicas.
    private func repair(_ context: NodeContext, count: Int) {
        let addresses = blocks.keys.sorted()
        guard !addresses.isEmpty else { return }
        for step in 0..<min(count, addresses.count) {
            let address = addresses[(repairCursor + step) % addresses.count]
            for target in replicas(address, clusterSize: context.clusterSize) where target != id {
                context.send(message(Self.store, request: 0, value: blocks[address]!), to: target)
            }
        }
        repairCursor = (repairCursor + min(count, addresses.count)) % addresses.count
    }

    func stateDigest() -> UInt64 {
        var digest = StableDigest()
        for address in blocks.keys.sorted() { digest.mix(address) }
        return digest.value
    }
}

/// Every acknowledged block is still held by some live node at the end, and no read ever
/// returned content that does not match its address.
final class BlockDurabilityChecker: Checker {
    let name = "block-durability"

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard entry.request.operation.function == .read, let reply = entry.reply, reply.outcome == .ok, !reply.isNil else { return nil }
        if Block.address(of: reply.value) != Block.address(of: entry.request.operation.value) {
            return Violation(checker: name, kind: "corrupt-block-served",
                             explanation: "a read of block \(Block.address(of: entry.request.operation.value)) returned other content",
                             events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
        }
        return nil
    }

    func finish(_ simulation: Simulator) -> Violation? {
        var held = Set<UInt64>()
        for id in 0..<NodeID(simulation.configuration.nodes) {
            if let node = simulation.node(id) as? BlockNode { held.formUnion(node.blocks.keys) }
        }
        for entry in simulation.history where entry.request.operation.function == .write && entry.reply?.outcome == .ok {
            let address = Block.address(of: entry.request.operation.value)
            if !held.contains(address) {
                return Violation(checker: name, kind: "lost-block",
                                 explanation: "block \(String(address, radix: 16)) (content \(entry.request.operation.value)) was acknowledged but no node holds it",
                                 events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
            }
        }
        return nil
    }
}
