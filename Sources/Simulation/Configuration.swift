/// A latency distribution, in virtual nanoseconds.
public enum LatencyModel: Codable, Hashable, Sendable {
    case constant(UInt64)
    case uniform(min: UInt64, max: UInt64)
    /// Exponential with the given mean above a floor (most messages fast, a long tail).
    case exponential(mean: UInt64, min: UInt64)

    /// The largest latency this model draws in practice (the exponential is cut at 20 means).
    public var ceiling: UInt64 {
        switch self {
        case .constant(let value): value
        case .uniform(_, let max): max
        case .exponential(let mean, let min): min + 20 * mean
        }
    }
}

/// The network's standing behaviour (faults change it for a while; the liveness phase restores it).
public struct NetworkConfiguration: Codable, Hashable, Sendable {
    public var latency: LatencyModel = .uniform(min: 1_000_000, max: 5_000_000)
    public var loss: Ratio = .never
    public var duplication: Ratio = .never
    /// The chance that a message is held back by an extra delay, so later messages overtake it.
    public var reordering: Ratio = .never
    public var reorderDelayMaxNanoseconds: UInt64 = 20_000_000
    /// Messages in flight on one directed link before further ones are dropped (0: no limit).
    public var linkCapacity: Int = 0
    public init() {}
}

/// The disk's standing behaviour.
public struct DiskConfiguration: Codable, Hashable, Sendable {
    public var capacityBytes: Int = 64 << 20
    /// Processing time a read, write or fsync adds to the node's work.
    public var readLatencyNanoseconds: UInt64 = 20_000
    public var writeLatencyNanoseconds: UInt64 = 20_000
    public var fsyncLatencyNanoseconds: UInt64 = 500_000
    public var readErrors: Ratio = .never
    public var writeErrors: Ratio = .never
    public var misdirectedWrites: Ratio = .never
    /// Silent corruption of what a read returns.
    public var readCorruption: Ratio = .never
    /// At a crash, each un-synced write is torn (applied with damage) with this chance, else lost.
    public var tornWritesAtCrash: Ratio = .never
    public init() {}
}

/// The fault suites of the command line.
public enum Suite: String, Codable, CaseIterable, Sendable {
    case none
    case nodes
    case network
    case resources
    case distributed
    case byzantine
}

/// Every fault the nemesis can inject.
public enum FaultKind: String, Codable, CaseIterable, Sendable {
    case crash
    case crashTorn = "crash-torn"
    case pause
    case partitionHalves = "partition-halves"
    case partitionMajority = "partition-majority"
    case partitionIsolate = "partition-isolate"
    case partitionRing = "partition-ring"
    case partitionBridge = "partition-bridge"
    case partitionOneWay = "partition-one-way"
    case loss
    case duplication
    case reordering
    case delay
    case clog
    case memoryPressure = "memory-pressure"
    case cpuStarvation = "cpu-starvation"
    case storageFull = "storage-full"
    case diskReadErrors = "disk-read-errors"
    case diskWriteErrors = "disk-write-errors"
    case diskCorruption = "disk-corruption"
    case misdirectedWrites = "misdirected-writes"
    case clockSkew = "clock-skew"
    case clockJump = "clock-jump"
    case clockDrift = "clock-drift"
    case byzantine

    /// The faults each suite injects.
    public static func faults(of suite: Suite) -> [FaultKind] {
        switch suite {
        case .none: []
        case .nodes: [.crash, .crashTorn, .pause]
        case .network: [.partitionHalves, .partitionMajority, .partitionIsolate, .partitionRing, .partitionBridge,
                         .partitionOneWay, .loss, .duplication, .reordering, .delay, .clog]
        case .resources: [.memoryPressure, .cpuStarvation, .storageFull, .diskReadErrors, .diskWriteErrors,
                          .diskCorruption, .misdirectedWrites]
        case .distributed: faults(of: .nodes) + faults(of: .network) + faults(of: .resources) + [.clockSkew, .clockJump, .clockDrift]
        case .byzantine: [.byzantine]
        }
    }
}

/// What a Byzantine node does to its outgoing messages.
public enum ByzantineStrategy: String, Codable, CaseIterable, Sendable {
    /// Claims to be another node.
    case forge
    /// Sends different payloads to different peers.
    case equivocate
    /// Damages the message.
    case corrupt
    /// Sends an old message again instead.
    case replay
    /// Drops the message for this peer.
    case withhold
    /// Delays the message by a long time.
    case stall
}

/// The nemesis's plan: how often it may strike, with what, and how far.
public struct NemesisConfiguration: Codable, Hashable, Sendable {
    public var suite: Suite = .none
    /// The chance of a fault at each tick.
    public var failureRate: Ratio = Ratio(1, 5)
    public var tickNanoseconds: UInt64 = 200_000_000
    /// How long a fault lasts before it heals (drawn uniformly between the two).
    public var faultMinNanoseconds: UInt64 = 100_000_000
    public var faultMaxNanoseconds: UInt64 = 2_000_000_000
    /// Most nodes one fault may touch (blast radius); 0 means a minority of the cluster.
    public var blastRadius: Int = 0
    /// Draw the whole fault mix (which faults, their weights, base network rates) from the seed.
    public var swarm = false
    /// Faults to use instead of the suite's (after swarm selection, if any).
    public var only: [FaultKind]? = nil
    /// Designated Byzantine nodes (at most f; the last ones of the cluster).
    public var byzantineNodes: Int = 0
    /// What the Byzantine nodes may do.
    public var byzantineStrategies: [ByzantineStrategy] = ByzantineStrategy.allCases
    /// Of every this many messages a Byzantine node sends, about one is honest.
    public var byzantineHonestyWeight: UInt64 = 2
    public init() {}
}

/// Everything that defines a run besides the code under test.
public struct SimulationConfiguration: Codable, Hashable, Sendable {
    public var system: String = "echo"
    public var bug: String? = nil
    public var nodes: Int = 5
    public var seed: UInt64 = 1
    /// Virtual length of the safety phase (with faults).
    public var durationNanoseconds: UInt64 = 10_000_000_000
    /// Bound within which the system must recover once every fault is healed.
    public var livenessNanoseconds: UInt64 = 5_000_000_000
    public var clients: Int = 3
    /// Think time between a client's operations.
    public var clientIntervalNanoseconds: UInt64 = 10_000_000
    /// A client gives up on an operation after this long (outcome: info).
    public var clientTimeoutNanoseconds: UInt64 = 1_000_000_000
    public var network = NetworkConfiguration()
    public var disk = DiskConfiguration()
    public var nemesis = NemesisConfiguration()
    /// Circuit breaker: stop after this many recorded events.
    public var maxEvents: UInt64 = 50_000_000
    /// Record a state digest of every node every this many nanoseconds (0: only at the end).
    public var digestIntervalNanoseconds: UInt64 = 1_000_000_000
    /// Free-form options for the system (e.g. `gossip`).
    public var options: [String: Int] = [:]
    /// What a shrunk run leaves out of the original (nil for ordinary runs).
    public var interventions: Interventions? = nil
    /// External nodes (`--node-cmd`): the command every node runs and the clients' workload.
    public var external: ExternalNodes? = nil
    /// Whether the run ends at its first violation (nil, as in runs recorded before this field
    /// existed: yes). `run` sets false unless `--stop-on-violation`: the whole scenario runs and
    /// the first violation is the verdict.
    public var stopOnViolation: Bool? = nil

    public init() {}

    public var endNanoseconds: UInt64 { durationNanoseconds + livenessNanoseconds }
}

/// Nodes that are external programs speaking the Maelstrom protocol.
public struct ExternalNodes: Codable, Hashable, Sendable {
    /// The command line each node runs (words, or a shell command).
    public var command: String
    /// The clients' workload: echo, unique-ids, broadcast or lin-kv.
    public var workload: String
    public init(command: String, workload: String) {
        self.command = command
        self.workload = workload
    }
}

/// Changes a shrinker makes to a run, by identities that survive small changes of schedule:
/// nemesis ticks and crash points by their ordinal, client operations by client and ordinal,
/// messages by fingerprint and occurrence or by (type, key) group. Every decision is still drawn,
/// so the rest of the recorded schedule stays aligned; only the effect is left out.
public struct Interventions: Codable, Hashable, Sendable {
    /// Nemesis ticks (1-based) whose fault is not applied.
    public var skippedTicks: [UInt64] = []
    /// Crash points (1-based, in the order the simulator reached them) that do not fire.
    public var skippedCrashPoints: [UInt64] = []
    /// Crash points that do not fire, by what they are about (`ExternalEventLog.crashPoints`'s
    /// identity: node, kind and the message or operation being handled). Unlike an ordinal, it
    /// still names the same crash point when others before it come or go.
    public var skippedCrashes: [UInt64] = []
    /// Client operations not issued: client << 32 | 1-based ordinal of the client's operation.
    public var skippedOperations: [UInt64] = []
    /// Messages lost on purpose: a fingerprint and the 1-based occurrence of a send with it.
    public var droppedMessages: [DroppedMessage] = []
    /// Every message of these (type, key) groups is lost: a term, a view, a round.
    public var droppedGroups: [MessageGroup] = []
    /// The run starts this many nemesis ticks into the recording: tick 1 acts as recorded tick
    /// `tickShift + 1` (a run moved earlier in time).
    public var tickShift: UInt64 = 0
    /// Per client, how many of its recorded operations come before the run starts.
    public var operationShifts: [UInt64] = []
    /// For skipped operations: how long the left-out operation took, so its client waits as long
    /// before thinking about its next one and its later operations keep their time.
    public var operationPauses: [OperationPause] = []
    /// When set, crash points no longer draw whether they fire: exactly these fire, each at the
    /// first crash point its node reaches at or after its time (so a crash stays where it was
    /// when other operations or messages are left out). Nil: crash points fire as drawn.
    public var pinnedCrashes: [PinnedCrash]?
    /// Nodes every message to and from is lost, for the whole run before the liveness phase:
    /// the nodes a counterexample does not need, cut off so their traffic is gone.
    public var isolatedNodes: [UInt32] = []
    /// Stretches of the recording cut out of the middle of the run, in order: the run goes on
    /// from the state it has reached, with the recording's ticks, operations and choices from
    /// after the stretch (a quiet stretch of heartbeats gone, and what it held).
    public var timeCuts: [TimeCut] = []

    public init() {}

    public struct TimeCut: Codable, Equatable, Hashable, Sendable {
        /// Virtual nanoseconds from the run's start (a whole number of nemesis ticks).
        public var at: UInt64
        /// How many nemesis ticks of the recording are left out there.
        public var ticks: UInt64
        /// Per client, how many of its recorded operations come before the run goes on.
        public var operationShifts: [UInt64]
        /// Per client, how long after the cut its next operation starts (`UInt64.max`: it issues
        /// no more), so its operations keep their time relative to the rest of the run.
        public var resumeAfter: [UInt64]
        public init(at: UInt64, ticks: UInt64, operationShifts: [UInt64], resumeAfter: [UInt64]) {
            self.at = at
            self.ticks = ticks
            self.operationShifts = operationShifts
            self.resumeAfter = resumeAfter
        }
    }

    /// The recording's time (from its first tick, before any shift or cut) of `time` in a run
    /// with these interventions.
    public func recordingTime(_ time: UInt64, tickNanoseconds: UInt64) -> UInt64 {
        var skipped = tickShift
        for cut in timeCuts where cut.at <= time { skipped += cut.ticks }
        return time + skipped * tickNanoseconds
    }

    public struct PinnedCrash: Codable, Equatable, Hashable, Sendable, Comparable {
        public var node: UInt32
        /// Virtual nanoseconds from the run's start.
        public var notBefore: UInt64
        /// How long the node stays down.
        public var downFor: UInt64
        /// The kind of crash point it fires at (nil: any): a crash right after a vote and one
        /// right after an append are different faults, and a pinned crash keeps its meaning when
        /// the node's crash points move.
        public var site: String?
        public init(node: UInt32, notBefore: UInt64, downFor: UInt64, site: String? = nil) {
            self.node = node
            self.notBefore = notBefore
            self.downFor = downFor
            self.site = site
        }
        public static func < (a: Self, b: Self) -> Bool {
            (a.notBefore, a.node, a.downFor, a.site ?? "") < (b.notBefore, b.node, b.downFor, b.site ?? "")
        }
    }

    public struct OperationPause: Codable, Equatable, Hashable, Sendable, Comparable {
        /// client << 32 | 1-based ordinal, as in `skippedOperations`.
        public var identity: UInt64
        /// Nanoseconds; `UInt64.max` when the operation never completed (the client stops).
        public var nanoseconds: UInt64
        public init(identity: UInt64, nanoseconds: UInt64) {
            self.identity = identity
            self.nanoseconds = nanoseconds
        }
        public static func < (a: Self, b: Self) -> Bool { (a.identity, a.nanoseconds) < (b.identity, b.nanoseconds) }
    }

    enum CodingKeys: String, CodingKey {
        case skippedTicks, skippedCrashPoints, skippedOperations, droppedMessages, droppedGroups, tickShift, operationShifts
        case operationPauses, pinnedCrashes, isolatedNodes, timeCuts, skippedCrashes
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        skippedTicks = try container.decodeIfPresent([UInt64].self, forKey: .skippedTicks) ?? []
        skippedCrashPoints = try container.decodeIfPresent([UInt64].self, forKey: .skippedCrashPoints) ?? []
        skippedOperations = try container.decodeIfPresent([UInt64].self, forKey: .skippedOperations) ?? []
        droppedMessages = try container.decodeIfPresent([DroppedMessage].self, forKey: .droppedMessages) ?? []
        droppedGroups = try container.decodeIfPresent([MessageGroup].self, forKey: .droppedGroups) ?? []
        tickShift = try container.decodeIfPresent(UInt64.self, forKey: .tickShift) ?? 0
        operationShifts = try container.decodeIfPresent([UInt64].self, forKey: .operationShifts) ?? []
        operationPauses = try container.decodeIfPresent([OperationPause].self, forKey: .operationPauses) ?? []
        pinnedCrashes = try container.decodeIfPresent([PinnedCrash].self, forKey: .pinnedCrashes)
        isolatedNodes = try container.decodeIfPresent([UInt32].self, forKey: .isolatedNodes) ?? []
        timeCuts = try container.decodeIfPresent([TimeCut].self, forKey: .timeCuts) ?? []
        skippedCrashes = try container.decodeIfPresent([UInt64].self, forKey: .skippedCrashes) ?? []
    }

    /// Fields added after the first format are written only when set, so a run recorded before
    /// they existed re-encodes (in its run-start event) byte for byte.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(skippedTicks, forKey: .skippedTicks)
        try container.encode(skippedCrashPoints, forKey: .skippedCrashPoints)
        try container.encode(skippedOperations, forKey: .skippedOperations)
        try container.encode(droppedMessages, forKey: .droppedMessages)
        try container.encode(droppedGroups, forKey: .droppedGroups)
        try container.encode(tickShift, forKey: .tickShift)
        try container.encode(operationShifts, forKey: .operationShifts)
        if !operationPauses.isEmpty { try container.encode(operationPauses, forKey: .operationPauses) }
        if let pinnedCrashes { try container.encode(pinnedCrashes, forKey: .pinnedCrashes) }
        if !isolatedNodes.isEmpty { try container.encode(isolatedNodes, forKey: .isolatedNodes) }
        if !timeCuts.isEmpty { try container.encode(timeCuts, forKey: .timeCuts) }
        if !skippedCrashes.isEmpty { try container.encode(skippedCrashes, forKey: .skippedCrashes) }
    }

    public struct DroppedMessage: Codable, Equatable, Hashable, Sendable, Comparable {
        public var fingerprint: UInt64
        public var occurrence: UInt64
        public init(fingerprint: UInt64, occurrence: UInt64) {
            self.fingerprint = fingerprint
            self.occurrence = occurrence
        }
        public static func < (a: Self, b: Self) -> Bool { (a.fingerprint, a.occurrence) < (b.fingerprint, b.occurrence) }
    }

    public struct MessageGroup: Codable, Equatable, Hashable, Sendable, Comparable {
        public var type: UInt16
        public var key: UInt64
        public init(type: UInt16, key: UInt64) {
            self.type = type
            self.key = key
        }
        public static func < (a: Self, b: Self) -> Bool { (a.type, a.key) < (b.type, b.key) }
    }

    public var isEmpty: Bool {
        skippedTicks.isEmpty && skippedCrashPoints.isEmpty && skippedOperations.isEmpty && droppedMessages.isEmpty && droppedGroups.isEmpty
            && tickShift == 0 && operationShifts.allSatisfy { $0 == 0 } && pinnedCrashes == nil && isolatedNodes.isEmpty
            && timeCuts.isEmpty && skippedCrashes.isEmpty
    }

    /// Sorted, without repeats, so equal interventions encode identically.
    public func normalized() -> Interventions {
        var copy = self
        copy.skippedTicks = Array(Set(skippedTicks)).sorted()
        copy.skippedCrashPoints = Array(Set(skippedCrashPoints)).sorted()
        copy.skippedCrashes = Array(Set(skippedCrashes)).sorted()
        copy.skippedOperations = Array(Set(skippedOperations)).sorted()
        copy.droppedMessages = Array(Set(droppedMessages)).sorted()
        copy.droppedGroups = Array(Set(droppedGroups)).sorted()
        // One pause per skipped operation (the first recorded wins).
        var paused = Set<UInt64>()
        copy.operationPauses = operationPauses.filter { paused.insert($0.identity).inserted }.sorted()
        copy.pinnedCrashes = pinnedCrashes?.sorted()
        copy.isolatedNodes = Array(Set(isolatedNodes)).sorted()
        return copy
    }
}
