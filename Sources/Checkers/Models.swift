/// A sequential specification: a state and the legal steps from it.
public protocol Model: Sendable {
    associatedtype State: Hashable
    var name: String { get }
    var initial: State { get }
    /// The state after `operation`, or nil when the operation cannot happen in `state`.
    func step(_ state: State, _ operation: HistoryOperation) -> State?
    /// A person's description of a state.
    func describe(_ state: State) -> String
}

/// Whether a read that returned `output` is consistent with `state`: nil matches anything (the
/// value is unknown), `:absent` matches only a register never written.
func readMatches(_ output: Value, _ state: Value) -> Bool {
    if output == .none { return true }
    if output == .keyword("absent") { return state == .none }
    return output == state
}

/// A read/write register (reads of nil match anything; `:absent` means never written).
public struct RegisterModel: Model {
    public let name = "register"
    public let initial: Value
    public init(initial: Value = .none) { self.initial = initial }
    public func step(_ state: Value, _ operation: HistoryOperation) -> Value? {
        switch operation.function {
        case .write: operation.input
        case .read: readMatches(operation.output, state) ? state : nil
        case .cas, .add, .append, .acquire, .release, .txn, .enqueue, .dequeue: nil
        }
    }
    public func describe(_ state: Value) -> String { "value \(state)" }
}

/// A register with compare-and-set: `:cas [expected new]`.
public struct CASRegisterModel: Model {
    public let name = "cas-register"
    public let initial: Value
    public init(initial: Value = .none) { self.initial = initial }
    public func step(_ state: Value, _ operation: HistoryOperation) -> Value? {
        switch operation.function {
        case .write: return operation.input
        case .read: return readMatches(operation.output, state) ? state : nil
        case .cas:
            guard let pair = operation.input.list, pair.count == 2 else { return nil }
            return state == pair[0] ? pair[1] : nil
        case .add, .append, .acquire, .release, .txn, .enqueue, .dequeue: return nil
        }
    }
    public func describe(_ state: Value) -> String { "value \(state)" }
}

/// One key of a key-value store (`--model kv` checks each key alone): a register with
/// compare-and-set, and the string store of Porcupine's key-value histories (`:get`, `:put`,
/// `:append` of a string to the value; a key never written reads as "").
public struct KeyValueModel: Model {
    public let name = "kv"
    /// Every key's value before the history.
    public let initial: Value
    public init(initial: Value = .none) { self.initial = initial }
    public func step(_ state: Value, _ operation: HistoryOperation) -> Value? {
        switch operation.function {
        case .append:
            guard case .string(let suffix) = operation.input else { return nil }
            switch state {
            case .none: return .string(suffix)
            case .string(let value): return .string(value + suffix)
            default: return nil
            }
        case .read where operation.output == .string(""):
            return state == .none || state == .string("") ? state : nil
        default:
            return CASRegisterModel().step(state, operation)
        }
    }
    public func describe(_ state: Value) -> String { "value \(state)" }
}

/// A grow-only set: `:add x`, and `:read` returning the whole set.
public struct SetModel: Model {
    public let name = "set"
    public let initial: [Value] = []
    public init() {}
    public func step(_ state: [Value], _ operation: HistoryOperation) -> [Value]? {
        switch operation.function {
        case .add:
            if state.contains(operation.input) { return state }
            return (state + [operation.input]).sorted { $0.description < $1.description }
        case .read:
            if operation.output == .none { return state }
            guard let read = operation.output.list else { return nil }
            return Set(read) == Set(state) ? state : nil
        case .write, .cas, .append, .acquire, .release, .txn, .enqueue, .dequeue: return nil
        }
    }
    public func describe(_ state: [Value]) -> String { "set #{" + state.map(\.description).joined(separator: " ") + "}" }
}

/// A counter: `:add delta`, `:read` returning the total.
public struct CounterModel: Model {
    public let name = "counter"
    public let initial: Int64 = 0
    public init() {}
    public func step(_ state: Int64, _ operation: HistoryOperation) -> Int64? {
        switch operation.function {
        case .add:
            guard let delta = operation.input.int else { return nil }
            return state &+ delta
        case .read:
            if operation.output == .none { return state }
            return operation.output.int == state ? state : nil
        case .write, .cas, .append, .acquire, .release, .txn, .enqueue, .dequeue: return nil
        }
    }
    public func describe(_ state: Int64) -> String { "total \(state)" }
}

/// A lock: `:acquire` succeeds only when it is free, `:release` only when it is held (by anyone,
/// as Knossos's mutex has it).
public struct MutexModel: Model {
    public let name = "mutex"
    public let initial = false
    public init() {}
    public func step(_ held: Bool, _ operation: HistoryOperation) -> Bool? {
        switch operation.function {
        case .acquire: held ? nil : true
        case .release: held ? false : nil
        default: nil
        }
    }
    public func describe(_ held: Bool) -> String { held ? "held" : "free" }
}

/// Registers read and written together: each operation a `:txn` of steps `[:read k v]` and
/// `[:write k v]` (or `:r`, `:w`) taking effect at once. A register's first value is not given:
/// the first read of a register nobody wrote says what it held (a read of nil matches anything).
public struct MultiRegisterModel: Model {
    public let name = "multi-register"
    public let initial: [Value: Value] = [:]
    public init() {}

    /// The steps of a transaction, as `(write, key, value)`, or nil when they are not steps.
    static func steps(_ value: Value) -> [(write: Bool, key: Value, value: Value)]? {
        guard let items = value.list else { return nil }
        var steps: [(write: Bool, key: Value, value: Value)] = []
        for item in items {
            guard let parts = item.list, parts.count == 3 else { return nil }
            switch parts[0] {
            case .keyword("read"), .keyword("r"), .string("read"), .string("r"): steps.append((false, parts[1], parts[2]))
            case .keyword("write"), .keyword("w"), .string("write"), .string("w"): steps.append((true, parts[1], parts[2]))
            default: return nil
            }
        }
        return steps
    }

    public func step(_ state: [Value: Value], _ operation: HistoryOperation) -> [Value: Value]? {
        guard operation.function == .txn else { return nil }
        // Completed, the steps with what they read; of unknown outcome, as invoked (reads unknown).
        guard let steps = Self.steps(operation.isIndeterminate ? operation.input : operation.output) else { return nil }
        var state = state
        for step in steps {
            if step.write {
                state[step.key] = step.value
            } else if step.value != .none {
                if let current = state[step.key] {
                    guard current == step.value else { return nil }
                } else {
                    state[step.key] = step.value
                }
            }
        }
        return state
    }

    public func describe(_ state: [Value: Value]) -> String {
        "registers {" + state.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ") + "}"
    }
}

/// A queue: `:enqueue x`, and `:dequeue` returning the element it took (nil: the queue was
/// empty). First in, first out, or, `unordered`, any element that is in it. A dequeue of unknown
/// outcome takes the head of a FIFO queue; of an unordered one it is left out (what it took is
/// unknown, and an element left in the queue makes no later operation impossible).
public struct QueueModel: Model {
    public let name: String
    public let unordered: Bool
    public let initial: [Value] = []
    public init(unordered: Bool) {
        self.unordered = unordered
        name = unordered ? "unordered-queue" : "fifo-queue"
    }
    public func step(_ queue: [Value], _ operation: HistoryOperation) -> [Value]? {
        switch operation.function {
        case .enqueue:
            return queue + [operation.input]
        case .dequeue:
            if operation.isIndeterminate { return unordered || queue.isEmpty ? queue : Array(queue.dropFirst()) }
            if operation.output == .none { return queue.isEmpty ? queue : nil }
            if unordered {
                guard let index = queue.firstIndex(of: operation.output) else { return nil }
                var rest = queue
                rest.remove(at: index)
                return rest
            }
            return queue.first == operation.output ? Array(queue.dropFirst()) : nil
        default:
            return nil
        }
    }
    public func describe(_ queue: [Value]) -> String { "queue [" + queue.map(\.description).joined(separator: " ") + "]" }
}
