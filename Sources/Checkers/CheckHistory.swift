/// The models `chaostrace check` knows.
public enum HistoryModel: String, CaseIterable, Sendable {
    case register
    case casRegister = "cas-register"
    case kv
    case set
    case counter
    case mutex
    case multiRegister = "multi-register"
    case fifoQueue = "fifo-queue"
    case unorderedQueue = "unordered-queue"

    /// Checks `operations` against this model.
    /// Whether the model has a starting value (`check(_:checker:initial:)`).
    public var hasInitialValue: Bool { self == .register || self == .casRegister || self == .kv }

    /// `initial`: the value of the register (of every key) before the history, for the models
    /// that have one (nil: never written).
    public func check(_ operations: [HistoryOperation], checker: LinearizabilityChecker = LinearizabilityChecker(),
                      initial: Value = .none) -> LinearizabilityVerdict {
        switch self {
        case .register: checker.check(operations, model: RegisterModel(initial: initial))
        case .casRegister: checker.check(operations, model: CASRegisterModel(initial: initial))
        case .kv: checker.check(operations, model: KeyValueModel(initial: initial))
        case .set: checker.check(operations, model: SetModel())
        case .counter: checker.check(operations, model: CounterModel())
        case .mutex: checker.check(operations, model: MutexModel())
        case .multiRegister: checker.check(operations, model: MultiRegisterModel())
        case .fifoQueue: checker.check(operations, model: QueueModel(unordered: false))
        case .unorderedQueue: checker.check(operations, model: QueueModel(unordered: true))
        }
    }

    /// Reads a history's text into operations for this model.
    /// The functions an operation of this model may have.
    public var functions: [HistoryOperation.Function] {
        switch self {
        case .register: [.read, .write]
        case .casRegister: [.read, .write, .cas]
        case .kv: [.read, .write, .cas, .append]
        case .set, .counter: [.read, .add]
        case .mutex: [.acquire, .release]
        case .multiRegister: [.txn]
        case .fifoQueue, .unorderedQueue: [.enqueue, .dequeue]
        }
    }

    /// Reads a history's text into operations for this model. A history with no client entry at
    /// all, or with an operation the model does not have (a `:cas` checked as a plain
    /// register), is refused: checking it would give a verdict about the wrong thing.
    public func operations(from text: String) throws -> [HistoryOperation] {
        let entries = try HistoryParser.parse(text)
        let keyed = entries.contains { $0.key != nil }
        if keyed && self != .kv, let entry = entries.first(where: { $0.key != nil }) {
            throw HistoryError(message: "operations carry :key, so the history is over several keys; check it with --model kv "
                               + "(model \(rawValue) would judge every key as one object)", line: entry.line)
        }
        for entry in entries where entry.process != nil {
            guard let function = HistoryOperation.Function(named: entry.function) else { continue }
            guard functions.contains(function) else {
                var others = HistoryModel.allCases.filter { $0.functions.contains(function) }.map(\.rawValue)
                // Transactions are also what the transactional models check.
                if function == .txn { others += TransactionModel.allCases.map(\.rawValue) }
                throw HistoryError(message: "model \(rawValue) has no :\(entry.function) operations (it has "
                                   + functions.map { ":\($0.rawValue)" }.joined(separator: " and ")
                                   + "); check it with --model \(others.joined(separator: " or "))", line: entry.line)
            }
        }
        if self == .kv, let entry = entries.first(where: { entry in
            guard entry.process != nil, entry.function == "append" else { return false }
            let value = entry.key == nil ? entry.value.list?.last ?? .none : entry.value
            if case .string = value { return false }
            return true
        }) {
            throw HistoryError(message: "an :append appends a string to a key's value, got \(entry.value)", line: entry.line)
        }
        if self == .multiRegister, let entry = entries.first(where: {
            $0.process != nil && ($0.kind == .invoke || $0.kind == .ok) && MultiRegisterModel.steps($0.value) == nil
        }) {
            throw HistoryError(message: "a multi-register :txn's :value is a vector of steps like [[:read :x nil] [:write :y 2]], got \(entry.value)",
                               line: entry.line)
        }
        let operations = try History.operations(entries, independentKeys: self == .kv && !keyed)
        // (A history whose every operation failed is fine: nothing happened, which is linearizable.)
        guard entries.contains(where: { $0.process != nil }) else {
            throw HistoryError(message: (entries.isEmpty ? "the history is empty" : "the history has no client operations (only the nemesis's)")
                               + ": there is nothing to check", line: nil)
        }
        return operations
    }
}
