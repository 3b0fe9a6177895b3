/// What happened. The raw value is the kind byte of the binary format (version 1): never reuse
/// or renumber a value; add new kinds at the end (the format has room for 31).
public enum EventKind: UInt8, CaseIterable, Sendable, Codable {
    /// The run began. `payload`: the run's configuration (JSON).
    case runStart = 1
    /// The run ended. `id`: the number of events before it; `payload`: the verdict (UTF-8).
    case runEnd
    /// `node` sent message `id` to `peer`. `payload`: the message's stable encoding.
    case send
    /// Message `id` from `peer` was delivered to `node`.
    case deliver
    /// Message `id` from `node` to `peer` was dropped. `payload`: the reason (UTF-8).
    case drop
    /// Message `id` from `node` to `peer` was duplicated by the network.
    case duplicate
    /// `node` set timer `id`. `peer`: the timer's tag; `payload`: varint delay in nanoseconds.
    case timerSet
    /// Timer `id` of `node` fired. `peer`: the timer's tag.
    case timerFire
    /// `node` crashed. `peer`: 1 when un-synced writes were lost with it.
    case crash
    /// `node` restarted from its durable state.
    case restart
    /// `node` was paused (stalled).
    case pause
    /// `node` resumed.
    case resume
    /// A partition started. `id`: the partition's shape code; `payload`: the blocked links.
    case partition
    /// A partition healed (all links, or those in `payload`).
    case heal
    /// The clock of `node` was skewed, jumped or set to drift. `payload`: the fault's parameters.
    case clockFault
    /// A disk fault at `node`. `peer`: the fault's code; `payload`: its parameters.
    case diskFault
    /// Resource pressure at `node` (memory, CPU, storage) began or ended. `peer`: the resource.
    case resourcePressure
    /// Byzantine node `node` acted on a message to `peer`. `id`: the message; `payload`: strategy.
    case byzantine
    /// Client `node` invoked operation `id`. `payload`: the operation.
    case clientInvoke
    /// Client `node`'s operation `id` completed. `peer`: outcome code; `payload`: the result.
    case clientComplete
    /// A scheduling decision. `node`: the deciding component's stream; `peer`: the decision's
    /// type (which event ran among equals, a random draw); `id`: the value chosen or drawn.
    case decision
    /// A digest of `node`'s state. `id`: the digest.
    case stateDigest
    /// An invariant was violated. `payload`: the violation (JSON).
    case violation
    /// A log line from `node`. `payload`: the text (UTF-8).
    case log
    /// The network's behaviour changed for a while (loss, duplication, reordering, delay, a clogged
    /// node's links). `id`: the fault; `payload`: what and how much.
    case networkFault

    /// The name used on the command line and in JSON (`send`, `timer-set`, …).
    public var name: String {
        switch self {
        case .runStart: "run-start"
        case .runEnd: "run-end"
        case .send: "send"
        case .deliver: "deliver"
        case .drop: "drop"
        case .duplicate: "duplicate"
        case .timerSet: "timer-set"
        case .timerFire: "timer-fire"
        case .crash: "crash"
        case .restart: "restart"
        case .pause: "pause"
        case .resume: "resume"
        case .partition: "partition"
        case .heal: "heal"
        case .clockFault: "clock-fault"
        case .diskFault: "disk-fault"
        case .resourcePressure: "resource-pressure"
        case .byzantine: "byzantine"
        case .clientInvoke: "client-invoke"
        case .clientComplete: "client-complete"
        case .decision: "decision"
        case .stateDigest: "state-digest"
        case .violation: "violation"
        case .log: "log"
        case .networkFault: "network-fault"
        }
    }

    public init?(name: String) {
        guard let kind = EventKind.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }

    /// Faults injected from outside the system (the nemesis's events).
    public var isFault: Bool {
        switch self {
        case .crash, .restart, .pause, .resume, .partition, .heal, .clockFault, .diskFault, .resourcePressure, .byzantine,
             .networkFault: true
        default: false
        }
    }
}

/// One recorded event. The meaning of `node`, `peer`, `id` and `payload` depends on `kind`
/// (see `EventKind`). `time` is virtual time in nanoseconds and never decreases within a run.
public struct Event: Equatable, Hashable, Sendable {
    public var kind: EventKind
    public var time: UInt64
    public var node: UInt32
    public var peer: UInt32
    public var id: UInt64
    public var payload: [UInt8]

    public init(kind: EventKind, time: UInt64, node: UInt32 = 0, peer: UInt32 = 0, id: UInt64 = 0, payload: [UInt8] = []) {
        self.kind = kind
        self.time = time
        self.node = node
        self.peer = peer
        self.id = id
        self.payload = payload
    }
}

/// An event as it is read from a stream: its number within the run and the event itself.
public struct NumberedEvent: Equatable, Sendable {
    public var number: UInt64
    public var event: Event

    public init(number: UInt64, event: Event) {
        self.number = number
        self.event = event
    }
}
