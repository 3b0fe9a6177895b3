/// The dependencies between the transactions of a run, as Adya defines them and Elle infers them
/// from a history: `ww` (one transaction's write is the next version after another's), `wr` (one
/// reads the version another wrote), `rw` (one reads a version another overwrites next), and, for
/// strict serializability, `realtime` (one completed before the other was invoked). A cycle of
/// them is an anomaly, named by the dependencies it needs: G0 (only ww), G1c (ww and wr),
/// G-single (exactly one rw), G2 (more rw); with a realtime dependency, `-realtime` follows.
///
/// Transactions are numbered 0..<count; edges keep the order they were added in, and every search
/// goes in that order, so the cycle reported is the same in every process.
public struct TransactionGraph {
    public enum Dependency: Int, Sendable {
        case ww, wr, rw, realtime
        public var name: String {
            switch self {
            case .ww: "ww"
            case .wr: "wr"
            case .rw: "rw"
            case .realtime: "realtime"
            }
        }
    }

    public struct Edge: Equatable {
        public var to: Int
        public var dependency: Dependency
        /// The register or list it is about, by its place in the caller's list of keys (nil for
        /// realtime).
        public var key: UInt64?
    }

    public private(set) var edges: [[Edge]]
    /// Every (from, to, dependency) added, so that each is added once.
    private var present = Set<Link>()
    private struct Link: Hashable {
        var from: Int
        var to: Int
        var dependency: Dependency
    }

    public init(count: Int) {
        edges = Array(repeating: [], count: count)
    }

    public var count: Int { edges.count }

    public mutating func add(_ from: Int, _ to: Int, _ dependency: Dependency, key: UInt64? = nil) {
        // One edge per pair and dependency is enough to find every cycle.
        guard from != to, present.insert(Link(from: from, to: to, dependency: dependency)).inserted else { return }
        edges[from].append(Edge(to: to, dependency: dependency, key: key))
    }

    /// Adds the realtime dependencies: from each transaction that completed before another was
    /// invoked (`invoked[t]`, `completed[t]`: times; nil, it never completed). Only the frontier
    /// is linked (the completed transactions that no transaction completed later follows): the
    /// rest follow by transitivity. At the same moment, an invocation is not after a completion.
    public mutating func addRealtime(invoked: [UInt64], completed: [UInt64?]) {
        precondition(invoked.count == count && completed.count == count, "a time for every transaction")
        var moments: [(time: UInt64, completes: Bool, transaction: Int)] = []
        for transaction in 0..<count {
            moments.append((invoked[transaction], false, transaction))
            if let time = completed[transaction] { moments.append((time, true, transaction)) }
        }
        moments.sort { ($0.time, $0.completes ? 1 : 0, $0.transaction) < ($1.time, $1.completes ? 1 : 0, $1.transaction) }
        var frontier: [Int] = []
        var before = [[Int]](repeating: [], count: count)
        for moment in moments {
            if moment.completes {
                let covered = Set(before[moment.transaction])
                frontier.removeAll { covered.contains($0) }
                frontier.append(moment.transaction)
            } else {
                before[moment.transaction] = frontier
                for earlier in frontier { add(earlier, moment.transaction, .realtime) }
            }
        }
    }

    /// A cycle: each transaction with the edge that leaves it for the next (the last edge goes
    /// back to the first transaction).
    public typealias Cycle = [(transaction: Int, edge: Edge)]

    /// The components of the graph over `allowed` edges that hold a cycle (more than one
    /// transaction), each as its transactions in increasing order; the components in the order
    /// of their smallest transaction. Tarjan's algorithm, with an explicit stack.
    public func components(allowed: Set<Dependency>) -> [[Int]] {
        var index = Array(repeating: -1, count: count)
        var low = Array(repeating: 0, count: count)
        var onStack = Array(repeating: false, count: count)
        var stack: [Int] = []
        var next = 0
        var found: [[Int]] = []
        for root in 0..<count where index[root] < 0 {
            // (transaction, position in its edge list)
            var work: [(node: Int, edge: Int)] = [(root, 0)]
            index[root] = next; low[root] = next; next += 1
            stack.append(root); onStack[root] = true
            while let (node, position) = work.last {
                if position < edges[node].count {
                    work[work.count - 1].edge += 1
                    let edge = edges[node][position]
                    guard allowed.contains(edge.dependency) else { continue }
                    if index[edge.to] < 0 {
                        index[edge.to] = next; low[edge.to] = next; next += 1
                        stack.append(edge.to); onStack[edge.to] = true
                        work.append((edge.to, 0))
                    } else if onStack[edge.to] {
                        low[node] = min(low[node], index[edge.to])
                    }
                    continue
                }
                work.removeLast()
                if let parent = work.last { low[parent.node] = min(low[parent.node], low[node]) }
                guard low[node] == index[node] else { continue }
                var component: [Int] = []
                while let top = stack.popLast() {
                    onStack[top] = false
                    component.append(top)
                    if top == node { break }
                }
                if component.count > 1 { found.append(component.sorted()) }
            }
        }
        return found.sorted { $0[0] < $1[0] }
    }

    /// The shortest path from `start` to `goal` over `allowed` edges inside `members` (breadth
    /// first, edges in order): each transaction on it with the edge it leaves by.
    public func shortestPath(from start: Int, to goal: Int, allowed: Set<Dependency>, members: Set<Int>) -> Cycle? {
        var previous: [Int: (from: Int, edge: Edge)] = [:]
        var queue = [start]
        var head = 0
        var reached: Set<Int> = [start]
        while head < queue.count {
            let node = queue[head]
            head += 1
            for edge in edges[node] where allowed.contains(edge.dependency) && members.contains(edge.to) {
                if edge.to == goal {
                    var path: Cycle = [(node, edge)]
                    var at = node
                    while at != start, let step = previous[at] {
                        path.insert((step.from, step.edge), at: 0)
                        at = step.from
                    }
                    return path
                }
                guard reached.insert(edge.to).inserted else { continue }
                previous[edge.to] = (node, edge)
                queue.append(edge.to)
            }
        }
        return nil
    }

    /// The worst anomaly of the first of `components` (found over `allowed`; each holds a cycle),
    /// and a short cycle showing it: a cycle of ww alone (G0), then of ww and wr (G1c), then one
    /// needing a single rw (G-single), then any (G2). The searches are bounded (a cycle through
    /// one of the component's first 32 transactions; 256 anti-dependencies tried for G-single),
    /// so a huge component costs little; in one, a G1c or G2 may be named where the bounded
    /// search missed a G0 or G-single. The verdict is the same.
    public func anomaly(in components: [[Int]], allowed: Set<Dependency>) -> (name: String, cycle: Cycle)? {
        let realtimeAllowed = allowed.contains(.realtime)
        // A cycle through real time says so in its name.
        func named(_ name: String, _ cycle: Cycle) -> (name: String, cycle: Cycle) {
            (cycle.contains { $0.edge.dependency == .realtime } ? name + "-realtime" : name, cycle)
        }
        for component in components {
            let members = Set(component)
            func shortestCycle(_ kinds: Set<Dependency>) -> Cycle? {
                var best: Cycle?
                // The shortest path from a transaction back to itself is the shortest cycle
                // through it.
                for start in component.prefix(32) {
                    guard let cycle = shortestPath(from: start, to: start, allowed: kinds, members: members) else { continue }
                    if best == nil || cycle.count < best!.count { best = cycle }
                }
                return best
            }
            let writes: Set<Dependency> = realtimeAllowed ? [.ww, .realtime] : [.ww]
            let reads = writes.union([.wr])
            if let cycle = shortestCycle(writes) { return named("G0", cycle) }
            if let cycle = shortestCycle(reads) { return named("G1c", cycle) }
            // One anti-dependency, closed by dependencies.
            var single: Cycle?
            var tried = 0
            outer: for from in component {
                for edge in edges[from] where edge.dependency == .rw && members.contains(edge.to) {
                    tried += 1
                    if tried > 256 { break outer }
                    guard let rest = shortestPath(from: edge.to, to: from, allowed: reads, members: members) else { continue }
                    let cycle: Cycle = [(from, edge)] + rest
                    if single == nil || cycle.count < single!.count { single = cycle }
                }
            }
            if let single { return named("G-single", single) }
            if let cycle = shortestCycle(allowed) { return named("G2", cycle) }
        }
        return nil
    }
}
