import Checkers
import Foundation
import Simulation

/// A system whose nodes are external programs speaking the Maelstrom protocol: newline-delimited
/// JSON `{"src","dest","body"}` on stdin/stdout, `init`/`init_ok`, `msg_id`/`in_reply_to`. Every
/// message between them passes through the simulated network (so partitions, loss, delays and
/// crashes apply), one delivery at a time, each followed by a wait until the process is quiet.
///
/// Workloads (`--workload`), with the checks that judge them:
/// - `echo`: `echo` → `echo_ok` with the same text (wrong echoes);
/// - `unique-ids`: `generate` → `generate_ok` with an `id` (duplicate ids);
/// - `broadcast`: `topology` at start, then `broadcast` and `read` (every message acknowledged
///   before the liveness phase is in each node's last read once the cluster settled, and nothing
///   was read that no client sent);
/// - `g-counter`: `add` and `read` (once the cluster settled, each node's last read lies between
///   the acknowledged adds and all adds that may have happened);
/// - `pn-counter`: the same with deltas below zero too (the bounds take each unacknowledged add
///   at its worst either way);
/// - `g-set`: `add` of an `element` and `read` of the set (as broadcast: nothing read that no
///   client added, and every acknowledged add in each node's last read once the cluster settled);
/// - `kafka`: `send`, `poll`, `commit_offsets`, `list_committed_offsets` on a few keys (no offset
///   acknowledged twice, polls in offset order with the messages sent, no acknowledged message
///   skipped inside a poll's range, committed offsets neither lost nor invented);
/// - `lin-kv`: `read`/`write`/`cas` on a few keys (linearizability, per key);
/// - `txn-rw-register`: `txn` of one to four reads and writes of a few registers, and
///   `txn-list-append`: the same with `append` to lists; judged at the isolation level asked
///   for with `--option isolation=N` (`TransactionChecker`).
/// Maelstrom's key-value services `seq-kv`, `lin-kv` and `lww-kv` are there to talk to (one
/// linearizable store each) and its timestamp oracle `lin-tso`, all answering at once (they are
/// not partitioned or delayed).
public struct ExternalSystem: SystemDefinition {
    public static let name = "external"
    public static let bugs: [String] = []
    public static let optionNames = ["poll_ms", "quiet_us", "settle_s", "keys", "isolation"]
    public static let suites: [Suite] = [.none, .nodes, .network, .distributed]
    public static let defaultSuite: Suite = .network
    public static func messageName(_ type: UInt16) -> String? { MessageTypes.name(type) }

    /// Allowed values of `--option poll_ms=N` and `--option quiet_us=N`.
    public static let pollMillisecondsRange = 0...3_600_000
    public static let quietMicrosecondsRange = 0...1_000_000
    /// Allowed values of `--option settle_s=N`: how long a node may take to answer and settle
    /// (its start-up included: a JVM node can take longer than the default 10 s).
    public static let settleSecondsRange = 1...3_600
    public static func settleSeconds(_ options: [String: Int]) -> Double {
        Double(min(max(settleSecondsRange.lowerBound, options["settle_s"] ?? 10), settleSecondsRange.upperBound))
    }

    public let command: String
    public let workload: Workload
    let nodes: Int
    let pollNanoseconds: UInt64
    let quietMicroseconds: Int
    let settleSeconds: Double
    let keys: UInt64
    /// The transaction workloads: what they are judged against (`TransactionChecker.Level`).
    let isolation: TransactionChecker.Level
    let observations: Observations
    let services: Services

    public init(configuration: SimulationConfiguration) {
        let external = configuration.external ?? ExternalNodes(command: "false", workload: Workload.echo.rawValue)
        command = external.command
        workload = Workload(rawValue: external.workload) ?? .echo
        nodes = configuration.nodes
        pollNanoseconds = UInt64(min(max(0, configuration.options["poll_ms"] ?? 100), ExternalSystem.pollMillisecondsRange.upperBound)) * 1_000_000
        quietMicroseconds = min(max(0, configuration.options["quiet_us"] ?? 200), ExternalSystem.quietMicrosecondsRange.upperBound)
        settleSeconds = ExternalSystem.settleSeconds(configuration.options)
        keys = UInt64(max(1, configuration.options["keys"] ?? 3))
        isolation = TransactionChecker.Level(rawValue: configuration.options["isolation"] ?? 0) ?? .readUncommitted
        observations = Observations()
        services = Services()
        harnessMessages = Counter()
    }

    /// Numbers the messages the harness itself sends as `c0` (`init`, `topology`), across nodes
    /// and restarts, so no two share a `msg_id`.
    let harnessMessages: Counter

    public func makeNode(id: NodeID) -> Node { ExternalNode(id: id, system: self) }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        switch workload {
        case .echo:
            return ClientOperation(function: .echo, key: UInt64(client), value: Int64(random(1_000_000)))
        case .uniqueIDs:
            return ClientOperation(function: .generate)
        case .broadcast:
            if random(2) == 0 { return ClientOperation(function: .read) }
            return ClientOperation(function: .write, value: Int64(random(1_000_000)))
        case .gCounter:
            if random(2) == 0 { return ClientOperation(function: .read) }
            return ClientOperation(function: .add, value: Int64(1 + random(5)))
        case .pnCounter:
            if random(2) == 0 { return ClientOperation(function: .read) }
            // One add in three decrements: the count drifts upwards, so a node that loses
            // others' adds reads far off rather than near a zero both sides wander about.
            let size = Int64(1 + random(5))
            return ClientOperation(function: .add, value: random(3) == 0 ? -size : size)
        case .gSet:
            if random(2) == 0 { return ClientOperation(function: .read) }
            // From a range wide enough that two adds of one element (where a lost add would hide
            // behind its twin) practically never happen.
            return ClientOperation(function: .write, value: Int64(random(1 << 40)))
        case .kafka:
            // Offsets to poll from and commit come from what sends were acknowledged so far.
            let key = random(keys)
            let highest = observations.highestOffset[key] ?? -1
            switch random(10) {
            case 0..<5: return ClientOperation(function: .write, key: key, value: Int64(random(1_000_000)))
            case 5..<8: return ClientOperation(function: .read, key: key, value: Int64(random(UInt64(highest + 2))))
            case 8: return ClientOperation(function: .commit, key: key, value: Int64(random(UInt64(highest + 2))))
            default: return ClientOperation(function: .list, key: key)
            }
        case .linKV:
            let key = random(keys)
            switch random(4) {
            case 0, 1: return ClientOperation(function: .read, key: key)
            case 2: return ClientOperation(function: .write, key: key, value: Int64(random(5)))
            default: return ClientOperation(function: .cas, key: key, value: Int64(random(5)), expected: Int64(random(5)))
            }
        case .txnRWRegister, .txnListAppend:
            let registers = min(keys, TransactionShape.maxKeys)
            let appends = workload == .txnListAppend
            let steps = (0..<(1 + random(UInt64(TransactionShape.maxSteps)))).map { _ -> TransactionShape.Step in
                let write = random(2) == 1
                let slot = Int(random(registers))
                guard appends else { return TransactionShape.Step(write: write, key: UInt64(slot)) }
                return TransactionShape.Step(write: write, key: observations.lists.key(slot: slot, slots: Int(registers), append: write))
            }
            return ClientOperation(function: .txn, key: TransactionShape(steps, appends: appends).packed)
        }
    }

    public func makeCheckers() -> [Checker] {
        switch workload {
        case .echo: [EchoTextChecker(observations: observations)]
        case .uniqueIDs: [UniqueIDChecker(observations: observations)]
        case .broadcast: [BroadcastChecker(observations: observations)]
        case .gCounter: [GCounterChecker(name: "g-counter")]
        case .pnCounter: [GCounterChecker(name: "pn-counter")]
        case .gSet: [BroadcastChecker(observations: observations, name: "g-set", messages: "element")]
        case .kafka: [KafkaChecker(observations: observations)]
        case .linKV: [LinearizabilityRunChecker()]
        case .txnRWRegister, .txnListAppend: [TransactionChecker(name: workload.rawValue, level: isolation)]
        }
    }

    /// The preflight for a recorded run of external nodes (replay, shrink): the command is run as
    /// recorded, from the current directory, so a relative path that does not resolve here must
    /// say so before any re-execution (which would otherwise diverge at its first event).
    public static func preflight(recorded configuration: SimulationConfiguration) throws {
        guard configuration.system == name, let external = configuration.external else { return }
        let quiet = min(max(0, configuration.options["quiet_us"] ?? 200), quietMicrosecondsRange.upperBound)
        do {
            try preflight(external, nodes: configuration.nodes, quietMicroseconds: quiet, settleSeconds: settleSeconds(configuration.options))
        } catch {
            let directory = FileManager.default.currentDirectoryPath
            // Relative paths in the command resolve from here; absolute ones name files that moved.
            let relative = external.command.split(whereSeparator: \.isWhitespace)
                .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }
                .contains { $0.contains("/") && !$0.hasPrefix("/") && !$0.hasPrefix("~") }
            throw NodeProcessError.spawnFailed(command: external.command,
                                               reason: "the run's node command does not start a working node from \(directory) (\(error)); "
                                                   + (relative ? "run this from the directory the run was recorded in, where its relative paths resolve"
                                                               : "check that the programs and files it names are still there, as they were when the run was recorded"))
        }
    }

    /// Starts one node and completes its `init` handshake, for a clear error before any run when
    /// the command is wrong.
    public static func preflight(_ external: ExternalNodes, nodes: Int, quietMicroseconds: Int = 200, settleSeconds: Double = 10) throws {
        let process = try NodeProcess(command: external.command)
        process.quietMicroseconds = quietMicroseconds
        process.settleLimitSeconds = settleSeconds
        defer { process.terminate() }
        let ids = (0..<nodes).map { "n\($0)" }
        let lines: [[UInt8]]
        do {
            lines = try process.exchange(Maelstrom.line(src: "c0", dest: "n0", body: [
                "type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ids,
            ]), answerExpected: true)
        } catch NodeProcessError.unresponsive(let command, let seconds, let stderr) {
            let written = process.linesBeforeTimeout
            if !written.isEmpty {
                let said = written.prefix(2).map { String(decoding: $0.prefix(200), as: UTF8.self) }.joined(separator: " | ")
                throw NodeProcessError.exited(command: command, status: "answered init (\(said)) but did not go quiet within \(seconds) s: "
                                              + "a node must go idle once it has handled a message (no thread left running, nothing more "
                                              + "written to stdout or stderr); for a runtime that hands work between threads slowly, raise "
                                              + "--option quiet_us=N", stderr: stderr)
            }
            let pending = process.unfinishedLine.isEmpty
                ? "it wrote nothing; if its standard output is buffered, flush it after every message (Python: print(..., flush=True) or python3 -u)"
                : "it wrote " + String(decoding: process.unfinishedLine.prefix(300), as: UTF8.self) + " — without a newline, so not a message yet"
            throw NodeProcessError.exited(command: command, status: "did not answer init with init_ok within \(seconds) s (\(pending)); "
                                          + "a node that takes longer to start needs --option settle_s=N", stderr: stderr)
        } catch NodeProcessError.exited(let command, let status, let stderr) {
            // Say when: before it answered its very first message.
            throw NodeProcessError.exited(command: command, status: status + " before answering init (a node must keep running, "
                                          + "reading one JSON message per line on stdin)", stderr: stderr)
        }
        // Standard output carries messages only: a banner or a log line there breaks every run.
        if let stray = lines.first(where: { (try? Maelstrom.parse($0)) == nil }) {
            throw NodeProcessError.exited(command: external.command,
                                          status: "wrote \(String(decoding: stray.prefix(200), as: UTF8.self)) on its standard output, which is not a "
                                              + "Maelstrom message; standard output carries messages only: write logs and banners to standard error",
                                          stderr: process.stderr)
        }
        for line in lines {
            if let envelope = try? Maelstrom.parse(line), envelope.dest == "c0",
               envelope.body["type"] as? String == "init_ok" { return }
        }
        var said = lines.prefix(3).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " | ")
        if said.isEmpty && !process.unfinishedLine.isEmpty {
            said = String(decoding: process.unfinishedLine.prefix(300), as: UTF8.self) + " — without a newline, so not a message yet"
        }
        throw NodeProcessError.exited(command: external.command,
                                      status: "did not answer init with init_ok" + (said.isEmpty ? " (it wrote nothing)" : " (it wrote: \(said))"),
                                      stderr: process.stderr)
    }
}

final class Counter {
    private var next: Int64 = 1
    func take() -> Int64 {
        defer { next += 1 }
        return next
    }
}

/// What the external nodes said that the checkers need beyond a `Reply` (read sets, id texts).
final class Observations {
    /// Request id → the messages a broadcast `read` returned (sorted).
    var reads: [UInt64: [Int64]] = [:]
    /// Request id → the text a reply carried (an echo, an id), for explanations.
    var texts: [UInt64: String] = [:]
    /// kafka: request id → the (offset, message) pairs a poll returned for its key.
    var polls: [UInt64: [(Int64, Int64)]] = [:]
    /// kafka: key → the highest offset a send was acknowledged with.
    var highestOffset: [UInt64: Int64] = [:]
    /// txn-list-append: which lists are in use.
    var lists = ListRotation()
}

/// txn-list-append's lists in use: `keys` slots, each a list until it has had
/// `ListRotation.appendsPerList` appends and then a fresh one (as Jepsen's generator limits the
/// writes per key), so reads stay short however long the run. Only lists 0…4095 exist: the last
/// ones take every append after that.
struct ListRotation {
    static let appendsPerList = 16
    private var current: [UInt64] = []
    private var appends: [Int] = []
    private var next: UInt64 = 0

    mutating func key(slot: Int, slots: Int, append: Bool) -> UInt64 {
        while current.count < slots {
            current.append(next)
            appends.append(0)
            next += 1
        }
        let key = current[slot]
        guard append else { return key }
        appends[slot] += 1
        if appends[slot] >= Self.appendsPerList && next < TransactionShape.maxKeys {
            current[slot] = next
            appends[slot] = 0
            next += 1
        }
        return key
    }
}

/// The workloads external nodes can be driven with.
public enum Workload: String, CaseIterable, Sendable {
    case echo
    case uniqueIDs = "unique-ids"
    case broadcast
    case gCounter = "g-counter"
    case pnCounter = "pn-counter"
    case gSet = "g-set"
    case kafka
    case linKV = "lin-kv"
    case txnRWRegister = "txn-rw-register"
    case txnListAppend = "txn-list-append"
}

/// Stable 16-bit codes for Maelstrom message types (FNV-1a folded), and their names for reports.
enum MessageTypes {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var names: [UInt16: String] = [:]

    static func code(_ type: String) -> UInt16 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in type.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
        let code = UInt16(truncatingIfNeeded: hash ^ (hash >> 16))
        lock.lock()
        if names[code] == nil { names[code] = type }
        lock.unlock()
        return code
    }

    static func name(_ code: UInt16) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return names[code]
    }
}

/// Maelstrom envelopes.
enum Maelstrom {
    struct Envelope {
        var src: String
        var dest: String
        var body: [String: Any]
        var type: String
    }

    enum ParseError: Error { case notJSON, notObject, missing(String) }

    static func parse(_ line: [UInt8]) throws -> Envelope {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]) else { throw ParseError.notJSON }
        guard let dictionary = object as? [String: Any] else { throw ParseError.notObject }
        guard let src = dictionary["src"] as? String else { throw ParseError.missing("src") }
        guard let dest = dictionary["dest"] as? String else { throw ParseError.missing("dest") }
        guard let body = dictionary["body"] as? [String: Any] else { throw ParseError.missing("body") }
        guard let type = body["type"] as? String else { throw ParseError.missing("body.type") }
        return Envelope(src: src, dest: dest, body: body, type: type)
    }

    /// One line of JSON with sorted keys (stable bytes for the trace).
    static func line(src: String, dest: String, body: [String: Any]) -> [UInt8] {
        let object: [String: Any] = ["src": src, "dest": dest, "body": body]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data)
    }

    /// Canonical text of any JSON value (for ids and echoes).
    /// `text` as a report quotes it: a long one (a node may answer with megabytes) cut to its
    /// first 200 characters and its length.
    static func clipped(_ text: String) -> String {
        guard text.utf8.count > 240 else { return text }
        return String(text.prefix(200)) + "… (\(text.utf8.count) bytes)"
    }

    static func text(_ value: Any?) -> String {
        guard let value else { return "null" }
        if let string = value as? String { return string }
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
            return String(decoding: data, as: UTF8.self)
        }
        return "\(value)"
    }

    /// A JSON integer (a float with an integer value too, as a node that keeps numbers as
    /// doubles writes them), not a string holding one, a boolean, a fraction or a number beyond
    /// 64 bits: a protocol field (`in_reply_to`, `code`) or a value a checker compares.
    static func jsonInteger(_ value: Any?) -> Int64? {
        guard !(value is String), let number = value as? NSNumber else { return nil }
        switch String(cString: number.objCType) {
        case "c", "B": return nil  // true and false
        case "d", "f": return Int64(exactly: number.doubleValue)
        case "Q", "L", "I", "S", "C": return number.uint64Value <= UInt64(Int64.max) ? Int64(number.uint64Value) : nil
        default: return number.int64Value
        }
    }

    static func integer(_ value: Any?) -> Int64? {
        if let number = value as? NSNumber { return number.int64Value }
        if let string = value as? String { return Int64(string) }
        return nil
    }

    /// Error codes after which the operation certainly did not happen.
    static let definiteErrors: Set<Int64> = [1, 10, 11, 12, 14, 20, 21, 22, 30]

    static func node(_ name: String, count: Int) -> NodeID? {
        guard name.hasPrefix("n"), let index = UInt32(name.dropFirst()), Int(index) < count else { return nil }
        return index
    }

    static func client(_ name: String) -> UInt32? {
        guard name.hasPrefix("c"), let index = UInt32(name.dropFirst()) else { return nil }
        return index
    }
}

/// Adapts one external process to the simulator's node API.
final class ExternalNode: Node {
    let id: NodeID
    let system: ExternalSystem
    var process: NodeProcess?
    /// msg_id sent → the client request it carries.
    var pending: [Int64: ClientRequest] = [:]
    var digest = StableDigest()
    var failed = false

    static let pollTag: UInt32 = 1

    init(id: NodeID, system: ExternalSystem) {
        self.id = id
        self.system = system
    }

    var name: String { "n\(id)" }

    func start(_ context: NodeContext) {
        do {
            process = try NodeProcess(command: system.command)
            process?.quietMicroseconds = system.quietMicroseconds
            process?.settleLimitSeconds = system.settleSeconds
        } catch {
            fail(context, kind: "node-exited", "\(error)")
            return
        }
        let initID = takeMessageID()
        let ids = (0..<system.nodes).map { "n\($0)" }
        let lines = exchange(Maelstrom.line(src: "c0", dest: name, body: [
            "type": "init", "msg_id": initID, "node_id": name, "node_ids": ids,
        ]), context, answerExpected: true)
        guard let lines else { return }
        var initialized = false
        for line in lines {
            if let envelope = try? Maelstrom.parse(line), envelope.dest == "c0", envelope.type == "init_ok" {
                initialized = true
            }
        }
        handle(lines, context)
        guard !failed else { return }
        if !initialized {
            fail(context, kind: "no-init-ok", "\(name) did not answer init with init_ok")
            return
        }
        if system.workload == .broadcast {
            var topology: [String: [String]] = [:]
            for node in 0..<system.nodes { topology["n\(node)"] = ids.filter { $0 != "n\(node)" } }
            if let lines = exchange(Maelstrom.line(src: "c0", dest: name, body: [
                "type": "topology", "msg_id": takeMessageID(), "topology": topology,
            ]), context) {
                handle(lines, context)
            }
        }
        if system.pollNanoseconds > 0 && !failed { _ = context.setTimer(after: system.pollNanoseconds, tag: ExternalNode.pollTag) }
    }

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        guard !failed, let lines = exchange(message.body, context) else { return }
        handle(lines, context)
    }

    func timer(_ tag: UInt32, _ context: NodeContext) {
        guard !failed, tag == ExternalNode.pollTag else { return }
        // Whatever the process said on its own (its own timers) since the last delivery.
        if let lines = exchange(nil, context) { handle(lines, context) }
        if !failed { _ = context.setTimer(after: system.pollNanoseconds, tag: ExternalNode.pollTag) }
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        guard !failed else { return }
        // The run's request id: unique across clients, nodes and restarts.
        let messageID = Int64(truncatingIfNeeded: request.id)
        let operation = request.operation
        var body: [String: Any] = ["msg_id": messageID]
        switch (system.workload, operation.function) {
        case (.echo, _):
            body["type"] = "echo"
            body["echo"] = "\(operation.value)"
        case (.uniqueIDs, _):
            body["type"] = "generate"
        case (.broadcast, .read):
            body["type"] = "read"
        case (.broadcast, _):
            body["type"] = "broadcast"
            body["message"] = operation.value
        case (.gCounter, .read), (.pnCounter, .read), (.gSet, .read):
            body["type"] = "read"
        case (.gCounter, _), (.pnCounter, _):
            body["type"] = "add"
            body["delta"] = operation.value
        case (.gSet, _):
            body["type"] = "add"
            body["element"] = operation.value
        case (.kafka, .write):
            body["type"] = "send"
            body["key"] = "k\(operation.key)"
            body["msg"] = operation.value
        case (.kafka, .read):
            body["type"] = "poll"
            body["offsets"] = ["k\(operation.key)": operation.value]
        case (.kafka, .commit):
            body["type"] = "commit_offsets"
            body["offsets"] = ["k\(operation.key)": operation.value]
        case (.kafka, _):
            body["type"] = "list_committed_offsets"
            body["keys"] = ["k\(operation.key)"]
        case (.linKV, .read):
            body["type"] = "read"
            body["key"] = operation.key
        case (.linKV, .write):
            body["type"] = "write"
            body["key"] = operation.key
            body["value"] = operation.value
        case (.linKV, _):
            body["type"] = "cas"
            body["key"] = operation.key
            body["from"] = operation.expected
            body["to"] = operation.value
        case (.txnRWRegister, _), (.txnListAppend, _):
            body["type"] = "txn"
            if let shape = TransactionShape(packed: operation.key) {
                body["txn"] = shape.steps.enumerated().map { index, step -> [Any] in
                    step.write ? [shape.writeName, step.key, TransactionShape.writtenValue(requestID: request.id, index: index)] : ["r", step.key, NSNull()]
                }
            }
        }
        pending[messageID] = request
        guard let lines = exchange(Maelstrom.line(src: "c\(request.client + 1)", dest: name, body: body), context) else { return }
        handle(lines, context)
    }

    func stateDigest() -> UInt64 { digest.value }

    // MARK: -

    private func takeMessageID() -> Int64 { system.harnessMessages.take() }

    private func exchange(_ line: [UInt8]?, _ context: NodeContext, answerExpected: Bool = false) -> [[UInt8]]? {
        guard let process else { return nil }
        do {
            return try process.exchange(line, answerExpected: answerExpected)
        } catch let error as NodeProcessError {
            switch error {
            case .unresponsive, .flooding: fail(context, kind: "node-unresponsive", "\(name): \(error)")
            default: fail(context, kind: "node-exited", "\(name): \(error)")
            }
        } catch {
            fail(context, kind: "node-exited", "\(name): \(error)")
        }
        return nil
    }

    private func fail(_ context: NodeContext, kind: String, _ explanation: String) {
        failed = true
        process?.terminate()
        process = nil
        context.reportViolation(checker: "external-node", kind: kind, explanation)
    }

    /// Routes what the process wrote: to other nodes through the network, to clients as replies,
    /// to a Maelstrom service (answered at once, and what the node then says is routed too).
    private func handle(_ lines: [[UInt8]], _ context: NodeContext) {
        var queue = lines[...]
        var serviceCalls = 0
        while let line = queue.popFirst(), !failed {
            digest.mix(line)
            let envelope: Maelstrom.Envelope
            do {
                envelope = try Maelstrom.parse(line)
            } catch {
                let text = String(decoding: line.prefix(200), as: UTF8.self)
                fail(context, kind: "malformed-output", "\(name) wrote a line that is not a Maelstrom message ({\"src\",\"dest\",\"body\":{\"type\",…}}): \(text)")
                return
            }
            guard envelope.src == name else {
                fail(context, kind: "wrong-src", "\(name) wrote a message with src \"\(envelope.src)\" (to \(envelope.dest), type \(envelope.type))")
                return
            }
            if let target = Maelstrom.node(envelope.dest, count: system.nodes) {
                let messageID = Maelstrom.integer(envelope.body["msg_id"]) ?? Maelstrom.integer(envelope.body["in_reply_to"]) ?? 0
                context.send(Message(type: MessageTypes.code(envelope.type), key: UInt64(bitPattern: messageID), body: line), to: target)
            } else if let client = Maelstrom.client(envelope.dest) {
                // c0 is the harness (init, topology): its replies need no routing.
                guard client > 0 else { continue }
                guard let replyTo = Maelstrom.jsonInteger(envelope.body["in_reply_to"]) else {
                    fail(context, kind: "malformed-output", "\(name) sent \(envelope.type) to \(envelope.dest) without an integer \"in_reply_to\" "
                         + "(a reply names the msg_id of the request it answers): \(String(decoding: line.prefix(200), as: UTF8.self))")
                    return
                }
                // No request waiting: a late answer to one that timed out, or a second answer.
                guard let request = pending[replyTo] else { continue }
                guard request.client + 1 == client else {
                    fail(context, kind: "misdirected-reply", "\(name) answered request \(replyTo) of c\(request.client + 1) to \(envelope.dest)")
                    return
                }
                pending[replyTo] = nil
                answer(request, envelope, context)
            } else if Services.names.contains(envelope.dest) {
                serviceCalls += 1
                guard serviceCalls <= 100_000 else {
                    fail(context, kind: "node-unresponsive", "\(name) called \(envelope.dest) 100000 times in one step without settling")
                    return
                }
                var reply = system.services.handle(service: envelope.dest, envelope.body)
                guard let messageID = envelope.body["msg_id"] else { continue }
                reply["in_reply_to"] = messageID
                guard let more = exchange(Maelstrom.line(src: envelope.dest, dest: name, body: reply), context) else { return }
                queue.append(contentsOf: more)
            } else {
                fail(context, kind: "unknown-destination",
                     "\(name) sent \(envelope.type) to \"\(envelope.dest)\", which is neither a node (n0…n\(system.nodes - 1)), a client nor a service (\(Services.names.joined(separator: ", ")))")
                return
            }
        }
    }

    private func answer(_ request: ClientRequest, _ envelope: Maelstrom.Envelope, _ context: NodeContext) {
        let body = envelope.body
        /// A reply without a field its workload needs: the node is at fault, not the system.
        func missing(_ field: String) {
            fail(context, kind: "malformed-output", "\(name) answered c\(request.client + 1)'s request with \(envelope.type) without \(field)")
        }
        if envelope.type == "error" {
            guard let code = Maelstrom.jsonInteger(body["code"]) else { return missing("an integer \"code\"") }
            if system.workload == .linKV && request.operation.function == .read && code == 20 {
                context.reply(to: request, .okNil)
            } else {
                context.reply(to: request, Reply(outcome: Maelstrom.definiteErrors.contains(code) ? .fail : .info))
            }
            return
        }
        switch system.workload {
        case .echo:
            let text = Maelstrom.text(body["echo"])
            // Kept only to quote in a report.
            system.observations.texts[request.id] = Maelstrom.clipped(text)
            context.reply(to: request, .ok(Int64(text) ?? Int64.min))
        case .uniqueIDs:
            let text = Maelstrom.text(body["id"])
            system.observations.texts[request.id] = Maelstrom.clipped(text)
            var digest = StableDigest()
            digest.mix(Array(text.utf8))
            context.reply(to: request, .ok(Int64(bitPattern: digest.value)))
        case .broadcast:
            if request.operation.function == .read {
                let values = ((body["messages"] as? [Any]) ?? []).compactMap { Maelstrom.integer($0) }.sorted()
                system.observations.reads[request.id] = values
                context.reply(to: request, .ok(Int64(values.count)))
            } else {
                context.reply(to: request, .ok())
            }
        case .gSet:
            if request.operation.function == .read {
                guard let items = body["value"] as? [Any] else { return missing("a \"value\" array") }
                let values = items.compactMap { Maelstrom.jsonInteger($0) }.sorted()
                guard values.count == items.count else { return missing("integer elements in its \"value\"") }
                system.observations.reads[request.id] = values
                context.reply(to: request, .ok(Int64(values.count)))
            } else {
                context.reply(to: request, .ok())
            }
        case .gCounter, .pnCounter:
            if request.operation.function == .read {
                guard let value = Maelstrom.jsonInteger(body["value"]) else { return missing("an integer \"value\"") }
                context.reply(to: request, .ok(value))
            } else {
                context.reply(to: request, .ok())
            }
        case .kafka:
            let key = "k\(request.operation.key)"
            switch request.operation.function {
            case .write:
                guard let offset = Maelstrom.integer(body["offset"]) else {
                    context.reply(to: request, Reply(outcome: .info))
                    return
                }
                system.observations.highestOffset[request.operation.key] = max(system.observations.highestOffset[request.operation.key] ?? -1, offset)
                context.reply(to: request, .ok(offset))
            case .read:
                let pairs = ((body["msgs"] as? [String: Any])?[key] as? [Any]) ?? []
                system.observations.polls[request.id] = pairs.map { pair in
                    let items = pair as? [Any] ?? []
                    return (Maelstrom.integer(items.first) ?? -1, Maelstrom.integer(items.count > 1 ? items[1] : nil) ?? Int64.min)
                }
                context.reply(to: request, .ok(Int64(pairs.count)))
            case .list:
                if let offset = Maelstrom.integer((body["offsets"] as? [String: Any])?[key]) {
                    context.reply(to: request, .ok(offset))
                } else {
                    context.reply(to: request, .okNil)
                }
            default:
                context.reply(to: request, .ok())
            }
        case .linKV:
            if request.operation.function == .read {
                if body["value"] == nil || body["value"] is NSNull {
                    context.reply(to: request, .okNil)
                } else {
                    guard let value = Maelstrom.jsonInteger(body["value"]) else { return missing("an integer (or null) \"value\"") }
                    context.reply(to: request, .ok(value))
                }
            } else {
                context.reply(to: request, .ok())
            }
        case .txnRWRegister, .txnListAppend:
            guard let shape = TransactionShape(packed: request.operation.key) else { return context.reply(to: request, Reply(outcome: .info)) }
            guard let steps = body["txn"] as? [Any] else { return missing("a \"txn\" array") }
            // The answer as text, for a complaint only (a long list read costs to print).
            var sent: String { String(Maelstrom.text(body["txn"]).prefix(200)) }
            guard steps.count == shape.steps.count else {
                return fail(context, kind: "malformed-output",
                            "\(name) answered c\(request.client + 1)'s txn of \(shape.steps.count) steps with \(steps.count): \(sent)")
            }
            var results: [[Int64]?] = []
            for (index, (item, step)) in zip(steps, shape.steps).enumerated() {
                let parts = item as? [Any] ?? []
                let written = TransactionShape.writtenValue(requestID: request.id, index: index)
                let function = parts.first as? String
                let key = parts.count == 3 ? Maelstrom.jsonInteger(parts[1]) : nil
                // What the step carries back: a register's value or null, a list (null: empty),
                // a write's own value.
                var result: [Int64]??
                if parts.count == 3 {
                    if parts[2] is NSNull {
                        result = .some(nil)
                    } else if shape.appends && !step.write {
                        let items = parts[2] as? [Any] ?? []
                        let values = items.compactMap { Maelstrom.jsonInteger($0) }
                        if parts[2] is [Any] && values.count == items.count { result = .some(values) }
                    } else if let value = Maelstrom.jsonInteger(parts[2]) {
                        result = .some([value])
                    }
                }
                guard function == (step.write ? shape.writeName : "r"), key == Int64(step.key), let result,
                      !step.write || result == [written] else {
                    let wanted = step.write ? "[\"\(shape.writeName)\", \(step.key), \(written)]"
                        : "[\"r\", \(step.key), \(shape.appends ? "a list of integers or null" : "an integer or null")]"
                    return fail(context, kind: "malformed-output",
                                "\(name) answered c\(request.client + 1)'s txn with step \(index + 1) not \(wanted): \(sent)")
                }
                results.append(result)
            }
            context.reply(to: request, Reply(outcome: .ok, results: results, resultsAreLists: shape.appends))
        }
    }
}

// MARK: - Checkers

/// `echo`: the reply carries the text sent.
final class EchoTextChecker: Checker {
    let name = "echo"
    let observations: Observations
    init(observations: Observations) { self.observations = observations }

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard let reply = entry.reply, reply.outcome == .ok, reply.value != entry.request.operation.value else { return nil }
        let got = observations.texts[entry.request.id] ?? "?"
        return Violation(checker: name, kind: "wrong-echo",
                         explanation: "client \(entry.request.client) sent echo \"\(entry.request.operation.value)\" to n\(entry.target) and got \"\(got)\" back",
                         events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
    }
}

/// `unique-ids`: no id is handed out twice.
final class UniqueIDChecker: Checker {
    let name = "unique-ids"
    let observations: Observations
    /// id digest → the completion that first returned it.
    var seen: [Int64: HistoryEntry] = [:]
    init(observations: Observations) { self.observations = observations }

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard let reply = entry.reply, reply.outcome == .ok else { return nil }
        if let first = seen[reply.value] {
            let text = observations.texts[entry.request.id] ?? "?"
            return Violation(checker: name, kind: "duplicate-id",
                             explanation: "id \(text) was generated twice: by n\(first.target) for client \(first.request.client) and by n\(entry.target) for client \(entry.request.client)",
                             events: [first.completeEvent, entry.completeEvent].compactMap { $0 })
        }
        seen[reply.value] = entry
        return nil
    }
}

/// `broadcast`: nothing is read that no client broadcast, and once the cluster has settled in the
/// liveness phase every node's last read holds every message acknowledged before that phase.
final class BroadcastChecker: Checker {
    let name: String
    /// What a value is called in explanations ("message", "element"), and the kinds' suffix.
    let noun: String
    let observations: Observations
    /// Every message a client broadcast so far (history entries scanned up to `scanned`).
    var sent = Set<Int64>()
    var scanned = 0
    /// `g-set` is judged as `broadcast` is: its adds are writes, its reads return the set.
    init(observations: Observations, name: String = "broadcast", messages noun: String = "message") {
        self.observations = observations
        self.name = name
        self.noun = noun
    }

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard entry.request.operation.function == .read, let values = observations.reads[entry.request.id] else { return nil }
        let history = simulation.history
        while scanned < history.count {
            if history[scanned].request.operation.function == .write { sent.insert(history[scanned].request.operation.value) }
            scanned += 1
        }
        if let phantom = values.first(where: { !sent.contains($0) }) {
            return Violation(checker: name, kind: "phantom-\(noun)",
                             explanation: "n\(entry.target) returned \(noun) \(phantom) in a read, but no client \(name == "broadcast" ? "broadcast" : "added") it",
                             events: [entry.invokeEvent] + (entry.completeEvent.map { [$0] } ?? []))
        }
        return nil
    }

    func finish(_ simulation: Simulator) -> Violation? {
        let configuration = simulation.configuration
        guard configuration.livenessNanoseconds > 0 else { return nil }
        let phase = configuration.durationNanoseconds
        var acknowledged: [(value: Int64, entry: HistoryEntry)] = []
        for entry in simulation.history where entry.reply?.outcome == .ok && entry.request.operation.function == .write {
            if let completed = entry.completedAt, completed < phase { acknowledged.append((entry.request.operation.value, entry)) }
        }
        let lastRead = lastSettledReads(simulation) { self.observations.reads[$0.request.id] != nil }
        for node in 0..<NodeID(configuration.nodes) {
            guard let read = lastRead[node], let values = observations.reads[read.request.id] else { continue }
            let have = Set(values)
            let missing = acknowledged.filter { !have.contains($0.value) }
            guard let first = missing.first else { continue }
            let shown = missing.prefix(5).map { "\($0.value)" }.joined(separator: ", ")
            return Violation(checker: name, kind: "lost-\(noun)",
                             explanation: "n\(node)'s last read, well into the liveness phase, lacks \(missing.count) acknowledged \(noun)\(missing.count == 1 ? "" : "s") (\(shown)\(missing.count > 5 ? ", …" : ""))",
                             events: [first.entry.completeEvent, read.invokeEvent, read.completeEvent].compactMap { $0 })
        }
        return nil
    }
}

/// `txn-rw-register` and `txn-list-append`: what transactions read against what was written. No
/// value is written to a register (or appended to a list) twice in a run
/// (`TransactionShape.writtenValue`), so every value read names the transaction and step that
/// wrote it. What is a violation depends on the isolation level asked for, as in Elle:
/// - always (read uncommitted): no read returns a value nobody wrote to that register or list,
///   or wrote only after the read had returned (`garbage-read`); no list holds an element twice
///   (`duplicate-elements`); no cycle of ww dependencies (G0, below);
/// - read committed: also no read of a failed transaction's write (G1a, `aborted-read`), nor of a
///   state its own transaction went on to change: a register value it overwrote, or a list
///   holding some of its appends but not all (G1b, `intermediate-read`); every two reads of a
///   list agree on its order, one a prefix of the other (`incompatible-order`); no transaction
///   reads what it writes only in a later step (`future-read`);
/// - internal: also each transaction sees its own steps: a read returns what its earlier steps
///   read or wrote there (a list: with its appends since at the end) — `internal`, as
///   serializability and snapshot isolation require;
/// - serializable: also no cycle of dependencies between transactions (`TransactionGraph`):
///   read uncommitted already forbids cycles of ww dependencies (G0), read committed those of
///   ww and wr (G1c), serializable
///   also those through rw anti-dependencies (G-single, G2); strict serializable also those
///   through real time (one transaction completed before another was invoked: `-realtime`).
///   A list's versions are in the order its longest read shows; a register's only in part
///   (`inferRegisterOrder`).
public final class TransactionChecker: Checker {
    public enum Level: Int, Comparable, Sendable {
        case readUncommitted = 0, readCommitted = 1, internalConsistency = 2, serializable = 3, strictSerializable = 4
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public static let names = "0 (read uncommitted, the default), 1 (read committed), 2 (read committed and internal consistency), "
            + "3 (serializable) or 4 (strict serializable)"
    }

    public let name: String
    let level: Level
    init(name: String, level: Level) {
        self.name = name
        self.level = level
    }

    private static func shape(_ entry: HistoryEntry) -> TransactionShape? {
        guard entry.request.operation.function == .txn else { return nil }
        return TransactionShape(packed: entry.request.operation.key)
    }

    private static func describe(_ entry: HistoryEntry, _ shape: TransactionShape) -> String {
        let results = entry.reply?.results ?? []
        let steps = shape.steps.indices.map { index in
            shape.describe(step: index, requestID: entry.request.id, result: index < results.count ? .some(results[index]) : .none)
        }
        return "client \(entry.request.client)'s txn [\(steps.joined(separator: ", "))] on n\(entry.target)"
    }

    private static func events(_ entries: HistoryEntry...) -> [UInt64] {
        entries.flatMap { [$0.invokeEvent] + ($0.completeEvent.map { [$0] } ?? []) }
    }

    /// An acknowledged transaction with a result for every step.
    private static func completed(_ entry: HistoryEntry) -> (TransactionShape, [[Int64]?])? {
        guard let shape = shape(entry), let reply = entry.reply, reply.outcome == .ok, reply.results.count == shape.steps.count else { return nil }
        return (shape, reply.results)
    }

    public func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard level >= .readCommitted, let (shape, results) = Self.completed(entry) else { return nil }
        let written = shape.steps.indices.map { TransactionShape.writtenValue(requestID: entry.request.id, index: $0) }
        // A read of what the transaction writes only later.
        for (index, step) in shape.steps.enumerated() where !step.write {
            let later = shape.steps.indices.filter { $0 > index && shape.steps[$0].write && shape.steps[$0].key == step.key }.map { written[$0] }
            if let value = (results[index] ?? []).first(where: later.contains) {
                return Violation(checker: name, kind: "future-read",
                                 explanation: "\(Self.describe(entry, shape)) read \(value) from k\(step.key) in step \(index + 1), which it writes there only later",
                                 events: Self.events(entry))
            }
        }
        guard level >= .internalConsistency else { return nil }
        // Per register or list: what the transaction's own steps so far say it holds, whole (after
        // a read) or only its end (the appends since the start).
        var known: [UInt64: (values: [Int64], whole: Bool)] = [:]
        for (index, step) in shape.steps.enumerated() {
            if step.write {
                if shape.appends {
                    let before = known[step.key] ?? ([], false)
                    known[step.key] = (before.values + [written[index]], before.whole)
                } else {
                    known[step.key] = ([written[index]], true)
                }
                continue
            }
            let read = results[index] ?? []
            if let expected = known[step.key] {
                let sees = expected.whole ? read == expected.values : read.suffix(expected.values.count).elementsEqual(expected.values)
                if !sees {
                    let what = expected.whole
                        ? "after its own steps left \(TransactionShape.describe(result: expected.values.isEmpty && !shape.appends ? nil : expected.values, appends: shape.appends)) there"
                        : "without its own appends \(TransactionShape.describe(result: expected.values, appends: true)) at the end"
                    return Violation(checker: name, kind: "internal",
                                     explanation: "\(Self.describe(entry, shape)) read \(TransactionShape.describe(result: results[index], appends: shape.appends)) from k\(step.key) in step \(index + 1), \(what)",
                                     events: Self.events(entry))
                }
            }
            known[step.key] = (read, true)
        }
        return nil
    }

    public func finish(_ simulation: Simulator) -> Violation? {
        let history = simulation.history
        // Value → who wrote it: the history entry, the step and the register or list.
        var writers: [Int64: (entry: Int, step: Int, key: UInt64)] = [:]
        for (number, entry) in history.enumerated() {
            guard let shape = Self.shape(entry) else { continue }
            for (index, step) in shape.steps.enumerated() where step.write {
                writers[TransactionShape.writtenValue(requestID: entry.request.id, index: index)] = (number, index, step.key)
            }
        }
        // Per list: the longest read so far, and which entry read it; the lists whose reads
        // disagree on their order (allowed only under read uncommitted).
        var longest: [UInt64: (values: [Int64], entry: Int)] = [:]
        var disordered = Set<UInt64>()
        for (number, entry) in history.enumerated() {
            guard let (shape, results) = Self.completed(entry), let returned = entry.completedAt else { continue }
            for (index, step) in shape.steps.enumerated() where !step.write {
                let values = results[index] ?? []
                let shown = TransactionShape.describe(result: results[index], appends: shape.appends)
                var seen = Set<Int64>()
                for value in values {
                    guard seen.insert(value).inserted else {
                        return Violation(checker: name, kind: "duplicate-elements",
                                         explanation: "\(Self.describe(entry, shape)) read \(shown) from k\(step.key): \(value) is in it twice",
                                         events: Self.events(entry))
                    }
                    guard let writer = writers[value], writer.key == step.key, history[writer.entry].invokedAt <= returned else {
                        var explanation = "\(Self.describe(entry, shape)) read \(value) from k\(step.key), which no transaction wrote there"
                        var witnesses = Self.events(entry)
                        if let writer = writers[value], writer.key == step.key {
                            explanation += " before the read returned (it was written by a transaction invoked later)"
                            witnesses += Self.events(history[writer.entry])
                        }
                        return Violation(checker: name, kind: "garbage-read", explanation: explanation, events: witnesses)
                    }
                }
                if shape.appends {
                    if let before = longest[step.key] {
                        let (short, long) = values.count <= before.values.count ? (values, before.values) : (before.values, values)
                        if !long.starts(with: short) {
                            // Read uncommitted allows it, but then the list's order of versions is unknown.
                            guard level >= .readCommitted else {
                                disordered.insert(step.key)
                                continue
                            }
                            let other = history[before.entry]
                            return Violation(checker: name, kind: "incompatible-order",
                                             explanation: "reads of k\(step.key) disagree on its order: \(Self.describe(entry, shape)) read \(shown), \(Self.shape(other).map { Self.describe(other, $0) } ?? "another") read \(TransactionShape.describe(result: before.values, appends: true)), and neither is a prefix of the other",
                                             events: Self.events(other, entry))
                        }
                        if values.count > before.values.count { longest[step.key] = (values, number) }
                    } else {
                        longest[step.key] = (values, number)
                    }
                }
                guard level >= .readCommitted, let violation = dirtyRead(entry, number, shape, step: index, values: values, writers: writers, history: history)
                else { continue }
                return violation
            }
        }
        return dependencyCycle(history, versions: longest.filter { !disordered.contains($0.key) }.mapValues(\.values),
                               appends: name == Workload.txnListAppend.rawValue)
    }

    /// A cycle of dependencies the level forbids, found by `TransactionHistoryChecker` (as `check
    /// --model list-append` or `rw-register` finds it) over the run's transactions: the history
    /// entries with a transaction, positioned in time by their invocation and completion.
    private func dependencyCycle(_ history: [HistoryEntry], versions: [UInt64: [Int64]], appends: Bool) -> Violation? {
        var transactions: [HistoryTransaction] = []
        var entries: [Int] = []
        for (number, entry) in history.enumerated() {
            guard let shape = Self.shape(entry) else { continue }
            let completed = Self.completed(entry)
            let outcome: HistoryTransaction.Outcome = completed != nil ? .ok : entry.reply?.outcome == .fail ? .fail : .info
            let steps = shape.steps.enumerated().map { index, step in
                let value: Value
                if step.write {
                    value = .int(TransactionShape.writtenValue(requestID: entry.request.id, index: index))
                } else if let read = completed?.1[index] {
                    value = appends ? .list(read.map(Value.int)) : read.first.map(Value.int) ?? .none
                } else {
                    value = .none
                }
                return HistoryTransaction.Step(write: step.write, key: .int(Int64(bitPattern: step.key)), value: value)
            }
            transactions.append(HistoryTransaction(process: Int(entry.request.client), outcome: outcome, steps: steps,
                                                   invocation: Int(entry.invokedAt), completion: completed != nil ? entry.completedAt.map { Int($0) } : nil,
                                                   lines: "", model: appends ? .listAppend : .rwRegister))
            entries.append(number)
        }
        let consistency: ConsistencyModel = switch level {
        case .readUncommitted: .readUncommitted
        case .readCommitted, .internalConsistency: .readCommitted
        case .serializable: .serializable
        case .strictSerializable: .strictSerializable
        }
        var ordered: [Value: [Value]] = [:]
        for (key, list) in versions { ordered[.int(Int64(bitPattern: key))] = list.map(Value.int) }
        let checker = TransactionHistoryChecker(model: appends ? .listAppend : .rwRegister, consistency: consistency)
        guard let found = checker.cycleAnomalies(transactions, versions: ordered).first else { return nil }
        var parts: [String] = []
        var witnesses: [UInt64] = []
        for step in found.cycle {
            let entry = history[entries[step.transaction]]
            parts.append(Self.shape(entry).map { Self.describe(entry, $0) } ?? "client \(entry.request.client)'s txn")
            let on = step.key.map { key in if case .int(let number) = key { " k\(UInt64(bitPattern: number))" } else { " \(key)" } } ?? ""
            parts.append("—\(step.dependency.name)\(on)→")
            witnesses += Self.events(entry)
        }
        parts.append("the first again")
        return Violation(checker: name, kind: found.name,
                         explanation: "a cycle of \(found.cycle.count) transactions (\(found.name)): " + parts.joined(separator: " "),
                         events: witnesses)
    }

    /// G1a and G1b for one read step of `entry`, which returned `values`.
    private func dirtyRead(_ entry: HistoryEntry, _ number: Int, _ shape: TransactionShape, step index: Int, values: [Int64],
                           writers: [Int64: (entry: Int, step: Int, key: UInt64)], history: [HistoryEntry]) -> Violation? {
        let key = shape.steps[index].key
        let shown = TransactionShape.describe(result: entry.reply?.results[index] ?? nil, appends: shape.appends)
        // A register's value, or each transaction whose appends the list holds.
        var sources: [Int] = []
        var seen = Set<Int>()
        for value in values {
            guard let writer = writers[value], writer.entry != number, seen.insert(writer.entry).inserted else { continue }
            sources.append(writer.entry)
        }
        let held = Set(values)
        for source in sources {
            let writer = history[source]
            guard let writerShape = Self.shape(writer) else { continue }
            if writer.reply?.outcome == .fail {
                return Violation(checker: name, kind: "aborted-read",
                                 explanation: "\(Self.describe(entry, shape)) read \(shown) from k\(key), written by \(Self.describe(writer, writerShape)), which failed (G1a)",
                                 events: Self.events(entry, writer))
            }
            // What that transaction wrote to this register or list, in order.
            let wrote = writerShape.steps.enumerated().filter { $0.element.write && $0.element.key == key }
                .map { TransactionShape.writtenValue(requestID: writer.request.id, index: $0.offset) }
            let intermediate = shape.appends ? !wrote.allSatisfy(held.contains) : values.last != wrote.last
            if intermediate {
                return Violation(checker: name, kind: "intermediate-read",
                                 explanation: "\(Self.describe(entry, shape)) read \(shown) from k\(key), a state \(Self.describe(writer, writerShape)) went on to change in the same transaction (G1b)",
                                 events: Self.events(entry, writer))
            }
        }
        return nil
    }
}

// MARK: - Services

/// Maelstrom's services, shared by every node of a run. The key-value services `lin-kv`,
/// `seq-kv` and `lww-kv`: `read`, `write`, `cas` (with `create_if_not_exists`), each one
/// linearizable store (stricter than `seq-kv` or `lww-kv` need be, which a correct node must
/// accept). The timestamp oracle `lin-tso`: `ts` answers `ts_ok` with a timestamp greater than
/// every one it gave before.
final class Services {
    static let names = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"]
    /// Service → canonical key text → value.
    private var stores: [String: [String: Any]] = [:]
    /// The last timestamp `lin-tso` gave.
    private var timestamp: Int64 = 0

    func handle(service: String, _ body: [String: Any]) -> [String: Any] {
        if service == "lin-tso" {
            guard body["type"] as? String == "ts" else {
                return ["type": "error", "code": 10, "text": "lin-tso does not support \(body["type"] as? String ?? "this"); it answers ts"]
            }
            timestamp += 1
            return ["type": "ts_ok", "ts": timestamp]
        }
        let key = Maelstrom.text(body["key"])
        var store = stores[service] ?? [:]
        defer { stores[service] = store }
        switch body["type"] as? String {
        case "read":
            guard let value = store[key] else { return ["type": "error", "code": 20, "text": "key does not exist"] }
            return ["type": "read_ok", "value": value]
        case "write":
            store[key] = body["value"] ?? NSNull()
            return ["type": "write_ok"]
        case "cas":
            guard let current = store[key] else {
                if (body["create_if_not_exists"] as? Bool) == true {
                    store[key] = body["to"] ?? NSNull()
                    return ["type": "cas_ok"]
                }
                return ["type": "error", "code": 20, "text": "key does not exist"]
            }
            guard Maelstrom.text(current) == Maelstrom.text(body["from"]) else {
                return ["type": "error", "code": 22, "text": "current value \(Maelstrom.text(current)) is not \(Maelstrom.text(body["from"]))"]
            }
            store[key] = body["to"] ?? NSNull()
            return ["type": "cas_ok"]
        default:
            return ["type": "error", "code": 10, "text": "\(service) does not support \(body["type"] as? String ?? "this")"]
        }
    }
}

/// `g-counter` and `pn-counter`: once the cluster has settled in the liveness phase, each node's
/// last read counts every add acknowledged half a liveness phase or more before it began (before
/// the liveness phase, or inside it with the network healed all that while: the time the settled
/// reads give every write to spread), and may count any other add that neither failed nor began
/// after the read returned. The read lies between the bounds that leaves: at least the sure adds
/// plus every possible decrement, at most the sure adds plus every possible increment.
final class GCounterChecker: Checker {
    let name: String
    init(name: String) { self.name = name }

    func finish(_ simulation: Simulator) -> Violation? {
        let configuration = simulation.configuration
        guard configuration.livenessNanoseconds > 0 else { return nil }
        let phase = configuration.durationNanoseconds
        let adds = simulation.history.filter { $0.request.operation.function == .add && $0.reply?.outcome != .fail }
        let lastRead = lastSettledReads(simulation) { _ in true }
        for node in 0..<NodeID(configuration.nodes) {
            guard let read = lastRead[node], let value = read.reply?.value, let returned = read.completedAt else { continue }
            let sureBy = max(phase, read.invokedAt - min(read.invokedAt, configuration.livenessNanoseconds / 2))
            var lower: Int64 = 0, upper: Int64 = 0, sure: Int64 = 0
            for add in adds where add.invokedAt <= returned {
                let delta = add.request.operation.value
                if add.reply?.outcome == .ok, let completed = add.completedAt, completed < sureBy {
                    lower &+= delta
                    upper &+= delta
                    sure &+= delta
                } else if delta < 0 {
                    lower &+= delta
                } else {
                    upper &+= delta
                }
            }
            let events = [read.invokeEvent, read.completeEvent].compactMap { $0 }
            if value < lower {
                return Violation(checker: name, kind: "lost-increment",
                                 explanation: "n\(node)'s last read, well into the liveness phase, is \(value), but the adds acknowledged in time sum to \(sure)"
                                    + (lower < sure ? " (\(lower) with every decrement that may have happened)" : ""),
                                 events: events)
            }
            if value > upper {
                return Violation(checker: name, kind: "phantom-increment",
                                 explanation: "n\(node)'s last read is \(value), more than every add that may have happened (\(upper))",
                                 events: events)
            }
        }
        return nil
    }
}

/// `kafka`: an offset acknowledged for one send only; a poll returns offsets in increasing order,
/// each with the message sent at it, and skips no acknowledged offset between its start and the
/// last offset it returns (sent before the poll began); a listed committed offset is one a client
/// committed, and a key with an acknowledged commit lists one.
final class KafkaChecker: Checker {
    let name = "kafka"
    let observations: Observations
    /// key → offset → the acknowledged send.
    var sends: [UInt64: [Int64: HistoryEntry]] = [:]
    /// key → acknowledged commits (offset, completion time).
    var commits: [UInt64: [(offset: Int64, completed: UInt64)]] = [:]
    init(observations: Observations) { self.observations = observations }

    private func events(_ entries: HistoryEntry...) -> [UInt64] {
        entries.flatMap { [$0.invokeEvent] + ($0.completeEvent.map { [$0] } ?? []) }
    }

    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? {
        guard let reply = entry.reply, reply.outcome == .ok else { return nil }
        let operation = entry.request.operation
        let key = operation.key
        switch operation.function {
        case .write:
            let offset = reply.value
            if let other = sends[key]?[offset] {
                return Violation(checker: name, kind: "duplicate-offset",
                                 explanation: "k\(key) offset \(offset) was acknowledged for two sends: \(other.request.operation.value) by n\(other.target) and \(operation.value) by n\(entry.target)",
                                 events: events(other, entry))
            }
            sends[key, default: [:]][offset] = entry
        case .read:
            guard let pairs = observations.polls[entry.request.id] else { return nil }
            var previous: Int64 = -1
            for (offset, message) in pairs {
                if offset <= previous {
                    return Violation(checker: name, kind: "out-of-order",
                                     explanation: "n\(entry.target)'s poll of k\(key) returned offset \(offset) after \(previous)", events: events(entry))
                }
                previous = offset
                if let send = sends[key]?[offset], send.request.operation.value != message {
                    return Violation(checker: name, kind: "wrong-message",
                                     explanation: "n\(entry.target)'s poll of k\(key) returned \(message) at offset \(offset), where \(send.request.operation.value) was sent",
                                     events: events(send, entry))
                }
            }
            guard let last = pairs.last?.0 else { return nil }
            let returned = Set(pairs.map(\.0))
            for (offset, send) in (sends[key] ?? [:]).sorted(by: { $0.key < $1.key })
            where offset >= operation.value && offset < last && !returned.contains(offset) && (send.completedAt ?? .max) < entry.invokedAt {
                return Violation(checker: name, kind: "lost-message",
                                 explanation: "n\(entry.target)'s poll of k\(key) from offset \(operation.value) returned up to offset \(last) but skipped offset \(offset), acknowledged before the poll began",
                                 events: events(send, entry))
            }
        case .commit:
            if let completed = entry.completedAt { commits[key, default: []].append((operation.value, completed)) }
        case .list:
            // Nodes may keep the latest commit or the highest, so only what holds for both is
            // checked: a commit acknowledged before is not forgotten, and the listed offset is one
            // a client committed.
            if reply.isNil {
                if let commit = (commits[key] ?? []).first(where: { $0.completed < entry.invokedAt }) {
                    return Violation(checker: name, kind: "lost-commit",
                                     explanation: "n\(entry.target) listed no committed offset for k\(key), but offset \(commit.offset) was committed before",
                                     events: events(entry))
                }
                return nil
            }
            let committed = simulation.history.contains { other in
                other.request.operation.function == .commit && other.request.operation.key == key
                    && other.request.operation.value == reply.value && other.invokedAt <= (entry.completedAt ?? .max)
            }
            if !committed {
                return Violation(checker: name, kind: "phantom-commit",
                                 explanation: "n\(entry.target) listed k\(key)'s committed offset as \(reply.value), which no client committed",
                                 events: events(entry))
            }
        default:
            break
        }
        return nil
    }
}

/// Per node, its last successful `read` invoked once the cluster had settled (in the second half
/// of the liveness phase), among those `accepted`; looked up by node, never iterated.
func lastSettledReads(_ simulation: Simulator, _ accepted: (HistoryEntry) -> Bool) -> [NodeID: HistoryEntry] {
    let configuration = simulation.configuration
    let settled = configuration.durationNanoseconds + configuration.livenessNanoseconds / 2
    var lastRead: [NodeID: HistoryEntry] = [:]
    for entry in simulation.history where entry.request.operation.function == .read && entry.reply?.outcome == .ok {
        guard entry.invokedAt >= settled, let completed = entry.completedAt, accepted(entry) else { continue }
        if let previous = lastRead[entry.target], (previous.completedAt ?? 0) > completed { continue }
        lastRead[entry.target] = entry
    }
    return lastRead
}
