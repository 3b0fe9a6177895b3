/// What the simulator needs to apply `Interventions` and to tell a shrinker which external events
/// a run had. Only present in runs with interventions or when asked for; ordinary runs pay nothing.
/// Sets here are only ever looked up, never iterated.
final class InterventionState {
    let skippedTicks: Set<UInt64>
    let skippedCrashPoints: Set<UInt64>
    let skippedCrashes: Set<UInt64>
    let skippedOperations: Set<UInt64>
    let droppedMessages: Set<Interventions.DroppedMessage>
    let droppedGroups: Set<Interventions.MessageGroup>
    /// Per node: whether it is isolated (empty when none is).
    let isolated: [Bool]
    /// Skipped operation → how long it took where it was left out.
    let pauses: [UInt64: UInt64]
    var crashPoints: UInt64 = 0
    /// Pinned crashes not yet fired, in time order (nil: crash points draw).
    var pinnedCrashes: [Interventions.PinnedCrash]?
    var occurrences: [UInt64: UInt64] = [:]
    /// What the running handler is about (nil: a timer, or nothing runs): 1 and the delivered
    /// message's type and sender, or 2 and the client operation's identity. Mixed into a crash
    /// point's identity only when one is reached.
    var cause: (kind: UInt64, value: UInt64)?
    /// Client request id → operation identity (client << 32 | ordinal).
    var requestIdentities: [UInt64: UInt64] = [:]
    var log = ExternalEventLog()
    /// Stretches cut out of the run; how many of them the nemesis ticks and each client are past.
    let timeCuts: [Interventions.TimeCut]
    var ticksPastCuts = 0
    var clientsPastCuts: [Int]

    init(_ interventions: Interventions, clients: Int) {
        timeCuts = interventions.timeCuts
        clientsPastCuts = [Int](repeating: 0, count: clients)
        skippedTicks = Set(interventions.skippedTicks)
        skippedCrashPoints = Set(interventions.skippedCrashPoints)
        skippedCrashes = Set(interventions.skippedCrashes)
        pinnedCrashes = interventions.pinnedCrashes?.sorted()
        skippedOperations = Set(interventions.skippedOperations)
        droppedMessages = Set(interventions.droppedMessages)
        droppedGroups = Set(interventions.droppedGroups)
        if let highest = interventions.isolatedNodes.max() {
            var isolated = [Bool](repeating: false, count: Int(highest) + 1)
            for node in interventions.isolatedNodes { isolated[Int(node)] = true }
            self.isolated = isolated
        } else {
            isolated = []
        }
        var pauses: [UInt64: UInt64] = [:]
        for pause in interventions.operationPauses where pauses[pause.identity] == nil { pauses[pause.identity] = pause.nanoseconds }
        self.pauses = pauses
    }

    /// Counts a send and says whether the interventions drop it. In the liveness phase (`healed`)
    /// nothing is dropped: every fault heals there, the shrinker's removals too, so checks that
    /// rely on a healed network stay meaningful.
    func dropsSend(_ message: Message, from source: NodeID, to target: NodeID, healed: Bool) -> Bool {
        guard !droppedGroups.isEmpty || !droppedMessages.isEmpty || !isolated.isEmpty else { return false }
        let fingerprint = message.fingerprint(source: source, target: target)
        let occurrence = occurrences[fingerprint, default: 0] + 1
        occurrences[fingerprint] = occurrence
        if healed { return false }
        if (Int(source) < isolated.count && isolated[Int(source)]) || (Int(target) < isolated.count && isolated[Int(target)]) { return true }
        if !droppedGroups.isEmpty && droppedGroups.contains(Interventions.MessageGroup(type: message.type, key: message.key)) { return true }
        return !droppedMessages.isEmpty && droppedMessages.contains(Interventions.DroppedMessage(fingerprint: fingerprint, occurrence: occurrence))
    }
}

/// The external events of a run (faults the nemesis applied, crash points that fired, client
/// operations issued), each with its identity for `Interventions` and the event that shows it.
public struct ExternalEventLog: Sendable {
    public var ticks: [(ordinal: UInt64, event: UInt64)] = []
    /// The crash points that fired, with their kind (`NodeContext.crashPoint`) and identity: the
    /// node, the kind and what the node was handling (the type and sender of the message, or the
    /// client operation); nil in a timer.
    public var crashPoints: [(ordinal: UInt64, event: UInt64, site: String, identity: UInt64?)] = []
    /// The identity of every crash-point decision drawn (whether it fires, then how long the node
    /// stays down), in the order drawn: a replay of a recording learns from it which crash point
    /// drew each recorded decision.
    public var crashDraws: [(tag: UInt32, identity: UInt64?)] = []
    /// When each crash point counted (fired or not) was reached: `skippedCrashPoints` numbers them.
    public var crashPointTimes: [UInt64] = []
    /// client << 32 | ordinal.
    public var operations: [(identity: UInt64, event: UInt64)] = []
    public init() {}
}
