import Checkers
import Foundation
import Simulation
import Systems
import XCTest

/// Runs `system` with the default configuration for one seed and suite, unrecorded.
func simulate(_ system: SystemDefinition.Type, seed: UInt64, suite: Suite, bug: String? = nil) -> SimulationResult {
    var configuration = SimulationConfiguration()
    configuration.system = system.name
    configuration.bug = bug
    configuration.seed = seed
    configuration.nemesis.suite = suite
    return Simulator(configuration: configuration, system: system.init(configuration: configuration), recorder: nil).run()
}

final class RaftTests: XCTestCase {
    private func run(seed: UInt64, suite: Suite, bug: String? = nil) -> SimulationResult {
        simulate(RaftSystem.self, seed: seed, suite: suite, bug: bug)
    }

    func testACorrectRaftPassesEverySuiteAndServesClients() {
        for suite in [Suite.none, .nodes, .network, .resources, .distributed] {
            for seed: UInt64 in 1...3 {
                let result = run(seed: seed, suite: suite)
                XCTAssertEqual(result.verdict, .pass, "\(suite) seed \(seed): \(result.violation?.description ?? "")")
                XCTAssertGreaterThan(result.statistics.requestsOk, 50, "\(suite) seed \(seed): the cluster served clients")
            }
        }
    }

    func testAnUndecidedLinearizabilityCheckWarnsInsteadOfPassingSilently() {
        var configuration = SimulationConfiguration()
        configuration.system = RaftSystem.name
        configuration.seed = 2
        configuration.nemesis.suite = .distributed
        let simulator = Simulator(configuration: configuration, system: RaftSystem(configuration: configuration), recorder: nil)
        let result = simulator.run()
        XCTAssertEqual(result.verdict, .pass)
        XCTAssertEqual(result.warnings, [], "with its full budget the search decides")
        // One search step cannot decide a history of hundreds of operations: no violation is
        // claimed, and the run says the check did not vouch for it.
        XCTAssertNil(LinearizabilityRunChecker(maxSteps: 1).finish(simulator))
        XCTAssertEqual(simulator.warnings.count, 1)
        XCTAssertTrue(simulator.warnings.first?.hasPrefix("linearizability undecided: search budget exhausted") ?? false,
                      "\(simulator.warnings)")
    }

    func testTheStaleReadBugIsFoundUnderPartitions() {
        let result = run(seed: 4, suite: .network, bug: "raft.stale-read")
        XCTAssertEqual(result.verdict, .fail)
        XCTAssertEqual(result.violation?.checker, "linearizability")
        XCTAssertEqual(result.violation?.kind, "not-linearizable")
        XCTAssertFalse(result.violation?.events.isEmpty ?? true)
    }

    func testTheSameSeedReplaysTheSameRaftRun() {
        let first = run(seed: 9, suite: .distributed)
        let second = run(seed: 9, suite: .distributed)
        XCTAssertEqual(first.digest, second.digest)
    }
}

final class CRDTTests: XCTestCase {
    private func run(seed: UInt64, suite: Suite, bug: String? = nil) -> SimulationResult {
        simulate(CRDTSystem.self, seed: seed, suite: suite, bug: bug)
    }

    func testReplicasConvergeAndKeepEveryAcknowledgedUpdateUnderFaults() {
        for suite in [Suite.none, .nodes, .network, .resources, .distributed] {
            let result = run(seed: 2, suite: suite)
            XCTAssertEqual(result.verdict, .pass, "\(suite): \(result.violation?.description ?? "")")
            XCTAssertGreaterThan(result.statistics.requestsOk, 100)
        }
    }

    func testLastWriterWinsOnARawClockLosesAnAcknowledgedUpdate() {
        let result = run(seed: 7, suite: .distributed, bug: "crdt.lww-local-clock")
        XCTAssertEqual(result.violation?.checker, "crdt")
        XCTAssertEqual(result.violation?.kind, "lost-update")
    }
}

final class BlockStoreTests: XCTestCase {
    private func run(seed: UInt64, suite: Suite, bug: String? = nil) -> SimulationResult {
        simulate(BlockStoreSystem.self, seed: seed, suite: suite, bug: bug)
    }

    func testNoAcknowledgedBlockIsLostUnderFaults() {
        for suite in [Suite.none, .nodes, .network, .resources, .distributed] {
            let result = run(seed: 3, suite: suite)
            XCTAssertEqual(result.verdict, .pass, "\(suite): \(result.violation?.description ?? "")")
            XCTAssertGreaterThan(result.statistics.requestsOk, 100)
        }
    }

    func testAcknowledgingBeforeFsyncLosesBlocksInCrashes() {
        let result = run(seed: 2, suite: .nodes, bug: "blockstore.ack-before-fsync")
        XCTAssertEqual(result.violation?.checker, "block-durability")
        XCTAssertEqual(result.violation?.kind, "lost-block")
    }
}

final class BFTTests: XCTestCase {
    private func run(seed: UInt64, suite: Suite, bug: String? = nil) -> SimulationResult {
        var configuration = SimulationConfiguration()
        configuration.system = BFTSystem.name
        configuration.bug = bug
        configuration.seed = seed
        configuration.nodes = 4
        configuration.durationNanoseconds = 3_000_000_000
        configuration.livenessNanoseconds = 2_000_000_000
        configuration.clientIntervalNanoseconds = BFTSystem.clientIntervalNanoseconds!
        configuration.nemesis.suite = suite
        configuration.nemesis.failureRate = Ratio(1, 2)
        if suite == .byzantine { configuration.nemesis.byzantineNodes = 1 }
        return Simulator(configuration: configuration, system: BFTSystem(configuration: configuration), recorder: nil).run()
    }

    func testHonestNodesAgreeDespiteAByzantineNode() {
        for suite in [Suite.none, .network, .byzantine] {
            let result = run(seed: 5, suite: suite)
            XCTAssertEqual(result.verdict, .pass, "\(suite): \(result.violation?.description ?? "")")
            XCTAssertGreaterThan(result.statistics.requestsOk, 20)
        }
    }

    func testASmallQuorumIsCaughtByTheCertificateCheck() {
        XCTAssertEqual(run(seed: 1, suite: .byzantine, bug: "bft.small-quorum").violation?.kind, "invalid-certificate")
    }

    func testSkippingSignatureChecksLetsForgedMessagesIn() {
        XCTAssertEqual(run(seed: 1, suite: .byzantine, bug: "bft.skip-signature-check").violation?.kind, "forged-message-accepted")
    }
}
