/// Generates linearizable key-value histories (each operation takes effect at a random point
/// between its invocation and its completion), optionally with one planted stale read. For the
/// benchmark and for tests.
public struct HistoryGenerator {
    public var clients: Int
    public var keys: Int
    public var operations: Int
    public var seed: UInt64

    public init(clients: Int, keys: Int, operations: Int, seed: UInt64) {
        self.clients = clients
        self.keys = keys
        self.operations = operations
        self.seed = seed
    }

    private struct Random {
        var state: UInt64
        mutating func below(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    /// The history as operations; with `violation`, one late read returns a value never written.
    public func generate(violation: Bool) -> [HistoryOperation] {
        var random = Random(state: seed)
        var registers = [Value](repeating: .none, count: keys)
        struct Open { var index: Int; var applied: Bool }
        var open = [Open?](repeating: nil, count: clients)
        var result: [HistoryOperation] = []
        var position = 0
        var nextValue: Int64 = 1
        var completed = 0
        let planted = violation ? operations * 3 / 4 : Int.max
        var plantedDone = false
        while completed < operations || open.contains(where: { $0 != nil }) {
            let client = random.below(clients)
            position += 1
            if var current = open[client] {
                if !current.applied {
                    // The operation takes effect now.
                    var operation = result[current.index]
                    let key = Int(operation.key!.int!)
                    switch operation.function {
                    case .write: registers[key] = operation.input
                    case .read: operation.output = registers[key]
                    case .cas:
                        let pair = operation.input.list!
                        if registers[key] == pair[0] { registers[key] = pair[1] } else { operation.source = "failed" }
                    case .add, .append, .acquire, .release, .txn, .enqueue, .dequeue: break
                    }
                    result[current.index] = operation
                    current.applied = true
                    open[client] = current
                } else {
                    result[current.index].completion = position
                    if result[current.index].function == .read && completed >= planted && !plantedDone {
                        result[current.index].output = .int(-999)
                        plantedDone = true
                    }
                    open[client] = nil
                    completed += 1
                }
            } else if completed + open.compactMap({ $0 }).count < operations {
                let key = Value.int(Int64(random.below(keys)))
                let function: HistoryOperation.Function = [.read, .read, .write, .cas][random.below(4)]
                var input = Value.none
                if function == .write {
                    input = .int(nextValue)
                    nextValue += 1
                } else if function == .cas {
                    input = .list([.int(Int64(random.below(Int(nextValue)))), .int(nextValue)])
                    nextValue += 1
                }
                result.append(HistoryOperation(process: client, function: function, key: key, input: input,
                                               invocation: position, completion: nil, source: "op \(result.count)"))
                open[client] = Open(index: result.count - 1, applied: false)
            }
        }
        // A cas whose expectation did not hold failed: it did not happen.
        return result.filter { $0.source != "failed" }
    }
}
