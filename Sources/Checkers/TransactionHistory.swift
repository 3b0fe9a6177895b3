/// Transactional histories, checked as Elle checks them (`chaostrace check --model list-append`
/// or `rw-register`). Every operation is a transaction, `:f :txn`, whose `:value` is a vector of
/// steps: `[:append k v]` (list-append) or `[:w k v]` (rw-register) writes, and `[:r k v]` reads
/// (nil when invoked; when completed, the list read, or the register's value, nil for never
/// written). A value is appended or written to a key at most once in a history, so every value
/// read names the transaction that wrote it.
public enum TransactionModel: String, CaseIterable, Sendable {
    case listAppend = "list-append"
    case rwRegister = "rw-register"

    var writeName: String { self == .listAppend ? "append" : "w" }
}

/// What a transactional history is checked against, weakest first.
public enum ConsistencyModel: String, CaseIterable, Sendable, Comparable {
    case readUncommitted = "read-uncommitted"
    case readCommitted = "read-committed"
    case serializable
    case strictSerializable = "strict-serializable"

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// One transaction of a history: its steps as completed (as invoked, when it never completed).
public struct HistoryTransaction: Sendable {
    public enum Outcome: String, Sendable { case ok, fail, info }
    public struct Step: Sendable, Equatable {
        public var write: Bool
        public var key: Value
        /// What a write wrote, or what a read returned (nil: never written, or an empty list).
        public var value: Value

        public init(write: Bool, key: Value, value: Value) {
            self.write = write
            self.key = key
            self.value = value
        }
    }

    public var process: Int
    public var outcome: Outcome
    public var steps: [Step]
    /// Positions of the invocation and completion in the history (nil: never completed).
    public var invocation: Int
    public var completion: Int?
    public var lines: String
    let writeName: String

    public init(process: Int, outcome: Outcome, steps: [Step], invocation: Int, completion: Int?, lines: String, model: TransactionModel) {
        self.init(process: process, outcome: outcome, steps: steps, invocation: invocation, completion: completion, lines: lines,
                  writeName: model.writeName)
    }

    init(process: Int, outcome: Outcome, steps: [Step], invocation: Int, completion: Int?, lines: String, writeName: String) {
        self.process = process
        self.outcome = outcome
        self.steps = steps
        self.invocation = invocation
        self.completion = completion
        self.lines = lines
        self.writeName = writeName
    }

    /// The transaction in Jepsen's notation, with where it came from.
    public var edn: String {
        let steps = steps.map { "[:\($0.write ? writeName : "r") \($0.key) \($0.value)]" }.joined(separator: " ")
        return "{:process \(process), :type :\(outcome.rawValue), :f :txn, :value [\(steps)]}"
    }
}

/// An anomaly found in a transactional history: Elle's name for it, what happened, and the
/// transactions involved (a cycle's in its order).
public struct TransactionAnomaly: Sendable {
    public var name: String
    public var explanation: String
    public var transactions: [HistoryTransaction]
    /// For a cycle: each transaction (its place in the list checked) with the dependency that
    /// leads from it to the next, and the key that dependency is about (nil: real time).
    public var cycle: [CycleStep] = []

    public struct CycleStep: Sendable {
        public var transaction: Int
        public var dependency: TransactionGraph.Dependency
        public var key: Value?
    }
}

public struct TransactionHistoryChecker: Sendable {
    public var model: TransactionModel
    public var consistency: ConsistencyModel

    public init(model: TransactionModel, consistency: ConsistencyModel) {
        self.model = model
        self.consistency = consistency
    }

    // MARK: Reading

    /// Reads a history's text (EDN or JSON, as `HistoryParser` reads them) into transactions.
    public func transactions(from text: String) throws -> [HistoryTransaction] {
        let entries = try HistoryParser.parse(text)
        var transactions: [HistoryTransaction] = []
        var open: [Int: Int] = [:]  // process → its open transaction
        var written: [Version: Int] = [:]  // each value written, and the line it is written on
        for (position, entry) in entries.enumerated() {
            guard let process = entry.process else { continue }
            guard entry.function == "txn" else {
                throw HistoryError(message: "model \(model.rawValue) checks transactions (:f :txn), not :\(entry.function)", line: entry.line)
            }
            switch entry.kind {
            case .invoke:
                if open[process] != nil {
                    throw HistoryError(message: "process \(process) invoked again before its previous transaction completed", line: entry.line)
                }
                open[process] = transactions.count
                let steps = try steps(entry.value, line: entry.line)
                for step in steps where step.write {
                    if let first = written.updateValue(entry.line, forKey: Version(key: step.key, value: step.value)) {
                        throw HistoryError(message: "\(step.value) is written to key \(step.key) a second time (first on line \(first)); "
                                           + "a value is written once per key, so that a read names its writer", line: entry.line)
                    }
                }
                transactions.append(HistoryTransaction(process: process, outcome: .info, steps: steps,
                                                       invocation: position, completion: nil, lines: "line \(entry.line)",
                                                       writeName: model.writeName))
            case .ok, .fail, .info:
                guard let index = open.removeValue(forKey: process) else {
                    throw HistoryError(message: "process \(process) completed a transaction it never invoked", line: entry.line)
                }
                transactions[index].outcome = entry.kind == .ok ? .ok : entry.kind == .fail ? .fail : .info
                guard entry.kind == .ok else { continue }
                let completed = try steps(entry.value, line: entry.line)
                let invoked = transactions[index].steps
                guard completed.count == invoked.count,
                      zip(completed, invoked).allSatisfy({ $0.write == $1.write && $0.key == $1.key && (!$0.write || $0.value == $1.value) }) else {
                    throw HistoryError(message: "process \(process) completed a transaction with other steps than it invoked", line: entry.line)
                }
                transactions[index].steps = completed
                transactions[index].completion = position
                transactions[index].lines += "–\(entry.line)"
            }
        }
        guard !transactions.isEmpty else {
            throw HistoryError(message: entries.isEmpty ? "the history is empty: there is nothing to check"
                               : "the history has no client transactions: there is nothing to check", line: nil)
        }
        return transactions
    }

    private func steps(_ value: Value, line: Int) throws -> [HistoryTransaction.Step] {
        let example = "[[:\(model.writeName) 1 2] [:r 1 nil]]"
        guard let items = value.list else { throw HistoryError(message: "a transaction's :value is a vector of steps like \(example)", line: line) }
        return try items.map { item in
            guard let parts = item.list, parts.count == 3 else {
                throw HistoryError(message: "a step is [f key value], like \(example); got \(item)", line: line)
            }
            let name: String
            switch parts[0] {
            case .keyword(let text), .string(let text): name = text
            default: name = ""
            }
            guard name == "r" || name == model.writeName else {
                throw HistoryError(message: "model \(model.rawValue) has steps :r and :\(model.writeName), not \(parts[0])", line: line)
            }
            if model == .listAppend && name == "r" && parts[2] != .none && parts[2].list == nil {
                throw HistoryError(message: "a list-append read returns a vector (or nil), got \(parts[2])", line: line)
            }
            return HistoryTransaction.Step(write: name != "r", key: parts[1], value: parts[2])
        }
    }

    // MARK: Checking

    private struct Version: Hashable {
        var key: Value
        var value: Value
    }

    /// The first anomaly the consistency model forbids, or nil. Always: no read of a value nobody
    /// wrote (`garbage-read`), no list holding an element twice (`duplicate-elements`), no cycle
    /// of ww dependencies (G0). From read committed: no read of a failed transaction's write
    /// (G1a), nor of a state its transaction went on to change (G1b), nor of what the
    /// transaction itself writes only later (`future-read`); reads of a list agree on its order
    /// (`incompatible-order`); no cycle of ww and wr (G1c). From serializable: each
    /// transaction sees its own writes (`internal`), and no cycle through rw (G-single, G2);
    /// strict serializable: nor through real time.
    public func check(_ transactions: [HistoryTransaction]) -> TransactionAnomaly? {
        anomalies(transactions).first
    }

    /// Every kind of anomaly the consistency model forbids that the history shows, each once
    /// (with its first instance), as Elle lists them: the reads' anomalies first, in the order of
    /// the history, then the cycles'.
    public func anomalies(_ transactions: [HistoryTransaction]) -> [TransactionAnomaly] {
        var found: [TransactionAnomaly] = []
        var named = Set<String>()
        func note(_ name: String, _ explanation: String, _ involved: [HistoryTransaction]) {
            if named.insert(name).inserted { found.append(anomaly(name, explanation, involved)) }
        }
        let writers = Self.writers(transactions)
        let committed = consistency >= .readCommitted
        var longest: [Value: (values: [Value], transaction: Int)] = [:]
        var disordered = Set<Value>()
        for (number, transaction) in transactions.enumerated() where transaction.outcome == .ok {
            for (stepIndex, step) in transaction.steps.enumerated() where !step.write {
                let values = model == .listAppend ? (step.value.list ?? []) : (step.value == .none ? [] : [step.value])
                var seen = Set<Value>()
                for value in values {
                    if !seen.insert(value).inserted {
                        note("duplicate-elements", "\(Self.show(transaction)) read \(step.value) from key \(step.key): \(value) is in it twice", [transaction])
                    }
                    guard let writer = writers[Version(key: step.key, value: value)] else {
                        note("garbage-read", "\(Self.show(transaction)) read \(value) from key \(step.key), which no transaction wrote there", [transaction])
                        continue
                    }
                    let source = transactions[writer.transaction]
                    if committed && source.outcome == .fail {
                        note("G1a", "\(Self.show(transaction)) read \(value) from key \(step.key), written by \(Self.show(source)), which failed", [transaction, source])
                    }
                }
                if committed, let intermediate = intermediateRead(number, step: step, values: values, transactions, writers) {
                    note(intermediate.name, intermediate.explanation, intermediate.transactions)
                }
                if committed, let value = values.first(where: { value in
                    writers[Version(key: step.key, value: value)].map { $0.transaction == number && $0.step > stepIndex } ?? false
                }) {
                    note("future-read", "\(Self.show(transaction)) read \(value) from key \(step.key) in step \(stepIndex + 1), which it writes there only later", [transaction])
                }
                guard model == .listAppend, !disordered.contains(step.key) else { continue }
                if let before = longest[step.key] {
                    let (short, long) = values.count <= before.values.count ? (values, before.values) : (before.values, values)
                    guard long.starts(with: short) else {
                        if committed {
                            let other = transactions[before.transaction]
                            note("incompatible-order", "reads of key \(step.key) disagree on its order: \(Self.show(transaction)) read \(step.value), \(Self.show(other)) read \(Value.list(before.values)); neither is a prefix of the other", [transaction, other])
                        }
                        // Its order of versions is unknown.
                        disordered.insert(step.key)
                        continue
                    }
                    if values.count > before.values.count { longest[step.key] = (values, number) }
                } else {
                    longest[step.key] = (values, number)
                }
            }
            if consistency >= .serializable, let inconsistent = internalRead(transaction) {
                note(inconsistent.name, inconsistent.explanation, inconsistent.transactions)
            }
        }
        var versions: [Value: [Value]] = [:]
        for (key, read) in longest where !disordered.contains(key) { versions[key] = read.values }
        for cycle in cycles(transactions, writers: writers, versions: versions) where named.insert(cycle.name).inserted {
            found.append(cycle)
        }
        return found
    }

    /// Every kind of dependency cycle the consistency model forbids, each once, between
    /// `transactions` whose lists' versions are in the order `versions` gives (one list per key;
    /// a key left out has no known order): for a caller that has judged the reads itself.
    public func cycleAnomalies(_ transactions: [HistoryTransaction], versions: [Value: [Value]]) -> [TransactionAnomaly] {
        var named = Set<String>()
        return cycles(transactions, writers: Self.writers(transactions), versions: versions).filter { named.insert($0.name).inserted }
    }

    /// Who wrote each value to each key: the transaction and its step.
    private static func writers(_ transactions: [HistoryTransaction]) -> [Version: (transaction: Int, step: Int)] {
        var writers: [Version: (transaction: Int, step: Int)] = [:]
        for (number, transaction) in transactions.enumerated() {
            for (index, step) in transaction.steps.enumerated() where step.write {
                writers[Version(key: step.key, value: step.value)] = (number, index)
            }
        }
        return writers
    }

    /// G1b: a read of a state its writer went on to change: a register value it overwrote, or a
    /// list holding some of its appends there but not its last.
    private func intermediateRead(_ number: Int, step: HistoryTransaction.Step, values: [Value], _ transactions: [HistoryTransaction],
                                  _ writers: [Version: (transaction: Int, step: Int)]) -> TransactionAnomaly? {
        var checked = Set<Int>()
        let held = Set(values)
        for value in values {
            guard let writer = writers[Version(key: step.key, value: value)], writer.transaction != number,
                  checked.insert(writer.transaction).inserted else { continue }
            let source = transactions[writer.transaction]
            guard let last = source.steps.last(where: { $0.write && $0.key == step.key }) else { continue }
            let intermediate = model == .listAppend ? !held.contains(last.value) : values.last != last.value
            if intermediate {
                return anomaly("G1b", "\(Self.show(transactions[number])) read \(step.value) from key \(step.key), a state \(Self.show(source)) went on to change", [transactions[number], source])
            }
        }
        return nil
    }

    /// `internal`: a read that does not show the transaction's own earlier steps on that key.
    private func internalRead(_ transaction: HistoryTransaction) -> TransactionAnomaly? {
        var known: [Value: (values: [Value], whole: Bool)] = [:]
        for (index, step) in transaction.steps.enumerated() {
            if step.write {
                if model == .listAppend {
                    let before = known[step.key] ?? ([], false)
                    known[step.key] = (before.values + [step.value], before.whole)
                } else {
                    known[step.key] = ([step.value], true)
                }
                continue
            }
            let read = model == .listAppend ? (step.value.list ?? []) : (step.value == .none ? [] : [step.value])
            if let expected = known[step.key] {
                let sees = expected.whole ? read == expected.values : read.suffix(expected.values.count).elementsEqual(expected.values)
                if !sees {
                    return anomaly("internal", "\(Self.show(transaction)) read \(step.value) from key \(step.key) in step \(index + 1), which does not show its own earlier steps there", [transaction])
                }
            }
            known[step.key] = (read, true)
        }
        return nil
    }

    /// A cycle of dependencies the consistency model forbids (`TransactionGraph`), between the
    /// completed transactions and those of unknown outcome whose writes someone read.
    private func cycles(_ transactions: [HistoryTransaction], writers: [Version: (transaction: Int, step: Int)],
                        versions: [Value: [Value]]) -> [TransactionAnomaly] {
        var observed = Set<Int>()
        for transaction in transactions where transaction.outcome == .ok {
            for step in transaction.steps where !step.write {
                for value in model == .listAppend ? (step.value.list ?? []) : [step.value] {
                    if let writer = writers[Version(key: step.key, value: value)] { observed.insert(writer.transaction) }
                }
            }
        }
        var members: [Int] = []
        var node: [Int: Int] = [:]
        for (number, transaction) in transactions.enumerated()
            where transaction.outcome == .ok || (transaction.outcome == .info && observed.contains(number)) {
            node[number] = members.count
            members.append(number)
        }
        guard members.count > 1 else { return [] }
        // Keys by number, in the order they first appear, for the graph's edges.
        var keys: [Value] = []
        var keyNumber: [Value: UInt64] = [:]
        func number(_ key: Value) -> UInt64 {
            if let known = keyNumber[key] { return known }
            keyNumber[key] = UInt64(keys.count)
            keys.append(key)
            return UInt64(keys.count - 1)
        }
        var graph = TransactionGraph(count: members.count)
        func writer(_ key: Value, _ value: Value) -> Int? { writers[Version(key: key, value: value)].flatMap { node[$0.transaction] } }
        for transaction in transactions {
            for step in transaction.steps { _ = number(step.key) }
        }
        for key in keys {
            guard let list = versions[key] else { continue }
            for (earlier, later) in zip(list, list.dropFirst()) {
                if let first = writer(key, earlier), let second = writer(key, later) { graph.add(first, second, .ww, key: number(key)) }
            }
        }
        var readers: [Version: [Int]] = [:]
        var initialReaders: [Value: [Int]] = [:]
        for number in members where transactions[number].outcome == .ok {
            let transaction = transactions[number]
            let reader = node[number]!
            var wrote = Set<Value>()
            for step in transaction.steps {
                if step.write { wrote.insert(step.key); continue }
                if model == .listAppend {
                    var values = step.value.list ?? []
                    // Its own appends at the end are its own doing, not a version it read.
                    while let last = values.last, writers[Version(key: step.key, value: last)]?.transaction == number { values.removeLast() }
                    if let last = values.last, let source = writer(step.key, last) { graph.add(source, reader, .wr, key: keyNumber[step.key]) }
                    if let list = versions[step.key], values.count < list.count, list.starts(with: values),
                       let next = writers[Version(key: step.key, value: list[values.count])], next.transaction != number,
                       let target = node[next.transaction] {
                        graph.add(reader, target, .rw, key: keyNumber[step.key])
                    }
                } else if !wrote.contains(step.key) {
                    if step.value == .none {
                        initialReaders[step.key, default: []].append(reader)
                    } else if let source = writer(step.key, step.value) {
                        graph.add(source, reader, .wr, key: keyNumber[step.key])
                        readers[Version(key: step.key, value: step.value), default: []].append(reader)
                    }
                }
            }
        }
        if model == .rwRegister {
            // The order of a register's versions, as far as it is known: every version follows the
            // initial nil, and a read-then-write puts the write after the version read.
            // Edges from a version's readers to each later writer can be many: a budget bounds them
            // (the ones left out can only hide a cycle, never make one).
            var budget = 2_000_000
            for number in members where transactions[number].outcome == .ok {
                let transaction = transactions[number]
                let target = node[number]!
                var wrote = Set<Value>()
                var read: [Value: Value] = [:]
                for step in transaction.steps {
                    guard step.write else {
                        if !wrote.contains(step.key) { read[step.key] = step.value }
                        continue
                    }
                    defer { wrote.insert(step.key) }
                    guard !wrote.contains(step.key) else { continue }
                    for reader in initialReaders[step.key] ?? [] where budget > 0 {
                        graph.add(reader, target, .rw, key: keyNumber[step.key])
                        budget -= 1
                    }
                    guard let seen = read[step.key], seen != .none else { continue }
                    if let source = writer(step.key, seen) { graph.add(source, target, .ww, key: keyNumber[step.key]) }
                    for reader in readers[Version(key: step.key, value: seen)] ?? [] where budget > 0 {
                        graph.add(reader, target, .rw, key: keyNumber[step.key])
                        budget -= 1
                    }
                }
            }
        }
        // Each component's worst cycle, at each of the levels the model forbids (the first 100
        // components at each: a history with more shows its kinds long before).
        var found: [TransactionAnomaly] = []
        func search(_ allowed: Set<TransactionGraph.Dependency>) {
            for component in graph.components(allowed: allowed).prefix(100) {
                if let cycle = graph.anomaly(in: [component], allowed: allowed) { found.append(cycleAnomaly(cycle, members, transactions, keys)) }
            }
        }
        var allowed: Set<TransactionGraph.Dependency> = consistency >= .readCommitted ? [.ww, .wr] : [.ww]
        search(allowed)
        guard consistency >= .serializable else { return found }
        allowed.insert(.rw)
        search(allowed)
        guard consistency >= .strictSerializable else { return found }
        // Real time, with history positions as the order of time.
        graph.addRealtime(invoked: members.map { UInt64(transactions[$0].invocation) },
                          completed: members.map { transactions[$0].completion.map(UInt64.init) })
        allowed.insert(.realtime)
        search(allowed)
        return found
    }

    private func cycleAnomaly(_ found: (name: String, cycle: TransactionGraph.Cycle), _ members: [Int],
                              _ transactions: [HistoryTransaction], _ keys: [Value]) -> TransactionAnomaly {
        var parts: [String] = []
        for step in found.cycle {
            parts.append(Self.show(transactions[members[step.transaction]]))
            let on = step.edge.key.map { " \(keys[Int($0)])" } ?? ""
            parts.append("—\(step.edge.dependency.name)\(on)→")
        }
        parts.append("the first again")
        var result = anomaly(found.name, "a cycle of \(found.cycle.count) transactions: " + parts.joined(separator: " "),
                             found.cycle.map { transactions[members[$0.transaction]] })
        result.cycle = found.cycle.map { step in
            TransactionAnomaly.CycleStep(transaction: members[step.transaction], dependency: step.edge.dependency,
                                         key: step.edge.key.map { keys[Int($0)] })
        }
        return result
    }

    private func anomaly(_ name: String, _ explanation: String, _ involved: [HistoryTransaction]) -> TransactionAnomaly {
        TransactionAnomaly(name: name, explanation: explanation, transactions: involved)
    }

    private static func show(_ transaction: HistoryTransaction) -> String {
        "\(transaction.edn) (\(transaction.lines))"
    }
}
