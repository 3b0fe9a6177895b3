/// The models `chaostrace check` knows.
public enum HistoryModel: String, CaseIterable, Sendable {
    case register
    case casRegister = "cas-register"
    case kv
    case set
    case counter

    /// Checks `operations` against this model.
    public func check(_ operations: [HistoryOperation], checker: LinearizabilityChecker = LinearizabilityChecker()) -> LinearizabilityVerdict {
        switch self {
        case .register: checker.check(operations, model: RegisterModel())
        case .casRegister, .kv: checker.check(operations, model: CASRegisterModel())
        case .set: checker.check(operations, model: SetModel())
        case .counter: checker.check(operations, model: CounterModel())
        }
    }

    /// Reads a history's text into operations for this model.
    public func operations(from text: String) throws -> [HistoryOperation] {
        let entries = try HistoryParser.parse(text)
        let keyed = entries.contains { $0.key != nil }
        return try History.operations(entries, independentKeys: self == .kv && !keyed)
    }
}
