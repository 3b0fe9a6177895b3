/// An invariant that did not hold: which checker, what kind, the events that witness it, and a
/// one-line explanation a person can read.
public struct Violation: Codable, Equatable, Sendable, CustomStringConvertible {
    public var checker: String
    public var kind: String
    public var explanation: String
    /// Event numbers (in the run's trace) that witness the violation.
    public var events: [UInt64]
    /// Virtual time at which it was found.
    public var time: UInt64

    public init(checker: String, kind: String, explanation: String, events: [UInt64] = [], time: UInt64 = 0) {
        self.checker = checker
        self.kind = kind
        self.explanation = explanation
        self.events = events
        self.time = time
    }

    public var description: String { "\(checker)/\(kind): \(explanation)" }
}

/// One client operation as the clients saw it.
public struct HistoryEntry: Equatable, Sendable {
    public var request: ClientRequest
    public var target: NodeID
    public var invokedAt: UInt64
    public var invokeEvent: UInt64
    public var completedAt: UInt64?
    public var completeEvent: UInt64?
    public var reply: Reply?
}

/// Judges a run. Systems supply checkers; the simulator calls them as the run goes and at its end.
public protocol Checker: AnyObject {
    var name: String { get }
    /// Called when a client operation completes (ok, fail or info). Return a violation to stop the run.
    func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation?
    /// Called after each delivered message, fired timer and handled request, when `checksEveryStep`.
    func afterStep(_ simulation: Simulator) -> Violation?
    var checksEveryStep: Bool { get }
    /// Called once at the end of the run.
    func finish(_ simulation: Simulator) -> Violation?
}

extension Checker {
    public func operationCompleted(_ entry: HistoryEntry, in simulation: Simulator) -> Violation? { nil }
    public func afterStep(_ simulation: Simulator) -> Violation? { nil }
    public var checksEveryStep: Bool { false }
    public func finish(_ simulation: Simulator) -> Violation? { nil }
}
