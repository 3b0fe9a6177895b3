/// A system under test: how to make its nodes, what its clients do, and how to judge it.
public protocol SystemDefinition {
    /// The name on the command line (`--system`).
    static var name: String { get }
    /// Planted bugs this system can switch on (`--bug`).
    static var bugs: [String] { get }
    /// Suites this system is meant to survive.
    static var suites: [Suite] { get }
    /// The suite a run of this system uses when none is named.
    static var defaultSuite: Suite { get }
    /// Most Byzantine nodes the system tolerates with `nodes` nodes (0 for crash-fault systems).
    static func byzantineTolerance(nodes: Int) -> Int
    /// The clients' think time this system is run with unless told otherwise (nil: the default).
    static var clientIntervalNanoseconds: UInt64? { get }
    /// A reader's name for a message type, for reports and diagrams (nil: "type N").
    static func messageName(_ type: UInt16) -> String?
    /// The keys of `--option KEY=VALUE` this system reads.
    static var optionNames: [String] { get }

    init(configuration: SimulationConfiguration)
    /// A fresh node (at start, and at every restart after a crash).
    func makeNode(id: NodeID) -> Node
    /// The next operation of `client` (use `random` for every choice).
    func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation
    /// The checkers judging a run.
    func makeCheckers() -> [Checker]
    /// Message-aware Byzantine mutations; nil uses the generic byte-level ones.
    var byzantineMutator: ByzantineMutator? { get }
}

extension SystemDefinition {
    public static var suites: [Suite] { [.none, .nodes, .network, .resources, .distributed] }
    public static var defaultSuite: Suite { suites.contains(.distributed) ? .distributed : suites.last ?? .none }
    public static func byzantineTolerance(nodes: Int) -> Int { 0 }
    public static var clientIntervalNanoseconds: UInt64? { nil }
    public static func messageName(_ type: UInt16) -> String? { nil }
    public static var optionNames: [String] { [] }
    public var byzantineMutator: ByzantineMutator? { nil }
}

/// Message-aware lies for Byzantine nodes.
public protocol ByzantineMutator {
    /// A different but plausible message for `target` (equivocation).
    func equivocate(_ message: Message, target: NodeID, random: (UInt64) -> UInt64) -> Message
    /// A damaged message.
    func corrupt(_ message: Message, random: (UInt64) -> UInt64) -> Message
}

/// Generic byte-level mutations that work on any system's messages.
public struct ByteMutator: ByzantineMutator {
    public init() {}

    public func equivocate(_ message: Message, target: NodeID, random: (UInt64) -> UInt64) -> Message {
        var copy = message
        if copy.body.isEmpty {
            copy.key &+= UInt64(target) &+ 1
        } else {
            let index = Int(random(UInt64(copy.body.count)))
            copy.body[index] ^= UInt8(truncatingIfNeeded: target &+ 1)
        }
        return copy
    }

    public func corrupt(_ message: Message, random: (UInt64) -> UInt64) -> Message {
        var copy = message
        if copy.body.isEmpty {
            copy.key ^= 1 << random(64)
        } else {
            let index = Int(random(UInt64(copy.body.count)))
            copy.body[index] ^= UInt8(1 + random(255))
        }
        return copy
    }
}
