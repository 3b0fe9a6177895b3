import Foundation
@testable import Simulation
import Systems
import TraceStore
import XCTest

final class SchedulerTests: XCTestCase {
    func testThePRNGIsPinnedToItsAlgorithm() {
        // Changing these values changes what every recorded seed means.
        var random = PRNG(seed: 42)
        let first = (0..<3).map { _ in random.next() }
        var again = PRNG(seed: 42)
        XCTAssertEqual(first, (0..<3).map { _ in again.next() })
        XCTAssertEqual(first, Self.pinnedValues, "PRNG output changed: \(first)")
    }

    /// xoshiro256** seeded by SplitMix64(42), computed by an independent implementation.
    static let pinnedValues: [UInt64] = [1_546_998_764_402_558_742, 6_990_951_692_964_543_102, 12_544_586_762_248_559_009]

    func testRangeReductionIsUnbiasedAndInRange() {
        var random = PRNG(seed: 7)
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<60_000 {
            let value = random.below(6)
            XCTAssertLessThan(value, 6)
            counts[Int(value)] += 1
        }
        for count in counts { XCTAssertEqual(Double(count), 10_000, accuracy: 500) }
        XCTAssertEqual(random.below(1), 0)
    }

    func testSubStreamsAreIndependent() {
        var a = PRNG(seed: 9, stream: 1)
        var b = PRNG(seed: 9, stream: 2)
        XCTAssertNotEqual((0..<4).map { _ in a.next() }, (0..<4).map { _ in b.next() })
    }

    func testRatiosRejectImpossibleProbabilities() {
        XCTAssertEqual(Ratio(probability: 0.25), Ratio(250_000, 1_000_000))
        XCTAssertEqual(Ratio(probability: 2), Ratio(1_000_000, 1_000_000))
        XCTAssertTrue(Ratio.never.isNever)
    }

    func testTheQueueOrdersByTimeThenSequence() {
        var queue = EventQueue()
        var random = PRNG(seed: 3)
        var expected: [(UInt64, UInt64)] = []
        for index in 0..<500 {
            let time = random.below(50)
            queue.push(time: time, kind: .timer, b: UInt64(index))
            expected.append((time, UInt64(index)))
        }
        expected.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var popped: [(UInt64, UInt64)] = []
        while let entry = queue.pop() { popped.append((entry.time, entry.b)) }
        XCTAssertEqual(popped.map(\.0), expected.map(\.0))
        XCTAssertEqual(popped.map(\.1), expected.map(\.1))
    }

    private func echoConfiguration(seed: UInt64, suite: Suite) -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        configuration.seed = seed
        configuration.durationNanoseconds = 1_500_000_000
        configuration.livenessNanoseconds = 500_000_000
        configuration.nemesis.suite = suite
        configuration.nemesis.failureRate = Ratio(1, 2)
        configuration.nemesis.tickNanoseconds = 100_000_000
        if suite == .byzantine { configuration.nemesis.byzantineNodes = 1 }
        return configuration
    }

    func testTheSameSeedGivesTheSameRunAndAnotherSeedAnother() {
        for suite in [Suite.nodes, .network, .resources, .distributed, .byzantine] {
            let configuration = echoConfiguration(seed: 5, suite: suite)
            let first = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
            let second = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
            XCTAssertEqual(first.digest, second.digest, "\(suite)")
            XCTAssertEqual(first.events, second.events)
            XCTAssertGreaterThan(first.statistics.faultsInjected, 0, "\(suite) injected faults")
            var other = configuration
            other.seed = 6
            let third = Simulator(configuration: other, system: EchoSystem(configuration: other), recorder: nil).run()
            XCTAssertNotEqual(first.digest, third.digest)
        }
    }

    func testRecordingDoesNotChangeTheRun() throws {
        let directory = NSTemporaryDirectory() + "chaostrace-rec-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try TraceStore(path: directory + "/r.trace")
        let configuration = echoConfiguration(seed: 11, suite: .distributed)
        let recorder = try store.beginRun(seed: 11, configuration: "{}", toolVersion: "test")
        let recorded = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: recorder).run()
        let plain = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
        XCTAssertEqual(recorded.digest, plain.digest)
        let info = try store.run(recorder.runID)
        XCTAssertEqual(info.eventCount, recorded.events)
        XCTAssertEqual(info.status, .complete)
        let events = try store.reader(run: recorder.runID).allEvents()
        XCTAssertEqual(events.first?.kind, .runStart)
        XCTAssertEqual(events.last?.kind, .runEnd)
        XCTAssertTrue(events.contains { $0.kind == .decision && $0.node == DecisionStream.network })
        XCTAssertTrue(events.contains { $0.kind == .stateDigest })
        // Every delivery follows its send.
        var sent = Set<UInt64>()
        for event in events {
            if event.kind == .send { sent.insert(event.id) }
            if event.kind == .deliver { XCTAssertTrue(sent.contains(event.id)) }
        }
    }

    func testSwarmModeDrawsTheFaultMixFromTheSeed() throws {
        var mixes = Set<String>()
        for seed: UInt64 in 1...8 {
            var configuration = echoConfiguration(seed: seed, suite: .distributed)
            configuration.nemesis.swarm = true
            configuration.durationNanoseconds = 10_000_000
            configuration.livenessNanoseconds = 0
            configuration.clients = 0
            let directory = NSTemporaryDirectory() + "chaostrace-swarm-\(getpid())-\(seed)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let store = try TraceStore(path: directory + "/s.trace")
            let recorder = try store.beginRun(seed: seed, configuration: "{}", toolVersion: "test")
            _ = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: recorder).run()
            let log = try store.reader(run: recorder.runID).allEvents().first { $0.kind == .log }
            mixes.insert(String(decoding: log?.payload ?? [], as: UTF8.self))
        }
        XCTAssertGreaterThan(mixes.count, 4, "seeds draw different fault mixes: \(mixes)")
    }

    func testEveryFaultKindInjectsAndHeals() {
        for kind in FaultKind.allCases {
            var configuration = echoConfiguration(seed: 3, suite: .none)
            configuration.nemesis.byzantineNodes = 1
            let simulator = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil)
            simulator.begin()
            simulator.run(until: 100_000_000)
            XCTAssertTrue(simulator.injectNow(kind), "\(kind) could not be injected")
            simulator.run(until: 300_000_000)
            simulator.healAll()
            XCTAssertTrue((0..<5).allSatisfy { simulator.isUp(NodeID($0)) }, "\(kind): every node is up after heal")
            XCTAssertTrue((0..<5).allSatisfy { source in (0..<5).allSatisfy { !simulator.isBlocked(from: NodeID(source), to: NodeID($0)) } })
            let result = simulator.end()
            XCTAssertEqual(result.verdict, .pass, "\(kind): \(result.violation?.description ?? "")")
        }
    }

    func testPartitionShapesCutTheClusterAsNamed() {
        func blockedMatrix(_ kind: FaultKind, nodes: Int = 5) -> [[Bool]] {
            var configuration = echoConfiguration(seed: 4, suite: .none)
            configuration.nodes = nodes
            let simulator = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil)
            simulator.begin()
            XCTAssertTrue(simulator.injectNow(kind))
            return (0..<nodes).map { a in (0..<nodes).map { b in simulator.isBlocked(from: NodeID(a), to: NodeID(b)) } }
        }
        func reach(_ matrix: [[Bool]], _ node: Int) -> Int { 1 + matrix[node].enumerated().filter { $0.offset != node && !$0.element }.count }

        let isolate = blockedMatrix(.partitionIsolate)
        let isolated = (0..<5).filter { reach(isolate, $0) == 1 }
        XCTAssertEqual(isolated.count, 1)
        XCTAssertTrue((0..<5).filter { $0 != isolated[0] }.allSatisfy { reach(isolate, $0) == 4 })

        let majority = blockedMatrix(.partitionMajority)
        XCTAssertEqual((0..<5).map { reach(majority, $0) }.sorted(), [2, 2, 3, 3, 3])

        let halves = blockedMatrix(.partitionHalves, nodes: 6)
        XCTAssertEqual((0..<6).map { reach(halves, $0) }, [3, 3, 3, 3, 3, 3])

        let ring = blockedMatrix(.partitionRing)
        XCTAssertTrue((0..<5).allSatisfy { reach(ring, $0) == 3 }, "every node sees a majority, no node sees all")
        var views = Set<[Bool]>()
        for node in 0..<5 { views.insert(ring[node]) }
        XCTAssertEqual(views.count, 5, "no two nodes share a view")

        let bridge = blockedMatrix(.partitionBridge)
        let bridges = (0..<5).filter { reach(bridge, $0) == 5 }
        XCTAssertEqual(bridges.count, 1, "one node talks to both sides")

        let oneWay = blockedMatrix(.partitionOneWay)
        let asymmetric = (0..<5).flatMap { a in (0..<5).map { (a, $0) } }.filter { oneWay[$0.0][$0.1] && !oneWay[$0.1][$0.0] }
        XCTAssertFalse(asymmetric.isEmpty)
        XCTAssertTrue((0..<5).allSatisfy { a in (0..<5).allSatisfy { !(oneWay[a][$0] && oneWay[$0][a]) } }, "never both ways")
    }

    func testTheLivenessPhaseReportsASystemThatNeverRecovers() {
        var configuration = probeConfiguration(clients: 2)
        configuration.durationNanoseconds = 500_000_000
        configuration.livenessNanoseconds = 500_000_000
        configuration.options = ["mute": 1]
        let stuck = Simulator(configuration: configuration, system: ProbeSystem(configuration: configuration), recorder: nil).run()
        XCTAssertEqual(stuck.verdict, .fail)
        XCTAssertEqual(stuck.violation?.checker, "liveness")
        XCTAssertEqual(stuck.violation?.kind, "no-recovery")

        configuration.options = [:]
        let healthy = Simulator(configuration: configuration, system: ProbeSystem(configuration: configuration), recorder: nil).run()
        XCTAssertEqual(healthy.verdict, .pass)
    }

    func testAPlantedLivenessBugIsFoundUnderCrashes() {
        var found = false
        for seed: UInt64 in 1...10 where !found {
            var configuration = echoConfiguration(seed: seed, suite: .nodes)
            configuration.bug = "echo.stuck-after-restart"
            configuration.nodes = 3
            configuration.nemesis.blastRadius = 3
            let result = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
            found = result.violation?.kind == "no-recovery"
        }
        XCTAssertTrue(found, "crashing every node eventually leaves no one to answer")
    }

    func testAPlantedSafetyBugIsFoundAndStopsTheRun() {
        var configuration = echoConfiguration(seed: 1, suite: .none)
        configuration.bug = "echo.off-by-one"
        let result = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
        XCTAssertEqual(result.verdict, .fail)
        XCTAssertEqual(result.violation?.checker, "echo")
        XCTAssertEqual(result.violation?.kind, "wrong-echo")
        XCTAssertEqual(result.violation?.events.count, 2)
    }

    func testTheEventBudgetStopsARun() {
        var configuration = echoConfiguration(seed: 1, suite: .none)
        configuration.maxEvents = 1_000
        let result = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
        XCTAssertNotNil(result.stopReason)
        XCTAssertLessThan(result.events, 1_100)
        // Its final checks never ran: neither passed nor failed.
        XCTAssertEqual(result.verdict, .stopped)
    }

    func testTheWallTimeBreakerStopsARunAndSaysWhy() {
        let configuration = echoConfiguration(seed: 1, suite: .none)
        let simulator = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil)
        var asked = 0
        simulator.wallTimeLimit = ("wall-time budget of 1 s reached", { asked += 1; return asked >= 3 })
        let result = simulator.run()
        XCTAssertEqual(result.verdict, .stopped)
        XCTAssertEqual(result.stopReason, "wall-time budget of 1 s reached")
        XCTAssertEqual(asked, 3)
        XCTAssertLessThanOrEqual(result.events, 3 * 1_024 + 10)
    }
}
