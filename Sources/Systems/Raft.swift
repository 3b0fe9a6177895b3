import Checkers
import Simulation

/// A Raft key-value store: leader election, log replication, term/vote/log persisted with fsync,
/// client `read` / `write` / `cas` through the log. Durable records carry a checksum over key and
/// value, so torn, corrupted or misdirected writes are detected and the node stays out rather
/// than serve damaged state.
///
/// Planted bugs:
/// - `raft.forget-vote`: the vote is not persisted, so a restarted node votes twice in one term.
/// - `raft.stale-read`: a leader answers reads from its own state without going through the log.
/// - `raft.commit-old-term`: a new leader skips the no-op of its own term and commits entries of
///   earlier terms by counting replicas (Raft's Figure 8), so a committed entry can be overwritten.
public struct RaftSystem: SystemDefinition {
    public static let name = "raft"
    public static let bugs = ["raft.forget-vote", "raft.stale-read", "raft.commit-old-term"]
    public static let optionNames = ["keys"]
    let configuration: SimulationConfiguration
    let monitor: RaftMonitor
    let keys: UInt64

    public init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.monitor = RaftMonitor()
        self.keys = UInt64(configuration.options["keys"] ?? 3)
    }

    public func makeNode(id: NodeID) -> Node {
        RaftNode(id: id, bug: configuration.bug, monitor: monitor)
    }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        let key = random(keys)
        switch random(4) {
        case 0, 1: return ClientOperation(function: .read, key: key)
        case 2: return ClientOperation(function: .write, key: key, value: Int64(random(5)))
        default: return ClientOperation(function: .cas, key: key, value: Int64(random(5)), expected: Int64(random(5)))
        }
    }

    public func makeCheckers() -> [Checker] { [RaftSafetyChecker(monitor: monitor), LinearizabilityRunChecker()] }

    public static func messageName(_ type: UInt16) -> String? {
        switch type {
        case RaftMessage.requestVote: "RequestVote term"
        case RaftMessage.vote: "Vote term"
        case RaftMessage.append: "AppendEntries term"
        case RaftMessage.appendReply: "AppendReply term"
        default: nil
        }
    }
}

/// What the cluster did, as nodes report it, for the safety checkers.
final class RaftMonitor {
    /// term → the node that became leader in it.
    var leaders: [UInt64: NodeID] = [:]
    /// index → (term, command) of the first entry any node applied there.
    var applied: [Int: (term: UInt64, command: [UInt8], node: NodeID)] = [:]
    var violation: Violation?

    func becameLeader(_ node: NodeID, term: UInt64) {
        if let other = leaders[term], other != node, violation == nil {
            violation = Violation(checker: "election-safety", kind: "two-leaders",
                                  explanation: "n\(other) and n\(node) were both leader in term \(term)")
        }
        leaders[term] = node
    }

    func overwroteCommitted(_ node: NodeID, index: Int) {
        if violation == nil {
            violation = Violation(checker: "state-machine-safety", kind: "committed-entry-overwritten",
                                  explanation: "n\(node) was told to overwrite entry \(index), which it had already committed")
        }
    }

    func applied(_ node: NodeID, index: Int, term: UInt64, command: [UInt8]) {
        if let first = applied[index] {
            if (first.term != term || first.command != command) && violation == nil {
                violation = Violation(checker: "state-machine-safety", kind: "divergent-apply",
                                      explanation: "n\(first.node) applied an entry of term \(first.term) at index \(index), n\(node) one of term \(term)")
            }
        } else {
            applied[index] = (term, command, node)
        }
    }
}

final class RaftSafetyChecker: Checker {
    let name = "raft-safety"
    let monitor: RaftMonitor
    init(monitor: RaftMonitor) { self.monitor = monitor }
    var checksEveryStep: Bool { true }
    func afterStep(_ simulation: Simulator) -> Violation? { monitor.violation }
    func finish(_ simulation: Simulator) -> Violation? { monitor.violation }
}

enum RaftMessage {
    static let requestVote: UInt16 = 1
    static let vote: UInt16 = 2
    static let append: UInt16 = 3
    static let appendReply: UInt16 = 4
}

struct RaftEntry: Equatable {
    var term: UInt64
    /// The encoded command: client, request id, operation.
    var command: [UInt8]
}

/// A durable record: checksum of key and value, then the value.
enum Durable {
    static func checksum(_ key: String, _ value: [UInt8]) -> UInt64 {
        var digest = StableDigest()
        digest.mix(key)
        digest.mix(value)
        return digest.value
    }

    static func seal(_ key: String, _ value: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        ByteWriter.appendVarint(checksum(key, value), to: &bytes)
        return bytes + value
    }

    static func open(_ key: String, _ bytes: [UInt8]) -> [UInt8]? {
        var reader = ByteReader(bytes)
        guard let sum = reader.varint(), let value = reader.bytes(bytes.count - reader.offset), checksum(key, value) == sum else { return nil }
        return value
    }
}

final class RaftNode: Node {
    enum Role { case follower, candidate, leader }

    let id: NodeID
    let bug: String?
    let monitor: RaftMonitor
    var ready = false
    /// A write or fsync failed since the last complete persist.
    var diskSuspect = false
    var term: UInt64 = 0
    var votedFor: NodeID? = nil
    var log: [RaftEntry] = [RaftEntry(term: 0, command: [])]  // index 0 is a sentinel
    var commitIndex = 0
    var lastApplied = 0
    var role = Role.follower
    var votes: Set<NodeID> = []
    var nextIndex: [Int] = []
    var matchIndex: [Int] = []
    var electionTimer: UInt64?
    var store: [UInt64: Int64] = [:]
    var pending: [Int: ClientRequest] = [:]

    static let electionTag: UInt32 = 1
    static let heartbeatTag: UInt32 = 2
    static let loadTag: UInt32 = 3
    static let voteRetryTag: UInt32 = 4

    init(id: NodeID, bug: String?, monitor: RaftMonitor) {
        self.id = id
        self.bug = bug
        self.monitor = monitor
    }

    var lastIndex: Int { log.count - 1 }
    var lastTerm: UInt64 { log[lastIndex].term }

    // MARK: Start and durable state

    func start(_ context: NodeContext) {
        load(context)
    }

    private func load(_ context: NodeContext) {
        do {
            func record(_ key: String) throws(DiskError) -> [UInt8]?? {
                guard let raw = try context.read(key) else { return .some(nil) }
                guard let value = Durable.open(key, raw) else { return nil }  // damaged
                return .some(value)
            }
            guard let termBytes = try record("term"), let voteBytes = try record("vote"), let lastBytes = try record("last") else {
                return quarantine(context, "damaged term, vote or log length")
            }
            var termReader = ByteReader(termBytes ?? [0])
            term = termReader.varint() ?? 0
            if let voteBytes, var voteReader = Optional(ByteReader(voteBytes)), let vote = voteReader.varint(), vote > 0 {
                votedFor = NodeID(vote - 1)
            }
            var lastReader = ByteReader(lastBytes ?? [0])
            let last = Int(lastReader.varint() ?? 0)
            log = [RaftEntry(term: 0, command: [])]
            for index in stride(from: 1, through: last, by: 1) {
                guard let entry = try record("log.\(index)"), let bytes = entry else {
                    return quarantine(context, "log entry \(index) missing or damaged")
                }
                var reader = ByteReader(bytes)
                guard let entryTerm = reader.varint(), let command = reader.lengthPrefixed() else {
                    return quarantine(context, "log entry \(index) unreadable")
                }
                log.append(RaftEntry(term: entryTerm, command: command))
            }
        } catch {
            return quarantine(context, "disk error while loading: \(error)")
        }
        ready = true
        resetElectionTimer(context)
    }

    /// Damaged or unreadable durable state: take no part (no votes, no acks) and try again later.
    private func quarantine(_ context: NodeContext, _ reason: String) {
        ready = false
        context.log("raft: staying out, \(reason); retrying")
        context.setTimer(after: 500_000_000, tag: Self.loadTag)
    }

    private func put(_ context: NodeContext, _ key: String, _ value: [UInt8]) throws(DiskError) {
        try context.write(key, Durable.seal(key, value))
    }

    private func varint(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        ByteWriter.appendVarint(value, to: &bytes)
        return bytes
    }

    /// Persists term and vote; false when the disk refused (then nothing may be sent that relies on them).
    private func persistTermAndVote(_ context: NodeContext) -> Bool {
        if diskSuspect { return rewriteAll(context) }
        do {
            try put(context, "term", varint(term))
            if bug != "raft.forget-vote" {
                try put(context, "vote", varint(votedFor.map { UInt64($0) + 1 } ?? 0))
            }
            try context.fsync()
            return true
        } catch {
            diskSuspect = true
            return false
        }
    }

    /// After a failed write or fsync, part of a sequence of writes may still be pending and reach
    /// the disk with the next fsync; the next persist therefore rewrites the whole state.
    private func rewriteAll(_ context: NodeContext) -> Bool {
        diskSuspect = false
        do {
            try put(context, "term", varint(term))
            if bug != "raft.forget-vote" {
                try put(context, "vote", varint(votedFor.map { UInt64($0) + 1 } ?? 0))
            }
        } catch {
            diskSuspect = true
            return false
        }
        return persistLog(context, from: 1)
    }

    /// Persists entries from `from` to the end and the log length.
    private func persistLog(_ context: NodeContext, from: Int) -> Bool {
        if diskSuspect { return rewriteAll(context) }
        do {
            for index in stride(from: from, through: lastIndex, by: 1) {
                var bytes = varint(log[index].term)
                ByteWriter.appendVarint(UInt64(log[index].command.count), to: &bytes)
                bytes += log[index].command
                try put(context, "log.\(index)", bytes)
            }
            try put(context, "last", varint(UInt64(lastIndex)))
            try context.fsync()
            return true
        } catch {
            diskSuspect = true
            return false
        }
    }

    // MARK: Timers

    private func resetElectionTimer(_ context: NodeContext) {
        if let electionTimer { context.cancelTimer(electionTimer) }
        electionTimer = context.setTimer(after: 150_000_000 + context.random(below: 150) * 1_000_000, tag: Self.electionTag)
    }

    func timer(_ tag: UInt32, _ context: NodeContext) {
        switch tag {
        case Self.loadTag:
            if !ready { load(context) }
        case Self.electionTag:
            guard ready, role != .leader else { return }
            startElection(context)
        case Self.voteRetryTag:
            // A candidate asks again every peer that has not granted its vote, until its election
            // ends: a request or reply may have been lost, or a voter may have restarted.
            guard ready, role == .candidate else { return }
            requestVotes(context, onlyMissing: true)
            context.setTimer(after: 50_000_000, tag: Self.voteRetryTag)
        case Self.heartbeatTag:
            guard ready, role == .leader else { return }
            broadcastAppend(context)
            context.setTimer(after: 50_000_000, tag: Self.heartbeatTag)
        default:
            break
        }
    }

    private func startElection(_ context: NodeContext) {
        term += 1
        role = .candidate
        votedFor = id
        votes = [id]
        guard persistTermAndVote(context) else {
            resetElectionTimer(context)
            return
        }
        requestVotes(context, onlyMissing: false)
        context.setTimer(after: 50_000_000, tag: Self.voteRetryTag)
        resetElectionTimer(context)
        if context.clusterSize == 1 { becomeLeader(context) }
    }

    private func requestVotes(_ context: NodeContext, onlyMissing: Bool) {
        var body: [UInt8] = []
        ByteWriter.appendVarint(UInt64(lastIndex), to: &body)
        ByteWriter.appendVarint(lastTerm, to: &body)
        for peer in 0..<NodeID(context.clusterSize) where peer != id && !(onlyMissing && votes.contains(peer)) {
            context.send(Message(type: RaftMessage.requestVote, key: term, body: body), to: peer)
        }
    }

    private func becomeLeader(_ context: NodeContext) {
        role = .leader
        monitor.becameLeader(id, term: term)
        nextIndex = [Int](repeating: lastIndex + 1, count: context.clusterSize)
        matchIndex = [Int](repeating: 0, count: context.clusterSize)
        matchIndex[Int(id)] = lastIndex
        if let electionTimer { context.cancelTimer(electionTimer) }
        electionTimer = nil
        // A no-op of the new term lets entries of earlier terms commit promptly. The buggy leader
        // skips it and commits them by counting replicas instead.
        if bug != "raft.commit-old-term" {
            log.append(RaftEntry(term: term, command: []))
            if persistLog(context, from: lastIndex) {
                matchIndex[Int(id)] = lastIndex
            } else {
                log.removeLast()
            }
        }
        broadcastAppend(context)
        context.setTimer(after: 50_000_000, tag: Self.heartbeatTag)
    }

    private func stepDown(_ context: NodeContext, to newTerm: UInt64) {
        term = newTerm
        votedFor = nil
        if role == .leader { pending.removeAll() }  // their clients will time out: outcome unknown
        role = .follower
        _ = persistTermAndVote(context)
        resetElectionTimer(context)
    }

    // MARK: Messages

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        guard ready, Int(source) < context.clusterSize else { return }
        var reader = ByteReader(message.body)
        if message.key > term { stepDown(context, to: message.key) }
        switch message.type {
        case RaftMessage.requestVote:
            guard let candidateLastIndex = reader.varint(), let candidateLastTerm = reader.varint() else { return }
            var granted = false
            if message.key == term && (votedFor == nil || votedFor == source)
                && (candidateLastTerm > lastTerm || (candidateLastTerm == lastTerm && Int(candidateLastIndex) >= lastIndex)) {
                votedFor = source
                granted = persistTermAndVote(context)
                if granted { resetElectionTimer(context) }
            }
            context.send(Message(type: RaftMessage.vote, key: term, body: [granted ? 1 : 0]), to: source)
            if granted { context.crashPoint("after a vote") }
        case RaftMessage.vote:
            guard role == .candidate, message.key == term else { return }
            guard reader.byte() == 1 else { return }
            votes.insert(source)
            if votes.count * 2 > context.clusterSize { becomeLeader(context) }
        case RaftMessage.append:
            handleAppend(message, reader: &reader, from: source, context)
        case RaftMessage.appendReply:
            guard role == .leader, message.key == term, let success = reader.byte(), let match = reader.varint() else { return }
            let peer = Int(source)
            if success == 1 {
                matchIndex[peer] = max(matchIndex[peer], Int(match))
                nextIndex[peer] = matchIndex[peer] + 1
                advanceCommit(context)
            } else {
                nextIndex[peer] = max(1, min(nextIndex[peer] - 1, Int(match) + 1))
                sendAppend(to: source, context)
            }
        default:
            break
        }
    }

    private func handleAppend(_ message: Message, reader: inout ByteReader, from leader: NodeID, _ context: NodeContext) {
        func reply(_ success: Bool, _ match: Int) {
            var body: [UInt8] = [success ? 1 : 0]
            ByteWriter.appendVarint(UInt64(match), to: &body)
            context.send(Message(type: RaftMessage.appendReply, key: term, body: body), to: leader)
        }
        guard message.key == term else { return reply(false, lastIndex) }
        if role != .follower { role = .follower }
        resetElectionTimer(context)
        guard let previousIndex = reader.varint().map(Int.init), let previousTerm = reader.varint(),
              let leaderCommit = reader.varint().map(Int.init), let count = reader.varint() else { return }
        guard previousIndex <= lastIndex, log[previousIndex].term == previousTerm else {
            return reply(false, min(lastIndex, max(0, previousIndex - 1)))
        }
        var entries: [RaftEntry] = []
        for _ in 0..<count {
            guard let entryTerm = reader.varint(), let command = reader.lengthPrefixed() else { return }
            entries.append(RaftEntry(term: entryTerm, command: command))
        }
        var firstChanged: Int?
        for (offset, entry) in entries.enumerated() {
            let index = previousIndex + 1 + offset
            if index <= lastIndex {
                if log[index].term == entry.term { continue }
                if index <= commitIndex { monitor.overwroteCommitted(id, index: index) }
                log.removeSubrange(index...)
            }
            log.append(entry)
            firstChanged = firstChanged ?? index
        }
        if let firstChanged, !persistLog(context, from: firstChanged) {
            // Could not persist: keep the durable prefix only and do not acknowledge.
            log.removeSubrange(firstChanged...)
            return
        }
        let match = previousIndex + entries.count
        if leaderCommit > commitIndex { commitIndex = min(leaderCommit, match) }
        apply(context)
        reply(true, match)
    }

    private func broadcastAppend(_ context: NodeContext) {
        for peer in 0..<NodeID(context.clusterSize) where peer != id { sendAppend(to: peer, context) }
    }

    private func sendAppend(to peer: NodeID, _ context: NodeContext) {
        let next = min(nextIndex[Int(peer)], lastIndex + 1)
        let previous = next - 1
        var body: [UInt8] = []
        ByteWriter.appendVarint(UInt64(previous), to: &body)
        ByteWriter.appendVarint(log[previous].term, to: &body)
        ByteWriter.appendVarint(UInt64(commitIndex), to: &body)
        let end = min(lastIndex, previous + 16)
        ByteWriter.appendVarint(UInt64(end - previous), to: &body)
        if end > previous {
            for index in (previous + 1)...end {
                ByteWriter.appendVarint(log[index].term, to: &body)
                ByteWriter.appendVarint(UInt64(log[index].command.count), to: &body)
                body += log[index].command
            }
        }
        context.send(Message(type: RaftMessage.append, key: term, body: body), to: peer)
    }

    private func advanceCommit(_ context: NodeContext) {
        var candidate = lastIndex
        while candidate > commitIndex {
            let replicas = matchIndex.filter { $0 >= candidate }.count
            // Raft commits only entries of the current term by counting (older ones follow them).
            let termAllows = log[candidate].term == term || bug == "raft.commit-old-term"
            if replicas * 2 > context.clusterSize && termAllows { break }
            candidate -= 1
        }
        if candidate > commitIndex {
            commitIndex = candidate
            apply(context)
            // Committed and answered, but no follower knows yet.
            context.crashPoint("after a commit")
        }
    }

    private func apply(_ context: NodeContext) {
        while lastApplied < commitIndex {
            lastApplied += 1
            let entry = log[lastApplied]
            monitor.applied(id, index: lastApplied, term: entry.term, command: entry.command)
            guard !entry.command.isEmpty else { continue }
            var reader = ByteReader(entry.command)
            guard let requestID = reader.varint(), let client = reader.varint(), let operationBytes = reader.lengthPrefixed(),
                  let operation = ClientOperation.decode(operationBytes) else { continue }
            let reply = execute(operation)
            if role == .leader, let request = pending.removeValue(forKey: lastApplied), request.id == requestID, request.client == UInt32(client) {
                context.reply(to: request, reply)
            }
        }
    }

    private func execute(_ operation: ClientOperation) -> Reply {
        switch operation.function {
        case .read:
            return store[operation.key].map { .ok($0) } ?? .okNil
        case .write:
            store[operation.key] = operation.value
            return .ok(operation.value)
        case .cas:
            guard store[operation.key] == operation.expected else { return .fail }
            store[operation.key] = operation.value
            return .ok(operation.value)
        case .add, .echo, .generate, .commit, .list, .txn:
            return .fail
        }
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        guard ready, role == .leader else { return context.reply(to: request, .fail) }
        if bug == "raft.stale-read" && request.operation.function == .read {
            return context.reply(to: request, execute(request.operation))
        }
        guard context.allocate(64) else { return context.reply(to: request, .fail) }  // memory pressure: refuse
        var command: [UInt8] = []
        ByteWriter.appendVarint(request.id, to: &command)
        ByteWriter.appendVarint(UInt64(request.client), to: &command)
        let operation = request.operation.encoded()
        ByteWriter.appendVarint(UInt64(operation.count), to: &command)
        command += operation
        log.append(RaftEntry(term: term, command: command))
        guard persistLog(context, from: lastIndex) else {
            log.removeLast()
            context.release(64)
            // Some of it may have reached the disk and commit later: the outcome is unknown.
            return context.reply(to: request, Reply(outcome: .info))
        }
        context.release(64)
        pending[lastIndex] = request
        matchIndex[Int(id)] = lastIndex
        // A leader that dies with an entry only on its own disk leaves it for a later term to settle.
        context.crashPoint("after an append")
        broadcastAppend(context)
        if context.clusterSize == 1 { advanceCommit(context) }
    }

    var isPrimary: Bool { role == .leader }

    func stateDigest() -> UInt64 {
        var digest = StableDigest()
        digest.mix(term)
        digest.mix(UInt64(commitIndex))
        digest.mix(UInt64(lastIndex))
        for key in store.keys.sorted() {
            digest.mix(key)
            digest.mix(UInt64(bitPattern: store[key]!))
        }
        return digest.value
    }
}
