/// The verdict of a linearizability check.
public enum LinearizabilityVerdict: Sendable {
    case linearizable
    /// No order of the operations of this partition explains what the clients saw.
    case notLinearizable(LinearizabilityFailure)
    /// The search budget ran out before a verdict.
    case unknown(String)
}

/// Where a history stops being linearizable.
public struct LinearizabilityFailure: Sendable {
    /// The partition's key (nil when the history was not partitioned).
    public var key: Value?
    /// The operations of the (smallest) failing partition, in invocation order.
    public var operations: [HistoryOperation]
    /// The operation that could not take effect before it returned, in the deepest search.
    public var culprit: HistoryOperation?
    /// Operations the best order managed to linearize before getting stuck.
    public var linearized: Int
    public var explanation: String
}

/// Wing–Gong–Lowe linearizability search with a cache of (linearized set, state) configurations,
/// partitioned by key (P-compositionality): each key is checked alone, smallest first, and the
/// check stops at the first partition that is not linearizable.
public struct LinearizabilityChecker: Sendable {
    /// Search steps allowed over the whole history before answering `unknown`.
    public var maxSteps: Int

    public init(maxSteps: Int = 20_000_000) {
        self.maxSteps = maxSteps
    }

    /// - Complexity: exponential in the worst case (the problem is NP-complete); the cache and the
    ///   partitioning keep the histories of real systems to a few steps per operation.
    public func check<M: Model>(_ operations: [HistoryOperation], model: M) -> LinearizabilityVerdict {
        // Group by key, in the order keys first appear; smallest partitions first. A read whose
        // result nobody saw (it timed out, its node crashed) neither constrains the order nor
        // changes the state: it goes, and with it a branch of the search at every point it could
        // take effect (a crash-heavy run leaves dozens, which ran the search out of steps).
        var order: [Value?] = []
        var groups: [Value?: [HistoryOperation]] = [:]
        for operation in operations where !(operation.function == .read && operation.completion == nil) {
            if groups[operation.key] == nil { order.append(operation.key) }
            groups[operation.key, default: []].append(operation)
        }
        let partitions = order.map { ($0, groups[$0]!) }.enumerated()
            .sorted { ($0.element.1.count, $0.offset) < ($1.element.1.count, $1.offset) }.map(\.element)
        var budget = maxSteps
        var unknown: String?
        for (key, partition) in partitions {
            switch checkPartition(partition, key: key, model: model, budget: &budget) {
            case .linearizable: continue
            case .notLinearizable(let failure): return .notLinearizable(failure)
            case .unknown(let reason): unknown = unknown ?? reason
            }
            if budget <= 0 { break }
        }
        if let unknown { return .unknown(unknown) }
        return .linearizable
    }

    private struct Entry {
        var time: Int
        var operation: Int
        var isCall: Bool
    }

    /// A configuration of the search: the set of linearized operations, as a 128-bit Zobrist hash
    /// (each operation has a fixed random 128-bit key; the set's hash is the XOR of its members'),
    /// and the model's state. A bitset per cache entry cost memory quadratic in the history (12 KB
    /// per step for 100,000 operations); two different sets share a hash with probability 2⁻¹²⁸.
    private struct Configuration<S: Hashable>: Hashable {
        var high: UInt64
        var low: UInt64
        var state: S
    }

    /// The fixed Zobrist keys of `count` operations (SplitMix64 from a constant: the same in every process).
    private static func zobristKeys(_ count: Int) -> [(high: UInt64, low: UInt64)] {
        var seed: UInt64 = 0x6A09_E667_F3BC_C908
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return (0..<count).map { _ in (next(), next()) }
    }

    func checkPartition<M: Model>(_ operations: [HistoryOperation], key: Value?, model: M, budget: inout Int) -> LinearizabilityVerdict {
        let count = operations.count
        if count == 0 { return .linearizable }
        // Entries: a call for every operation, a return for every completed one, by position.
        var entries: [Entry] = []
        for (index, operation) in operations.enumerated() {
            entries.append(Entry(time: operation.invocation, operation: index, isCall: true))
            if let completion = operation.completion {
                entries.append(Entry(time: completion, operation: index, isCall: false))
            }
        }
        entries.sort { $0.time < $1.time || ($0.time == $1.time && !$0.isCall && $1.isCall) }
        // A doubly linked list over entries 1...n with a head sentinel 0 and an end sentinel n+1.
        let n = entries.count
        var next = Array(1...(n + 1)) + [n + 1]
        var previous = [0] + Array(0...n)
        var returnOf = [Int](repeating: -1, count: count)
        var callOf = [Int](repeating: -1, count: count)
        for (position, entry) in entries.enumerated() {
            if entry.isCall { callOf[entry.operation] = position + 1 } else { returnOf[entry.operation] = position + 1 }
        }
        func lift(_ node: Int) {
            next[previous[node]] = next[node]
            previous[next[node]] = previous[node]
        }
        func unlift(_ node: Int) {
            next[previous[node]] = node
            previous[next[node]] = node
        }
        let keys = Self.zobristKeys(count)
        var linearized: (high: UInt64, low: UInt64) = (0, 0)
        var state = model.initial
        var cache = Set<Configuration<M.State>>()
        var stack: [(operation: Int, state: M.State)] = []
        var remainingReturns = operations.filter { $0.completion != nil }.count
        var deepest = (linearized: -1, culprit: -1, state: model.initial)
        var entry = next[0]
        while true {
            if remainingReturns == 0 { return .linearizable }
            budget -= 1
            if budget <= 0 {
                return .unknown("search budget exhausted after \(maxSteps) steps (partition \(key?.description ?? "all") of \(count) operations)")
            }
            precondition(entry <= n, "the search ran past the last entry with returns outstanding")
            let current = entries[entry - 1]
            let index = current.operation
            if current.isCall {
                if let after = model.step(state, operations[index]) {
                    let marked = (high: linearized.high ^ keys[index].high, low: linearized.low ^ keys[index].low)
                    if cache.insert(Configuration(high: marked.high, low: marked.low, state: after)).inserted {
                        stack.append((index, state))
                        state = after
                        linearized = marked
                        lift(entry)
                        if returnOf[index] >= 0 {
                            lift(returnOf[index])
                            remainingReturns -= 1
                        }
                        entry = next[0]
                        continue
                    }
                }
                entry = next[entry]
            } else {
                // This operation returned before any order let it take effect: back up.
                if stack.count > deepest.linearized {
                    deepest = (stack.count, index, state)
                }
                guard let (undone, before) = stack.popLast() else { break }
                state = before
                linearized = (linearized.high ^ keys[undone].high, linearized.low ^ keys[undone].low)
                if returnOf[undone] >= 0 {
                    unlift(returnOf[undone])
                    remainingReturns += 1
                }
                unlift(callOf[undone])
                entry = next[callOf[undone]]
            }
        }
        let culprit = deepest.culprit >= 0 ? operations[deepest.culprit] : nil
        let explanation: String
        if let culprit {
            explanation = "\(culprit.edn) (\(culprit.source)) cannot take effect before it returns: the best order linearizes \(deepest.linearized) of \(count) operations and leaves \(model.describe(deepest.state))"
        } else {
            explanation = "no order of the \(count) operations is legal for a \(model.name)"
        }
        return .notLinearizable(LinearizabilityFailure(key: key, operations: operations, culprit: culprit,
                                                       linearized: max(0, deepest.linearized), explanation: explanation))
    }
}
