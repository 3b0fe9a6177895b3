/// A node's id within the cluster: 0 ..< cluster size.
public typealias NodeID = UInt32

/// A message between nodes: a type code, the bytes of its stable encoding, and a key (a term, a
/// round, a sequence number) that together with the type and the endpoints forms its fingerprint.
public struct Message: Equatable, Sendable {
    public var type: UInt16
    public var key: UInt64
    public var body: [UInt8]

    public init(type: UInt16, key: UInt64 = 0, body: [UInt8] = []) {
        self.type = type
        self.key = key
        self.body = body
    }

    /// The message as it is recorded in a send event: type, key, then the body.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + body.count)
        ByteWriter.appendVarint(UInt64(type), to: &bytes)
        ByteWriter.appendVarint(key, to: &bytes)
        bytes.append(contentsOf: body)
        return bytes
    }

    /// Decodes a recorded message; nil when the bytes are not one.
    public static func decode(_ bytes: [UInt8]) -> Message? {
        var reader = ByteReader(bytes)
        guard let type = reader.varint(), type <= UInt64(UInt16.max), let key = reader.varint() else { return nil }
        return Message(type: UInt16(type), key: key, body: Array(bytes[reader.offset...]))
    }

    /// Identifies a message across code changes: what it is and where it goes, not its exact bytes.
    public func fingerprint(source: NodeID, target: NodeID) -> UInt64 {
        var digest = StableDigest()
        digest.mix(UInt64(type))
        digest.mix(key)
        digest.mix(UInt64(source) << 32 | UInt64(target))
        return digest.value
    }
}

/// A client's request to a node, and the node's answer.
public struct ClientRequest: Equatable, Sendable {
    /// Unique per run; the node passes it back in `reply`.
    public var id: UInt64
    public var client: UInt32
    public var operation: ClientOperation
}

/// A client operation on a key: the shape every system's workload speaks.
public struct ClientOperation: Equatable, Sendable, Codable {
    public enum Function: UInt8, Codable, Sendable { case read = 1, write, cas, add, echo, generate, commit, list, txn }
    public var function: Function
    public var key: UInt64
    public var value: Int64
    /// The expected value of a compare-and-set.
    public var expected: Int64

    public init(function: Function, key: UInt64 = 0, value: Int64 = 0, expected: Int64 = 0) {
        self.function = function
        self.key = key
        self.value = value
        self.expected = expected
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [function.rawValue]
        ByteWriter.appendVarint(key, to: &bytes)
        ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &bytes)
        if function == .cas { ByteWriter.appendVarint(ByteWriter.zigzag(expected), to: &bytes) }
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) -> ClientOperation? {
        var reader = ByteReader(bytes)
        guard let raw = reader.byte(), let function = Function(rawValue: raw), let key = reader.varint(),
              let value = reader.varint() else { return nil }
        var operation = ClientOperation(function: function, key: key, value: ByteWriter.unzigzag(value))
        if function == .cas {
            guard let expected = reader.varint() else { return nil }
            operation.expected = ByteWriter.unzigzag(expected)
        }
        return operation
    }
}

/// The micro-operations of a transaction (`ClientOperation.Function.txn`), packed into the
/// operation's key: the count (1…4) in bits 0–2, then 13 bits per micro-operation, whether it
/// writes and its register (0…4095); bit 63 set when the writes append to lists (Maelstrom's
/// txn-list-append) rather than overwrite registers (txn-rw-register). A write's value comes from
/// the request id and its place in the transaction (`writtenValue`), so no value is written to a
/// register twice in a run.
public struct TransactionShape: Equatable, Sendable {
    public struct Step: Equatable, Sendable {
        public var write: Bool
        public var key: UInt64
        public init(write: Bool, key: UInt64) {
            self.write = write
            self.key = key
        }
    }

    public static let maxSteps = 4
    public static let maxKeys: UInt64 = 4096
    private static let appendsBit: UInt64 = 1 << 63
    /// Whether it writes, and its register.
    private static let stepBits = 13
    public var steps: [Step]
    /// Writes append to a list; reads return the list.
    public var appends: Bool

    public init(_ steps: [Step], appends: Bool = false) {
        precondition(!steps.isEmpty && steps.count <= Self.maxSteps && steps.allSatisfy { $0.key < Self.maxKeys },
                     "a transaction has 1…4 steps on registers 0…4095")
        self.steps = steps
        self.appends = appends
    }

    public init?(packed: UInt64) {
        let count = Int(packed & 7)
        guard count >= 1 && count <= Self.maxSteps, (packed & ~Self.appendsBit) >> UInt64(3 + Self.stepBits * count) == 0 else { return nil }
        appends = packed & Self.appendsBit != 0
        steps = (0..<count).map { index in
            let bits = packed >> UInt64(3 + Self.stepBits * index)
            return Step(write: bits & 1 == 1, key: (bits >> 1) & (Self.maxKeys - 1))
        }
    }

    public var packed: UInt64 {
        var value = UInt64(steps.count) | (appends ? Self.appendsBit : 0)
        for (index, step) in steps.enumerated() {
            value |= ((step.key << 1) | (step.write ? 1 : 0)) << UInt64(3 + Self.stepBits * index)
        }
        return value
    }

    /// The value step `index` of request `requestID` writes.
    public static func writtenValue(requestID: UInt64, index: Int) -> Int64 {
        Int64(truncatingIfNeeded: requestID) &* Int64(maxSteps) &+ Int64(index) &+ 1
    }

    /// What a write step is called: "w" (a register) or "append" (a list), as Maelstrom spells it.
    public var writeName: String { appends ? "append" : "w" }

    /// "r k1, w k2".
    public var text: String {
        steps.map { "\($0.write ? writeName : "r") k\($0.key)" }.joined(separator: ", ")
    }

    /// One step with what it wrote, and what it read when `result` is known: "w k2 9",
    /// "r k1 5", "r k1 nil", "append k0 13", "r k0 [4 13]".
    public func describe(step index: Int, requestID: UInt64, result: [Int64]?? = nil) -> String {
        let step = steps[index]
        if step.write { return "\(writeName) k\(step.key) \(Self.writtenValue(requestID: requestID, index: index))" }
        guard let result else { return "r k\(step.key)" }
        return "r k\(step.key) " + Self.describe(result: result, appends: appends)
    }

    /// A read's result: "5" or "nil" for a register, "[4 13]" for a list.
    public static func describe(result: [Int64]?, appends: Bool) -> String {
        guard let result else { return appends ? "[]" : "nil" }
        if appends { return "[" + result.map(String.init).joined(separator: " ") + "]" }
        return result.first.map(String.init) ?? "nil"
    }
}

/// How an operation ended, as a client sees it.
public enum Outcome: UInt32, Codable, Sendable {
    /// It happened; `value` is its result (a read's value).
    case ok = 1
    /// It certainly did not happen.
    case fail = 2
    /// Unknown: it may or may not have happened (a timeout, a crash).
    case info = 3
}

/// The answer a node gives a client.
public struct Reply: Equatable, Sendable {
    public var outcome: Outcome
    public var value: Int64
    /// For a read of a key never written.
    public var isNil: Bool

    /// What each step of a transaction returned (`ClientOperation.Function.txn`): a read's
    /// register value (one element; nil: never written) or list, a write's value. Empty for
    /// other operations.
    public var results: [[Int64]?] = []
    /// The reads in `results` returned lists (txn-list-append), not registers.
    public var resultsAreLists = false

    public init(outcome: Outcome, value: Int64 = 0, isNil: Bool = false, results: [[Int64]?] = [], resultsAreLists: Bool = false) {
        self.outcome = outcome
        self.value = value
        self.isNil = isNil
        self.results = results
        self.resultsAreLists = resultsAreLists
    }

    public static func ok(_ value: Int64 = 0) -> Reply { Reply(outcome: .ok, value: value) }
    public static let okNil = Reply(outcome: .ok, isNil: true)
    public static let fail = Reply(outcome: .fail)

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [isNil ? 1 : 0]
        ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &bytes)
        if !results.isEmpty {
            ByteWriter.appendVarint(UInt64(results.count) << 1 | (resultsAreLists ? 1 : 0), to: &bytes)
            for result in results {
                bytes.append(result == nil ? 1 : 0)
                ByteWriter.appendVarint(UInt64(result?.count ?? 0), to: &bytes)
                for value in result ?? [] { ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &bytes) }
            }
        }
        return bytes
    }

    /// A transaction's step results from a completion's payload (`encoded`), and whether its
    /// reads returned lists: nil when it has none.
    public static func decodeResults(_ bytes: [UInt8]) -> (results: [[Int64]?], lists: Bool)? {
        var reader = ByteReader(bytes)
        guard reader.byte() != nil, reader.varint() != nil, let header = reader.varint(), header >> 1 <= 64 else { return nil }
        let count = header >> 1
        var results: [[Int64]?] = []
        for _ in 0..<count {
            // Each element takes a byte at least: a length beyond what is left is damage.
            guard let isNil = reader.byte(), let length = reader.varint(), length <= UInt64(bytes.count) else { return nil }
            var values: [Int64] = []
            for _ in 0..<length {
                guard let value = reader.varint() else { return nil }
                values.append(ByteWriter.unzigzag(value))
            }
            results.append(isNil == 1 ? nil : values)
        }
        return (results, header & 1 == 1)
    }
}

/// Errors the simulated disk reports to node code.
public enum DiskError: Error, Equatable, Sendable {
    /// The read or write failed (an I/O error); try again or degrade.
    case ioError
    /// No space left; the write did not happen.
    case full
}

/// Code under test. The simulator calls these on one thread, one at a time, in virtual time;
/// the node acts on the world only through its `NodeContext`.
public protocol Node: AnyObject {
    /// The node (re)starts: fresh volatile state; durable state is on `context`'s disk.
    func start(_ context: NodeContext)
    func receive(_ message: Message, from source: NodeID, _ context: NodeContext)
    func timer(_ tag: UInt32, _ context: NodeContext)
    func request(_ request: ClientRequest, _ context: NodeContext)
    /// A digest of the node's state, stable across processes: replay compares it.
    func stateDigest() -> UInt64
    /// Whether the node holds a special role now (a leader, a primary). The nemesis aims at such
    /// nodes half the time, as the faults that matter most tend to hit them.
    var isPrimary: Bool { get }
}

extension Node {
    public var isPrimary: Bool { false }
    public func timer(_ tag: UInt32, _ context: NodeContext) {}
    public func request(_ request: ClientRequest, _ context: NodeContext) {
        context.reply(to: request, .fail)
    }
}

/// Minimal helpers for stable binary encodings.
public enum ByteWriter {
    public static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    public static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }
}

/// Reads what `ByteWriter` wrote; every read is bounds-checked and returns nil past the end.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func varint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count && shift <= 63 {
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    public mutating func signed() -> Int64? { varint().map(ByteWriter.unzigzag) }

    public mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= bytes.count - offset else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A varint length followed by that many bytes.
    public mutating func lengthPrefixed() -> [UInt8]? {
        guard let length = varint(), length <= UInt64(bytes.count - offset) else { return nil }
        return self.bytes(Int(length))
    }
}
