import Foundation
import Replay
import Simulation
import Systems
import TraceStore
import XCTest

final class ShrinkerTests: StoreTestCase {
    private func shrink(_ run: UInt64, _ system: SystemDefinition.Type, maxReplays: Int) throws -> (Shrinker, ShrinkResult) {
        let shrinker = try Shrinker(store: store, run: run, minimumNodes: 3) { system.init(configuration: $0) }
        var options = ShrinkOptions()
        options.maxReplays = maxReplays
        options.timeLimit = 600
        return (shrinker, try shrinker.shrink(options: options))
    }

    func testAShrunkRaftRunKeepsItsViolationReplaysExactlyAndIsFarSmaller() throws {
        let config = configuration(RaftSystem.self, seed: 8, suite: .network, bug: "raft.stale-read", nodes: 5)
        let (run, result) = try record(config, RaftSystem.self)
        let original = try XCTUnwrap(result.violation, "seed 8 finds the stale read")
        let (shrinker, shrunk) = try shrink(run, RaftSystem.self, maxReplays: 400)
        XCTAssertEqual(shrunk.violation.checker, original.checker)
        XCTAssertEqual(shrunk.violation.kind, original.kind)
        XCTAssertLessThan(shrunk.deliveriesAfter * 2, shrunk.deliveriesBefore, "at least half of the deliveries go")
        XCTAssertLessThan(shrunk.externalAfter, shrunk.externalBefore)
        XCTAssertLessThanOrEqual(shrunk.replays, 400 + 2)

        // Recorded as a new run, linked to the original, that replays exactly with the violation.
        let newRun = try shrinker.record(shrunk, into: store, toolVersion: "test")
        XCTAssertEqual(try store.run(newRun).parentRun, run)
        let replayer = try Replayer(store: store, run: newRun)
        XCTAssertEqual(replayer.configuration.interventions, shrunk.configuration.interventions)
        let report = try replayer.replay(system: RaftSystem(configuration: replayer.configuration))
        XCTAssertTrue(report.identical, String(describing: report.firstDivergence))
        XCTAssertTrue(report.violationReproduced)
        let deliveries = try store.reader(run: newRun).allEvents().filter { $0.kind == .deliver }.count
        XCTAssertEqual(deliveries, shrunk.deliveriesAfter)
    }

    func testShrinkingTheSameRunTwiceGivesTheSameResult() throws {
        let config = configuration(BFTSystem.self, seed: 2, suite: .byzantine, bug: "bft.skip-signature-check", nodes: 4)
        let (run, result) = try record(config, BFTSystem.self)
        XCTAssertNotNil(result.violation)
        let (_, first) = try shrink(run, BFTSystem.self, maxReplays: 150)
        let (_, second) = try shrink(run, BFTSystem.self, maxReplays: 150)
        XCTAssertEqual(first.configuration, second.configuration)
        XCTAssertEqual(first.deliveriesAfter, second.deliveriesAfter)
        XCTAssertEqual(first.externalAfter, second.externalAfter)
        XCTAssertEqual(first.replays, second.replays)
        XCTAssertLessThan(first.deliveriesAfter, first.deliveriesBefore)
    }

    func testAPassingRunCannotBeShrunk() throws {
        let config = configuration(EchoSystem.self, seed: 1, suite: .none, bug: nil, nodes: 3)
        let (run, result) = try record(config, EchoSystem.self)
        XCTAssertNil(result.violation)
        XCTAssertThrowsError(try Shrinker(store: store, run: run) { EchoSystem(configuration: $0) }) { error in
            XCTAssertTrue("\(error)".contains("nothing to shrink") || "\(error)".contains("no violation"), "\(error)")
        }
    }

    func testInterventionsLeaveOutExactlyWhatTheyName() throws {
        var config = configuration(RaftSystem.self, seed: 3, suite: .none, bug: nil, nodes: 3)
        config.durationNanoseconds = 1_000_000_000
        config.livenessNanoseconds = 0
        func run(_ interventions: Interventions?) -> [Event] {
            var configuration = config
            configuration.interventions = interventions
            var events: [Event] = []
            let simulator = Simulator(configuration: configuration, system: RaftSystem(configuration: configuration), recorder: nil)
            simulator.observer = { kind, time, node, peer, id, payload in
                events.append(Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: Array(payload)))
            }
            _ = simulator.run()
            return events
        }
        let plain = run(nil)
        let invokes = plain.filter { $0.kind == .clientInvoke }
        XCTAssertGreaterThan(invokes.count, 10)

        var skip = Interventions()
        skip.skippedOperations = [0 << 32 | 1, 1 << 32 | 2]
        let skipped = run(skip)
        let firstOfClient0 = skipped.first { $0.kind == .clientInvoke && $0.node == 0 }
        XCTAssertNotEqual(firstOfClient0?.time, invokes.first { $0.node == 0 }?.time, "client 0's first operation is left out")

        var silence = Interventions()
        silence.droppedGroups = [Interventions.MessageGroup(type: 1, key: 1)]  // every RequestVote of term 1
        let silenced = run(silence)
        let votesOfTerm1 = silenced.filter { event in
            event.kind == .send && Message.decode(event.payload).map { $0.type == 1 && $0.key == 1 } == true
        }
        XCTAssertFalse(votesOfTerm1.isEmpty)
        let delivered = Set(silenced.filter { $0.kind == .deliver }.map(\.id))
        XCTAssertTrue(votesOfTerm1.allSatisfy { !delivered.contains($0.id) }, "no RequestVote of term 1 arrives")
        XCTAssertTrue(silenced.contains { $0.kind == .drop && String(decoding: $0.payload, as: UTF8.self) == "removed" })

        var cutOff = Interventions()
        cutOff.isolatedNodes = [2]
        let isolated = run(cutOff)
        let touchingNode2 = Set(isolated.filter { $0.kind == .send && ($0.node == 2 || $0.peer == 2) }.map(\.id))
        XCTAssertFalse(touchingNode2.isEmpty, "n2 still sends and is sent to")
        let arrived = isolated.filter { $0.kind == .deliver }
        XCTAssertFalse(arrived.isEmpty)
        XCTAssertTrue(arrived.allSatisfy { !touchingNode2.contains($0.id) }, "nothing reaches n2 or comes from it")
        XCTAssertTrue(plain.contains { $0.kind == .deliver && ($0.node == 2 || $0.peer == 2) })
        // Interventions without isolated nodes encode as before (no key); with them they round-trip.
        XCTAssertFalse(String(decoding: try JSONCoding.encoder.encode(silence), as: UTF8.self).contains("isolatedNodes"))
        XCTAssertEqual(try JSONDecoder().decode(Interventions.self, from: JSONCoding.encoder.encode(cutOff)), cutOff)
    }

    /// A stretch cut out of a run's middle: the run goes on from its own state, with the
    /// recording's faults and operations from after the stretch, each as long after the cut as it
    /// came after the stretch.
    func testCrashPointsMatchedByCauseStayWithWhatTheyWereAbout() throws {
        var config = configuration(RaftSystem.self, seed: 5, suite: .distributed, bug: nil, nodes: 5)
        config.durationNanoseconds = 3_000_000_000
        config.livenessNanoseconds = 0
        let json = String(decoding: try JSONCoding.encoder.encode(config), as: UTF8.self)
        let recorder = try store.beginRun(seed: config.seed, configuration: json, toolVersion: "test")
        _ = Simulator(configuration: config, system: RaftSystem(configuration: config), recorder: recorder).run()
        let replayer = try Replayer(store: store, run: recorder.runID)
        func run(_ configuration: SimulationConfiguration, byCause: Bool) -> (events: [Event], log: ExternalEventLog) {
            var events: [Event] = []
            let simulator = Simulator(configuration: configuration, system: RaftSystem(configuration: configuration), recorder: nil)
            simulator.trackExternalEvents()
            _ = replayer.attachTolerantFeed(to: simulator, crashesByCause: byCause)
            let matching = simulator.observer
            simulator.observer = { kind, time, node, peer, id, payload in
                matching?(kind, time, node, peer, id, payload)
                events.append(Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: Array(payload)))
            }
            _ = simulator.run()
            return (events, simulator.externalEvents ?? ExternalEventLog())
        }
        let inOrder = run(config, byCause: false)
        let fired = inOrder.log.crashPoints.compactMap(\.identity)
        XCTAssertGreaterThan(fired.count, 2, "seed 5 fires crash points")
        XCTAssertFalse(replayer.knowsCrashCauses)
        XCTAssertTrue(replayer.learnCrashPoints(from: inOrder.log.crashDraws))
        XCTAssertTrue(replayer.knowsCrashCauses)
        // A log that does not fit the recording's crash-point decisions teaches nothing.
        XCTAssertFalse(replayer.learnCrashPoints(from: Array(inOrder.log.crashDraws.dropLast())))

        // Unchanged, the run matched by cause is the recorded run.
        let byCause = run(config, byCause: true)
        XCTAssertEqual(byCause.events, inOrder.events)

        // Without its first operation, no crash point fires that the recording did not fire, and
        // the crash points about operations that are still issued keep firing.
        var fewer = config
        var interventions = Interventions()
        interventions.skippedOperations = [inOrder.log.operations[0].identity]
        fewer.interventions = interventions
        let candidate = run(fewer, byCause: true)
        let recordedSet = Set(fired)
        for point in candidate.log.crashPoints {
            let identity = try XCTUnwrap(point.identity)
            XCTAssertTrue(recordedSet.contains(identity), "crash point #\(point.ordinal) (\(point.site)) fired without a recorded one")
        }
        XCTAssertFalse(candidate.log.crashPoints.isEmpty)

        // Left out by identity, a crash point does not fire.
        let skipped = candidate.log.crashPoints[0].identity!
        interventions.skippedCrashes = [skipped]
        fewer.interventions = interventions
        XCTAssertFalse(run(fewer, byCause: true).log.crashPoints.contains { $0.identity == skipped })
    }

    func testACutStretchGoesOnWithTheRecordingAfterIt() throws {
        var config = configuration(RaftSystem.self, seed: 11, suite: .network, bug: nil, nodes: 5)
        config.durationNanoseconds = 4_000_000_000
        config.livenessNanoseconds = 0
        let tick = config.nemesis.tickNanoseconds
        let json = String(decoding: try JSONCoding.encoder.encode(config), as: UTF8.self)
        let recorder = try store.beginRun(seed: config.seed, configuration: json, toolVersion: "test")
        _ = Simulator(configuration: config, system: RaftSystem(configuration: config), recorder: recorder).run()
        let replayer = try Replayer(store: store, run: recorder.runID)
        func run(_ configuration: SimulationConfiguration) -> [Event] {
            var events: [Event] = []
            let simulator = Simulator(configuration: configuration, system: RaftSystem(configuration: configuration), recorder: nil)
            _ = replayer.attachTolerantFeed(to: simulator)
            let matching = simulator.observer
            simulator.observer = { kind, time, node, peer, id, payload in
                matching?(kind, time, node, peer, id, payload)
                events.append(Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: Array(payload)))
            }
            _ = simulator.run()
            return events
        }
        let recorded = run(config)
        // The stretch [1 s, 2 s): each client goes on with its first operation from 2 s on.
        let at: UInt64 = 1_000_000_000, end: UInt64 = 2_000_000_000
        let invokes = recorded.filter { $0.kind == .clientInvoke }
        var shifts = [UInt64](repeating: 0, count: config.clients)
        var resumes = [UInt64](repeating: UInt64.max, count: config.clients)
        for client in 0..<config.clients {
            let own = invokes.filter { $0.node == UInt32(client) }
            guard let next = own.firstIndex(where: { $0.time >= end }) else { continue }
            shifts[client] = UInt64(next)
            resumes[client] = own[next].time - end
        }
        var cut = config
        var interventions = Interventions()
        interventions.timeCuts = [Interventions.TimeCut(at: at, ticks: (end - at) / tick, operationShifts: shifts, resumeAfter: resumes)]
        cut.interventions = interventions
        cut.durationNanoseconds -= end - at
        let after = run(cut)

        // Faults come at the same ticks, a second earlier, from the cut on (which fault a tick
        // picks also depends on the faults in force, which the cut changed).
        let faultKinds: Set<EventKind> = [.partition, .networkFault]
        let recordedFaults = recorded.filter { faultKinds.contains($0.kind) && $0.time >= end }.map { $0.time - (end - at) }
        let cutFaults = after.filter { faultKinds.contains($0.kind) && $0.time >= at }.map(\.time)
        XCTAssertGreaterThan(recordedFaults.count, 2)
        XCTAssertEqual(cutFaults, recordedFaults)
        // Each client's first operation after the cut is the recording's first after the stretch.
        var resumed = 0
        for client in 0..<config.clients where resumes[client] != UInt64.max {
            let expected = invokes.first { $0.node == UInt32(client) && $0.time >= end }
            let actual = after.first { $0.kind == .clientInvoke && $0.node == UInt32(client) && $0.time >= at }
            XCTAssertEqual(actual?.payload, expected?.payload, "client \(client)")
            resumed += 1
        }
        XCTAssertGreaterThan(resumed, 0)
        // Before the cut the run is the recording; it ends a second earlier.
        XCTAssertEqual(after.prefix { $0.time < at }.count, recorded.prefix { $0.time < at }.count)
        XCTAssertEqual(after.last?.time, cut.durationNanoseconds)
        let encoded = String(decoding: try JSONCoding.encoder.encode(interventions), as: UTF8.self)
        XCTAssertTrue(encoded.contains("timeCuts"))
        XCTAssertEqual(try JSONDecoder().decode(Interventions.self, from: Data(encoded.utf8)), interventions)
        XCTAssertFalse(String(decoding: try JSONCoding.encoder.encode(Interventions()), as: UTF8.self).contains("timeCuts"))
    }
}

/// The committed minimal counterexamples: each replays exactly and shows its violation with the
/// bug on, and the violation is gone when the bug is switched off (tolerant replay).
final class RegressionTraceTests: XCTestCase {
    func testEveryRegressionTraceReproducesWithTheBugAndNotWithout() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("traces/regressions/regressions.trace")
        guard FileManager.default.fileExists(atPath: source.path) else {
            return XCTFail("traces/regressions/regressions.trace is missing: run tools/regressions")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-regressions-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("regressions.trace")
        try FileManager.default.copyItem(at: source, to: copy)
        let store = try TraceStore(path: copy.path)
        let runs = try store.runs()
        XCTAssertGreaterThanOrEqual(runs.count, 7)
        var bugs: [String] = []
        for info in runs {
            let replayer = try Replayer(store: store, run: info.id)
            let configuration = replayer.configuration
            let bug = try XCTUnwrap(configuration.bug, "run \(info.id) has a planted bug")
            bugs.append(bug)
            let system = try XCTUnwrap(SystemRegistry.named(configuration.system))
            let report = try replayer.replay(system: system.init(configuration: configuration))
            XCTAssertTrue(report.identical, "\(bug): \(String(describing: report.firstDivergence))")
            XCTAssertTrue(report.violationReproduced, "\(bug) reproduces")
            // Unchanged code, matched tolerantly: every recorded decision finds its draw, those of
            // the operations the shrink left out too (they leave no invocation to name them).
            let tolerant = try replayer.replay(system: system.init(configuration: configuration), configuration: configuration, mode: .tolerant)
            XCTAssertTrue(tolerant.identical, "\(bug): tolerant self-replay \(tolerant.matched) matched, \(tolerant.missing) missing, \(tolerant.new) new")
            XCTAssertEqual(tolerant.missing, 0, bug)
            XCTAssertTrue(tolerant.violationReproduced, "\(bug) reproduces tolerantly")
            var fixed = configuration
            fixed.bug = nil
            let without = try replayer.replay(system: system.init(configuration: fixed), configuration: fixed, mode: .tolerant)
            XCTAssertNil(without.violation, "\(bug) switched off: \(String(describing: without.violation))")
        }
        XCTAssertEqual(Set(bugs), Set(["raft.stale-read", "raft.forget-vote", "raft.commit-old-term", "crdt.lww-local-clock",
                                       "blockstore.ack-before-fsync", "bft.small-quorum", "bft.skip-signature-check"]))
    }
}
