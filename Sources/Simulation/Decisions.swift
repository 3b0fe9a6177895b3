/// The components that draw randomness, each from its own stream. A decision event records the
/// stream in its `node` field and the decision's tag in `peer`.
public enum DecisionStream {
    public static let scheduler: UInt32 = 0
    public static let network: UInt32 = 1
    public static let disk: UInt32 = 2
    public static let nemesis: UInt32 = 3
    public static let workload: UInt32 = 4
    public static let byzantine: UInt32 = 5
    public static let swarm: UInt32 = 6
    /// Node `i` draws from stream `firstNode + i`.
    public static let firstNode: UInt32 = 16

    public static func node(_ id: NodeID) -> UInt32 { firstNode + id }
}

/// What a decision chose. Tags make a recorded decision recognizable when code changes.
public enum DecisionTag {
    /// Which of several events due at the same instant ran first.
    public static let pick: UInt32 = 1
    public static let loss: UInt32 = 2
    public static let latency: UInt32 = 3
    public static let duplicate: UInt32 = 4
    public static let reorder: UInt32 = 5
    public static let diskReadError: UInt32 = 6
    public static let diskWriteError: UInt32 = 7
    public static let diskMisdirect: UInt32 = 8
    public static let diskCorruptAtCrash: UInt32 = 9
    public static let diskLatency: UInt32 = 10
    public static let nemesisInject: UInt32 = 11
    public static let nemesisFault: UInt32 = 12
    public static let nemesisTarget: UInt32 = 13
    public static let nemesisDuration: UInt32 = 14
    public static let nemesisParameter: UInt32 = 15
    public static let workloadOperation: UInt32 = 16
    public static let workloadTarget: UInt32 = 17
    public static let workloadValue: UInt32 = 18
    public static let workloadDelay: UInt32 = 19
    public static let byzantineStrategy: UInt32 = 20
    public static let byzantineParameter: UInt32 = 21
    public static let nodeRandom: UInt32 = 22
    public static let swarm: UInt32 = 23
    public static let diskReadCorruption: UInt32 = 24
    /// Whether a crash point fires, and how soon the node restarts.
    public static let crashPoint: UInt32 = 25
    public static let crashPointRestart: UInt32 = 26

    public static func name(_ tag: UInt32) -> String {
        switch tag {
        case pick: "pick"
        case loss: "loss"
        case latency: "latency"
        case duplicate: "duplicate"
        case reorder: "reorder"
        case diskReadError: "disk-read-error"
        case diskWriteError: "disk-write-error"
        case diskMisdirect: "disk-misdirect"
        case diskCorruptAtCrash: "disk-corrupt-at-crash"
        case diskLatency: "disk-latency"
        case nemesisInject: "nemesis-inject"
        case nemesisFault: "nemesis-fault"
        case nemesisTarget: "nemesis-target"
        case nemesisDuration: "nemesis-duration"
        case nemesisParameter: "nemesis-parameter"
        case workloadOperation: "workload-operation"
        case workloadTarget: "workload-target"
        case workloadValue: "workload-value"
        case workloadDelay: "workload-delay"
        case byzantineStrategy: "byzantine-strategy"
        case byzantineParameter: "byzantine-parameter"
        case nodeRandom: "node-random"
        case swarm: "swarm"
        case diskReadCorruption: "disk-read-corruption"
        case crashPoint: "crash-point"
        case crashPointRestart: "crash-point-restart"
        default: "tag-\(tag)"
        }
    }
}

/// Where recorded decisions come from when a run is replayed instead of drawn afresh.
public protocol DecisionFeed: AnyObject {
    /// The recorded value of the next decision, given what the simulator is about to decide.
    /// Returns nil when the recording has no matching decision (the replay has diverged); the
    /// simulator then draws from its own stream and carries on.
    func next(stream: UInt32, tag: UInt32, bound: UInt64) -> UInt64?
    /// The nemesis is at tick `ordinal` (1-based): the decisions that follow are that tick's.
    func beginTick(_ ordinal: UInt64)
    /// A client starts its operation `identity` (client << 32 | 1-based ordinal): the workload
    /// decisions that follow are that operation's.
    func beginOperation(_ identity: UInt64)
    /// A crash point is about to draw (whether it fires, or how long its node stays down):
    /// `identity` names it by node, kind and what the node is handling (nil when unknown).
    func beginCrashPoint(_ identity: UInt64?)
}

extension DecisionFeed {
    public func beginTick(_ ordinal: UInt64) {}
    public func beginOperation(_ identity: UInt64) {}
    public func beginCrashPoint(_ identity: UInt64?) {}
}

/// Hands out every random choice of a run, from per-component PRNG streams (live) or from a
/// recording (replay), and reports each to the simulator so it is recorded.
public final class Decider {
    private var streams: [PRNG]
    private var extraStreams: [UInt32: PRNG] = [:]
    private let seed: UInt64
    public var feed: DecisionFeed?

    init(seed: UInt64, nodeCount: Int) {
        self.seed = seed
        streams = (0..<(Int(DecisionStream.firstNode) + nodeCount)).map { PRNG(seed: seed, stream: UInt64($0)) }
    }

    @inline(__always)
    func draw(stream: UInt32, tag: UInt32, below bound: UInt64) -> UInt64 {
        if let feed, let value = feed.next(stream: stream, tag: tag, bound: bound), value < bound {
            return value
        }
        let index = Int(stream)
        if index < streams.count { return streams[index].below(bound) }
        if extraStreams[stream] == nil { extraStreams[stream] = PRNG(seed: seed, stream: UInt64(stream)) }
        return extraStreams[stream]!.below(bound)
    }
}
