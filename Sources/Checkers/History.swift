/// A value in a client history: what Jepsen's EDN and our JSON lines can say.
public indirect enum Value: Hashable, Sendable, CustomStringConvertible {
    case none
    case int(Int64)
    case bool(Bool)
    case string(String)
    case keyword(String)
    case list([Value])

    public var description: String {
        switch self {
        case .none: "nil"
        case .int(let value): String(value)
        case .bool(let value): String(value)
        case .string(let value): "\"\(value)\""
        case .keyword(let value): ":\(value)"
        case .list(let values): "[" + values.map(\.description).joined(separator: " ") + "]"
        }
    }

    var int: Int64? { if case .int(let value) = self { value } else { nil } }
    var list: [Value]? { if case .list(let values) = self { values } else { nil } }
}

/// One operation of a history: its invocation and, unless it is indeterminate, its completion.
public struct HistoryOperation: Sendable, Equatable {
    public enum Function: String, Sendable {
        case read, write, cas, add, append, acquire, release, txn, enqueue, dequeue

        /// Whether the operation's result is what its completion says (a read's value, a
        /// dequeue's element, a transaction's steps with what they read).
        var returnsValue: Bool { self == .read || self == .dequeue || self == .txn }

        /// The function a history names: its own name, or `get` (a read) and `put` (a write), as
        /// Porcupine's key-value histories call them.
        public init?(named name: String) {
            switch name {
            case "get": self = .read
            case "put": self = .write
            default: self.init(rawValue: name)
            }
        }
    }

    public var process: Int
    public var function: Function
    /// The partition key, for histories over several independent keys.
    public var key: Value?
    /// The argument: a write's value, a cas's [expected new] pair, an add's element or delta.
    public var input: Value
    /// A read's result (nil: unknown, matches anything).
    public var output: Value
    /// Positions of the invocation and completion in the history; `completion` is nil when the
    /// outcome is unknown (`:info`, or no completion at all): it may or may not have happened.
    public var invocation: Int
    public var completion: Int?
    /// Where the operation was read from (line numbers, or event numbers of a trace).
    public var source: String

    public init(process: Int, function: Function, key: Value? = nil, input: Value = .none, output: Value = .none,
                invocation: Int, completion: Int?, source: String = "") {
        self.process = process
        self.function = function
        self.key = key
        self.input = input
        self.output = output
        self.invocation = invocation
        self.completion = completion
        self.source = source
    }

    public var isIndeterminate: Bool { completion == nil }

    /// The operation in Jepsen's notation.
    public var edn: String {
        let value: Value = function == .read || function == .dequeue || (function == .txn && !isIndeterminate) ? output : input
        let shown: Value = key.map { .list([$0, value]) } ?? value
        return "{:process \(process), :type \(isIndeterminate ? ":info" : ":ok"), :f :\(function.rawValue), :value \(shown)}"
    }
}

/// Bad history input: what is wrong and where.
public struct HistoryError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var line: Int?
    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// The raw entries of a history, before invocations are paired with completions.
public struct RawHistoryEntry: Sendable {
    public enum Kind: String, Sendable { case invoke, ok, fail, info }
    public var process: Int?
    public var kind: Kind
    public var function: String
    public var value: Value
    public var key: Value?
    public var line: Int
}

public enum History {
    /// Pairs each invocation with its process's next completion. `:fail` operations did not
    /// happen and are dropped; `:info` and unanswered invocations are indeterminate.
    /// Entries of non-client processes (the nemesis) are ignored.
    public static func operations(_ entries: [RawHistoryEntry], independentKeys: Bool) throws -> [HistoryOperation] {
        var pending: [Int: (entry: RawHistoryEntry, position: Int)] = [:]
        var operations: [HistoryOperation] = []
        var slots: [Int: Int] = [:]  // process → index in operations of its open operation
        for (position, entry) in entries.enumerated() {
            guard let process = entry.process else { continue }
            guard let function = HistoryOperation.Function(named: entry.function) else {
                throw HistoryError(message: "unknown function :\(entry.function) (expected read, write, cas, add; for --model kv get, put and append; for mutex acquire and release; for multi-register txn; for the queues enqueue and dequeue)", line: entry.line)
            }
            var key = entry.key
            var value = entry.value
            if independentKeys && key == nil {
                guard let pair = value.list, pair.count == 2 else {
                    throw HistoryError(message: "a keyed history needs :value [key value], got \(value)", line: entry.line)
                }
                key = pair[0]
                value = pair[1]
            }
            switch entry.kind {
            case .invoke:
                if pending[process] != nil {
                    throw HistoryError(message: "process \(process) invoked again before its previous operation completed", line: entry.line)
                }
                pending[process] = (entry, position)
                slots[process] = operations.count
                operations.append(HistoryOperation(process: process, function: function, key: key,
                                                   input: function == .read || function == .dequeue ? .none : value, output: .none,
                                                   invocation: position, completion: nil, source: "line \(entry.line)"))
            case .ok, .fail, .info:
                guard let open = pending.removeValue(forKey: process), let slot = slots.removeValue(forKey: process) else {
                    throw HistoryError(message: "process \(process) completed an operation it never invoked", line: entry.line)
                }
                guard open.entry.function == entry.function else {
                    throw HistoryError(message: "process \(process) invoked :\(open.entry.function) but completed :\(entry.function)", line: entry.line)
                }
                switch entry.kind {
                case .ok:
                    operations[slot].completion = position
                    if function.returnsValue { operations[slot].output = value }
                    operations[slot].source += "–\(entry.line)"
                case .fail:
                    operations[slot].function = function
                    operations[slot].source = "failed"  // marked for removal
                default:
                    break  // indeterminate
                }
            }
        }
        return operations.filter { $0.source != "failed" }
    }
}
