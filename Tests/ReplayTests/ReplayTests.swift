import Foundation
import Replay
import Simulation
import Systems
import TraceStore
import XCTest

/// An echo node that, from a given virtual time on, gossips to the neighbour of the peer it drew:
/// a nondeterminism (a code change) introduced after the recording.
final class DriftingEchoSystem: SystemDefinition {
    static let name = "echo"
    static let bugs: [String] = []
    let configuration: SimulationConfiguration
    let driftFrom: UInt64
    let driftingNode: NodeID

    init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        driftFrom = UInt64.max
        driftingNode = 0
    }

    init(configuration: SimulationConfiguration, driftFrom: UInt64, node: NodeID) {
        self.configuration = configuration
        self.driftFrom = driftFrom
        self.driftingNode = node
    }

    func makeNode(id: NodeID) -> Node {
        let inner = EchoSystem(configuration: configuration).makeNode(id: id)
        return id == driftingNode ? DriftingNode(inner: inner, from: driftFrom) : inner
    }

    func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        EchoSystem(configuration: configuration).nextOperation(client: client, random: random)
    }

    func makeCheckers() -> [Checker] { EchoSystem(configuration: configuration).makeCheckers() }
}

final class DriftingNode: Node {
    let inner: Node
    let from: UInt64
    init(inner: Node, from: UInt64) {
        self.inner = inner
        self.from = from
    }
    func start(_ context: NodeContext) { inner.start(context) }
    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        if context.now >= from && message.type == 1 {
            // Echo back a different key than the real node would.
            context.send(Message(type: 2, key: message.key &+ 7), to: source)
            return
        }
        inner.receive(message, from: source, context)
    }
    func timer(_ tag: UInt32, _ context: NodeContext) { inner.timer(tag, context) }
    func request(_ request: ClientRequest, _ context: NodeContext) { inner.request(request, context) }
    func stateDigest() -> UInt64 { inner.stateDigest() }
}

/// A test case with a fresh trace store in a temporary directory.
class StoreTestCase: XCTestCase {
    var directory: URL!
    var store: TraceStore!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-\(Self.self)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try TraceStore(path: directory.appendingPathComponent("runs.trace").path)
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(at: directory)
    }

    /// A run of `system` under `suite`; `short`: 3 s with faults at every other tick, 2 s to recover.
    func configuration(_ system: SystemDefinition.Type, seed: UInt64, suite: Suite, bug: String? = nil, nodes: Int = 5,
                       short: Bool = true) -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        configuration.system = system.name
        configuration.seed = seed
        configuration.bug = bug
        configuration.nodes = nodes
        configuration.nemesis.suite = suite
        if short {
            configuration.durationNanoseconds = 3_000_000_000
            configuration.livenessNanoseconds = 2_000_000_000
            configuration.nemesis.failureRate = Ratio(1, 2)
        }
        if let interval = system.clientIntervalNanoseconds { configuration.clientIntervalNanoseconds = interval }
        if suite == .byzantine { configuration.nemesis.byzantineNodes = system.byzantineTolerance(nodes: nodes) }
        return configuration
    }

    /// Runs `configuration` recorded into the store; returns the run's id and result.
    func record(_ configuration: SimulationConfiguration, _ system: SystemDefinition.Type) throws -> (UInt64, SimulationResult) {
        let recorder = try store.beginRun(seed: configuration.seed, configuration: "{}", toolVersion: "test")
        let result = Simulator(configuration: configuration, system: system.init(configuration: configuration), recorder: recorder).run()
        return (recorder.runID, result)
    }
}

final class ReplayTests: StoreTestCase {

    private func record(_ system: SystemDefinition.Type, seed: UInt64, suite: Suite, bug: String? = nil, nodes: Int = 5,
                        short: Bool = true) throws -> (UInt64, SimulationResult) {
        try record(configuration(system, seed: seed, suite: suite, bug: bug, nodes: nodes, short: short), system)
    }

    func testRecordedRunsAcrossSystemsAndSuitesReplayIdentically() throws {
        let cases: [(SystemDefinition.Type, Suite, String?)] = [
            (EchoSystem.self, .distributed, nil), (RaftSystem.self, .nodes, nil), (RaftSystem.self, .network, "raft.stale-read"),
            (CRDTSystem.self, .distributed, nil), (BlockStoreSystem.self, .resources, nil), (BFTSystem.self, .byzantine, nil),
            (EchoSystem.self, .none, "echo.off-by-one"),
        ]
        for (system, suite, bug) in cases {
            let (run, result) = try record(system, seed: 4, suite: suite, bug: bug, nodes: system == BFTSystem.self ? 4 : 5)
            let replayer = try Replayer(store: store, run: run)
            let report = try replayer.replay(system: system.init(configuration: replayer.configuration))
            XCTAssertTrue(report.identical, "\(system.name)/\(suite): \(String(describing: report.firstDivergence))")
            XCTAssertEqual(report.events, result.events)
            if result.violation != nil {
                XCTAssertTrue(report.violationReproduced, "\(system.name)/\(suite) reproduces its violation")
            }
        }
    }

    func testANondeterminismAfterRecordingIsNamedAtTheExactFirstDivergentEvent() throws {
        let (run, _) = try record(EchoSystem.self, seed: 8, suite: .none)
        let replayer = try Replayer(store: store, run: run)
        let driftFrom: UInt64 = 1_000_000_000
        // The first gossip node 2 answers after the drift time is where the runs must part.
        let events = try store.reader(run: run).allEvents()
        var expected: Int?
        var lastDeliveredGossip = false
        for (index, event) in events.enumerated() {
            if event.kind == .deliver && event.node == 2 && event.time >= driftFrom {
                lastDeliveredGossip = true
                continue
            }
            if lastDeliveredGossip && event.kind == .send && event.node == 2,
               Message.decode(event.payload)?.type == 2 {
                expected = index
                break
            }
            if event.kind != .decision { lastDeliveredGossip = false }
        }
        let system = DriftingEchoSystem(configuration: replayer.configuration, driftFrom: driftFrom, node: 2)
        let report = try replayer.replay(system: system)
        XCTAssertFalse(report.identical)
        let divergence = try XCTUnwrap(report.firstDivergence)
        XCTAssertEqual(divergence.event, UInt64(try XCTUnwrap(expected)))
        XCTAssertNotEqual(divergence.recorded, divergence.replayed)
        XCTAssertFalse(divergence.recordedContext.isEmpty)
    }

    func testTolerantReplayTellsWhetherAPlantedBugIsFixed() throws {
        let (run, result) = try record(RaftSystem.self, seed: 4, suite: .network, bug: "raft.stale-read", short: false)
        XCTAssertEqual(result.verdict, .fail)
        let replayer = try Replayer(store: store, run: run)
        var fixed = replayer.configuration
        fixed.bug = nil
        let withoutBug = try replayer.replay(system: RaftSystem(configuration: fixed), configuration: fixed, mode: .tolerant)
        XCTAssertNil(withoutBug.violation, "the violation is gone with the bug off")
        XCTAssertGreaterThan(withoutBug.matched, 0)
        let withBug = try replayer.replay(system: RaftSystem(configuration: replayer.configuration), mode: .tolerant)
        XCTAssertTrue(withBug.violationReproduced, "still there with the bug on")
        XCTAssertEqual(withBug.new, 0)
        XCTAssertEqual(withBug.missing, 0)
    }

    /// A run a budget stopped ends when the step under way is done, with every event of it
    /// recorded; its replay stops in the same place (for the wall clock, where the recording says
    /// the clock ran out) and is identical.
    func testRunsStoppedByABudgetReplayIdentically() throws {
        var configuration = configuration(RaftSystem.self, seed: 6, suite: .distributed, short: false)
        configuration.durationNanoseconds = 600_000_000_000
        // By the wall clock: it runs out at the clock's fifth asking (after 5,120 events).
        let recorder = try store.beginRun(seed: configuration.seed, configuration: "{}", toolVersion: "test")
        let simulator = Simulator(configuration: configuration, system: RaftSystem(configuration: configuration), recorder: recorder)
        var asked = 0
        simulator.wallTimeLimit = ("wall-time budget of 1 s reached", { asked += 1; return asked >= 5 })
        let byClock = simulator.run()
        XCTAssertEqual(byClock.verdict, .stopped)
        XCTAssertGreaterThanOrEqual(byClock.events, 5 * 1024)
        // By the event budget, which runs out in the middle of a step.
        configuration.maxEvents = 3_001
        let (budgetRun, byBudget) = try record(configuration, RaftSystem.self)
        XCTAssertEqual(byBudget.verdict, .stopped)
        XCTAssertGreaterThanOrEqual(byBudget.events, 3_001)
        // A run that found a violation and went on until the wall clock stopped it.
        var failing = self.configuration(EchoSystem.self, seed: 1, suite: .none, bug: "echo.off-by-one", short: false)
        failing.durationNanoseconds = 600_000_000_000
        failing.stopOnViolation = false
        let failingRecorder = try store.beginRun(seed: failing.seed, configuration: "{}", toolVersion: "test")
        let failingSimulator = Simulator(configuration: failing, system: EchoSystem(configuration: failing), recorder: failingRecorder)
        var askedAgain = 0
        failingSimulator.wallTimeLimit = ("wall-time budget of 1 s reached", { askedAgain += 1; return askedAgain >= 3 })
        let failed = failingSimulator.run()
        XCTAssertEqual(failed.verdict, .fail)
        XCTAssertEqual(failed.stopReason, "wall-time budget of 1 s reached")
        for (run, result) in [(recorder.runID, byClock), (budgetRun, byBudget), (failingRecorder.runID, failed)] {
            let replayer = try Replayer(store: store, run: run)
            XCTAssertEqual(try store.run(run).eventCount, result.events, "every event of the last step is recorded")
            let make: (SimulationConfiguration) -> SystemDefinition = { run == failingRecorder.runID ? EchoSystem(configuration: $0) : RaftSystem(configuration: $0) }
            let fast = try replayer.replay(makeSystem: make)
            XCTAssertTrue(fast.identical, String(describing: fast.firstDivergence))
            let stepwise = try replayer.replay(system: make(replayer.configuration))
            XCTAssertTrue(stepwise.identical, String(describing: stepwise.firstDivergence))
            XCTAssertEqual(stepwise.events, result.events)
        }
    }

    func testReplayStopsAtTheRequestedEvent() throws {
        let (run, _) = try record(EchoSystem.self, seed: 2, suite: .nodes)
        let replayer = try Replayer(store: store, run: run)
        let report = try replayer.replay(system: EchoSystem(configuration: replayer.configuration), until: 300)
        XCTAssertTrue(report.identical)
        XCTAssertEqual(report.stoppedAt, 300)
        XCTAssertLessThan(report.events, 320)
    }
}
