import Simulation

/// Client histories of simulated runs, as the linearizability checker reads them.
public enum SimulationHistory {
    /// The operations of `history`: ok → completed, fail → dropped (it did not happen), info or no
    /// answer → indeterminate. Keys partition the history; values are integers.
    public static func operations(_ history: [Simulation.HistoryEntry]) -> [HistoryOperation] {
        var operations: [HistoryOperation] = []
        for entry in history {
            let reply = entry.reply
            if reply?.outcome == .fail { continue }
            let request = entry.request.operation
            let function: HistoryOperation.Function
            var input: Value = .none
            switch request.function {
            case .read: function = .read
            case .write:
                function = .write
                input = .int(request.value)
            case .cas:
                function = .cas
                input = .list([.int(request.expected), .int(request.value)])
            case .add:
                function = .add
                input = .int(request.value)
            case .echo, .generate, .commit, .list, .txn: continue
            }
            var output: Value = .none
            if function == .read, let reply, reply.outcome == .ok {
                output = reply.isNil ? .keyword("absent") : .int(reply.value)
            }
            let completed = reply?.outcome == .ok ? entry.completeEvent.map { Int($0) } : nil
            operations.append(HistoryOperation(process: Int(entry.request.client), function: function, key: .int(Int64(request.key)),
                                               input: input, output: output, invocation: Int(entry.invokeEvent),
                                               completion: completed, source: "events #\(entry.invokeEvent)" + (entry.completeEvent.map { "–#\($0)" } ?? "")))
        }
        return operations
    }
}

/// Checks a run's client history for linearizability against a key-value store of
/// compare-and-set registers, each key starting unwritten (reads of it are `:absent`).
public final class LinearizabilityRunChecker: Checker {
    public let name = "linearizability"
    let maxSteps: Int

    public init(maxSteps: Int = 5_000_000) { self.maxSteps = maxSteps }

    public func finish(_ simulation: Simulator) -> Violation? {
        let operations = SimulationHistory.operations(simulation.history)
        let verdict = LinearizabilityChecker(maxSteps: maxSteps).check(operations, model: CASRegisterModel())
        switch verdict {
        case .linearizable:
            return nil
        case .unknown(let reason):
            // Undecided is not a pass: say so, without claiming a violation.
            simulation.warn("linearizability undecided: \(reason)")
            return nil
        case .notLinearizable(let failure):
            let witnesses = failure.culprit.map { culprit in
                [UInt64(culprit.invocation)] + (culprit.completion.map { [UInt64($0)] } ?? [])
            } ?? failure.operations.prefix(4).map { UInt64($0.invocation) }
            return Violation(checker: name, kind: "not-linearizable",
                             explanation: "key \(failure.key?.description ?? "?"): \(failure.explanation)", events: witnesses)
        }
    }
}
