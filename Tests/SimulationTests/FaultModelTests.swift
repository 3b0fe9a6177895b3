import Foundation
import Simulation
import TraceStore
import XCTest

final class FaultModelTests: XCTestCase {
    func testAPartitionBlocksDeliveryAcrossItButNotWithinASide() throws {
        let harness = try ProbeHarness(record: true)
        harness.simulator.partition([[0, 1], [2, 3, 4]])
        harness.send(Message(type: 1, key: 7), from: 0, to: 1)
        harness.send(Message(type: 1, key: 8), from: 0, to: 2)
        harness.send(Message(type: 1, key: 9), from: 3, to: 0)
        harness.advance(milliseconds: 50)
        XCTAssertEqual(harness.node(1).received.map(\.message.key), [7])
        XCTAssertTrue(harness.node(2).received.isEmpty)
        XCTAssertTrue(harness.node(0).received.isEmpty)
        let drops = try harness.finishAndReadTrace().filter { $0.kind == .drop }
        XCTAssertEqual(drops.count, 2)
        XCTAssertTrue(drops.allSatisfy { String(decoding: $0.payload, as: UTF8.self) == "partition" })
    }

    func testAOneWayPartitionBlocksOneDirectionOnly() throws {
        let harness = try ProbeHarness()
        harness.simulator.blockLinks([(source: 0, target: 1)])
        harness.send(Message(type: 1, key: 1), from: 0, to: 1)
        harness.send(Message(type: 1, key: 2), from: 1, to: 0)
        harness.advance(milliseconds: 50)
        XCTAssertTrue(harness.node(1).received.isEmpty, "0 → 1 is blocked")
        XCTAssertEqual(harness.node(0).received.map(\.message.key), [2], "1 → 0 still flows")
        XCTAssertTrue(harness.simulator.isBlocked(from: 0, to: 1))
        XCTAssertFalse(harness.simulator.isBlocked(from: 1, to: 0))
    }

    func testAPartitionFormedWhileAMessageIsInFlightDropsIt() throws {
        let harness = try ProbeHarness()
        harness.send(Message(type: 1, key: 1), from: 0, to: 1)
        let fault = harness.simulator.partition([[0], [1, 2, 3, 4]])
        harness.advance(milliseconds: 50)
        XCTAssertTrue(harness.node(1).received.isEmpty)
        harness.simulator.heal(faultID: fault)
        harness.send(Message(type: 1, key: 2), from: 0, to: 1)
        harness.advance(milliseconds: 50)
        XCTAssertEqual(harness.node(1).received.map(\.message.key), [2], "after heal messages flow again")
    }

    func testACrashLosesAnUnsyncedWriteAndKeepsASyncedOne() throws {
        let harness = try ProbeHarness(record: true)
        try harness.simulator.withContext(of: 0) { _, context in
            try context.write("synced", [1, 2, 3])
            try context.fsync()
            try context.write("unsynced", [4, 5, 6])
            XCTAssertEqual(try context.read("unsynced"), [4, 5, 6], "a node reads its own un-synced write")
        }
        harness.simulator.crashNode(0)
        XCTAssertNil(harness.simulator.node(0))
        XCTAssertFalse(harness.simulator.isUp(0))
        harness.simulator.restartNode(0)
        try harness.simulator.withContext(of: 0) { _, context in
            XCTAssertEqual(try context.read("synced"), [1, 2, 3])
            XCTAssertNil(try context.read("unsynced"))
        }
        let crash = try XCTUnwrap(harness.finishAndReadTrace().first { $0.kind == .crash })
        XCTAssertEqual(crash.id, 1, "one write was lost")
    }

    func testATornCrashLeavesDamagedUnsyncedDataOrNone() throws {
        let harness = try ProbeHarness()
        let written = (0..<40).map { index in (key: "k\(index)", value: [UInt8](repeating: UInt8(index), count: 8)) }
        try harness.simulator.withContext(of: 1) { _, context in
            for item in written { try context.write(item.key, item.value) }
        }
        harness.simulator.crashNode(1, torn: true)
        harness.simulator.restartNode(1)
        var damaged = 0
        try harness.simulator.withContext(of: 1) { _, context in
            for item in written {
                guard let value = try context.read(item.key) else { continue }
                XCTAssertNotEqual(value, item.value, "\(item.key) survived a crash without fsync intact")
                damaged += 1
            }
        }
        XCTAssertGreaterThan(damaged, 0, "with torn writes some un-synced data lands damaged")
        XCTAssertLessThan(damaged, written.count)
    }

    func testDuplicationDeliversTwice() throws {
        let harness = try ProbeHarness(record: true)
        var network = NetworkConfiguration()
        network.latency = .uniform(min: 1_000_000, max: 3_000_000)
        network.duplication = .always
        harness.simulator.setNetwork(network)
        harness.send(Message(type: 1, key: 42), from: 2, to: 3)
        harness.advance(milliseconds: 50)
        XCTAssertEqual(harness.node(3).received.map(\.message.key), [42, 42])
        let events = try harness.finishAndReadTrace()
        XCTAssertEqual(events.filter { $0.kind == .duplicate }.count, 1)
        XCTAssertEqual(events.filter { $0.kind == .deliver }.map(\.id), [1, 1], "both copies are message 1")
    }

    func testLossDropsMessages() throws {
        let harness = try ProbeHarness()
        var network = NetworkConfiguration()
        network.loss = .always
        harness.simulator.setNetwork(network)
        for key in 0..<10 { harness.send(Message(type: 1, key: UInt64(key)), from: 0, to: 1) }
        harness.advance(milliseconds: 50)
        XCTAssertTrue(harness.node(1).received.isEmpty)
        XCTAssertEqual(harness.simulator.statistics.messagesDropped, 10)
    }

    func testReorderingLetsLaterMessagesOvertake() throws {
        let harness = try ProbeHarness()
        var network = NetworkConfiguration()
        network.latency = .constant(1_000_000)
        network.reordering = Ratio(1, 2)
        network.reorderDelayMaxNanoseconds = 50_000_000
        harness.simulator.setNetwork(network)
        for key in 0..<30 { harness.send(Message(type: 1, key: UInt64(key)), from: 0, to: 1) }
        harness.advance(milliseconds: 200)
        let keys = harness.node(1).received.map(\.message.key)
        XCTAssertEqual(keys.sorted(), Array(0..<30))
        XCTAssertNotEqual(keys, Array(0..<30), "some messages arrived out of order")
    }

    func testLinkCapacityDropsMessagesBeyondIt() throws {
        let harness = try ProbeHarness()
        var network = NetworkConfiguration()
        network.latency = .constant(5_000_000)
        network.linkCapacity = 3
        harness.simulator.setNetwork(network)
        for key in 0..<10 { harness.send(Message(type: 1, key: UInt64(key)), from: 0, to: 1) }
        harness.advance(milliseconds: 50)
        XCTAssertEqual(harness.node(1).received.map(\.message.key).sorted(), [0, 1, 2])
    }

    func testClockSkewAndDriftAreVisibleInTheNodesClock() throws {
        let harness = try ProbeHarness()
        harness.advance(milliseconds: 1_000)
        harness.simulator.setClock(of: 2, offsetNanoseconds: 5_000_000_000)
        harness.simulator.setClock(of: 3, offsetNanoseconds: -400_000_000)
        harness.simulator.setClock(of: 4, offsetNanoseconds: 0, driftPartsPerMillion: 100_000)
        harness.advance(milliseconds: 1_000)
        let readings = (0..<5).map { node in harness.simulator.withContext(of: NodeID(node)) { _, context in context.now }! }
        XCTAssertEqual(readings[0], 2_000_000_000)
        XCTAssertEqual(readings[1], readings[0])
        XCTAssertEqual(readings[2], readings[0] + 5_000_000_000)
        XCTAssertEqual(readings[3], readings[0] - 400_000_000)
        XCTAssertEqual(readings[4], readings[0] + 100_000_000, "10 % drift over one second")
        // Messages carry the receiver's skewed clock reading.
        harness.send(Message(type: 1), from: 0, to: 2)
        harness.advance(milliseconds: 10)
        XCTAssertGreaterThan(try XCTUnwrap(harness.node(2).received.first).clock, 7_000_000_000)
    }

    func testStorageFullSurfacesAsAnErrorToTheNode() throws {
        let harness = try ProbeHarness()
        try harness.simulator.withContext(of: 0) { _, context in
            try context.write("a", [UInt8](repeating: 1, count: 100))
            try context.fsync()
        }
        let used = harness.simulator.disk(0).usedBytes
        harness.simulator.setDiskCapacity(of: 0, bytes: used)
        _ = try harness.simulator.withContext(of: 0) { _, context in
            XCTAssertThrowsError(try context.write("b", [1])) { error in
                XCTAssertEqual(error as? DiskError, .full)
            }
            XCTAssertEqual(try? context.read("a"), [UInt8](repeating: 1, count: 100), "what was stored stays readable")
        }
        harness.simulator.setDiskCapacity(of: 0, bytes: 1 << 20)
        try harness.simulator.withContext(of: 0) { _, context in try context.write("b", [1]) }
    }

    func testDiskReadAndWriteErrorsSurfaceAsIOErrors() throws {
        let harness = try ProbeHarness()
        try harness.simulator.withContext(of: 1) { _, context in
            try context.write("k", [9])
            try context.fsync()
        }
        var faults = DiskConfiguration()
        faults.readErrors = .always
        faults.writeErrors = .always
        harness.simulator.setDiskFaults(of: 1, faults)
        _ = try harness.simulator.withContext(of: 1) { _, context in
            XCTAssertThrowsError(try context.read("k")) { XCTAssertEqual($0 as? DiskError, .ioError) }
            XCTAssertThrowsError(try context.write("k", [1])) { XCTAssertEqual($0 as? DiskError, .ioError) }
            XCTAssertThrowsError(try context.fsync()) { XCTAssertEqual($0 as? DiskError, .ioError) }
        }
    }

    func testReadCorruptionReturnsDamagedBytes() throws {
        let harness = try ProbeHarness()
        try harness.simulator.withContext(of: 1) { _, context in
            try context.write("k", [1, 2, 3, 4])
            try context.fsync()
        }
        var faults = DiskConfiguration()
        faults.readCorruption = .always
        harness.simulator.setDiskFaults(of: 1, faults)
        try harness.simulator.withContext(of: 1) { _, context in
            let value = try XCTUnwrap(try context.read("k"))
            XCTAssertEqual(value.count, 4)
            XCTAssertNotEqual(value, [1, 2, 3, 4])
        }
    }

    func testAMisdirectedWriteLandsOnAnotherKey() throws {
        let harness = try ProbeHarness()
        try harness.simulator.withContext(of: 1) { _, context in
            try context.write("a", [1])
            try context.fsync()
        }
        var faults = DiskConfiguration()
        faults.misdirectedWrites = .always
        harness.simulator.setDiskFaults(of: 1, faults)
        try harness.simulator.withContext(of: 1) { _, context in
            try context.write("b", [2])
            try context.fsync()
            XCTAssertNil(try context.read("b"), "the write went elsewhere")
            XCTAssertEqual(try context.read("a"), [2], "and overwrote the only other key")
        }
    }

    func testAMemoryBudgetRefusesAllocationsUntilLifted() throws {
        let harness = try ProbeHarness()
        harness.simulator.setMemoryBudget(of: 2, bytes: 1_000)
        harness.simulator.withContext(of: 2) { _, context in
            XCTAssertTrue(context.allocate(600))
            XCTAssertFalse(context.allocate(600), "over the budget")
            context.release(600)
            XCTAssertTrue(context.allocate(600))
        }
        harness.simulator.setMemoryBudget(of: 2, bytes: nil)
        harness.simulator.withContext(of: 2) { _, context in XCTAssertTrue(context.allocate(1 << 30)) }
    }

    func testCPUStarvationSpacesOutWhatANodeProcesses() throws {
        let harness = try ProbeHarness()
        harness.simulator.setProcessingDelay(of: 1, nanoseconds: 20_000_000)
        for key in 0..<3 { harness.send(Message(type: 1, key: UInt64(key)), from: 0, to: 1) }
        harness.advance(milliseconds: 100)
        let clocks = harness.node(1).received.map(\.clock)
        XCTAssertEqual(clocks, [1_000_000, 21_000_000, 41_000_000])
    }

    func testAPausedNodeHearsNothingUntilResumed() throws {
        let harness = try ProbeHarness()
        harness.simulator.pauseNode(3)
        harness.send(Message(type: 1, key: 1), from: 0, to: 3)
        harness.send(Message(type: 1, key: 2), from: 1, to: 3)
        harness.advance(milliseconds: 100)
        XCTAssertTrue(harness.node(3).received.isEmpty)
        harness.simulator.resumeNode(3)
        harness.advance(milliseconds: 1)
        // Both are due at the same instant: which runs first is a recorded scheduling decision.
        XCTAssertEqual(harness.node(3).received.map(\.message.key).sorted(), [1, 2], "held messages arrive on resume")
        XCTAssertEqual(harness.node(3).received.first?.clock, 100_000_000)
    }

    func testAByzantineEquivocatorSendsDifferentPayloadsToDifferentPeers() throws {
        let harness = try ProbeHarness(record: true)
        harness.simulator.makeByzantine(4, strategies: [.equivocate])
        _ = harness.simulator.withContext(of: 4) { _, context in
            context.broadcast(Message(type: 1, key: 5, body: [10, 20, 30, 40]))
        }
        harness.advance(milliseconds: 10)
        let bodies = (0..<4).map { harness.node(NodeID($0)).received.first!.message.body }
        XCTAssertEqual(Set(bodies).count, 4, "each peer got its own version: \(bodies)")
        XCTAssertFalse(bodies.contains([10, 20, 30, 40]))
        let notes = try harness.finishAndReadTrace().filter { $0.kind == .byzantine && $0.node == 4 }
        XCTAssertEqual(notes.filter { String(decoding: $0.payload, as: UTF8.self) == "equivocate" }.count, 4)
    }

    func testAByzantineForgerClaimsAnotherSender() throws {
        let harness = try ProbeHarness()
        harness.simulator.makeByzantine(4, strategies: [.forge])
        harness.send(Message(type: 1, key: 1), from: 4, to: 0)
        harness.advance(milliseconds: 10)
        let source = try XCTUnwrap(harness.node(0).received.first).source
        XCTAssertNotEqual(source, 4)
    }

    func testAByzantineWithholderSendsNothing() throws {
        let harness = try ProbeHarness()
        harness.simulator.makeByzantine(4, strategies: [.withhold])
        _ = harness.simulator.withContext(of: 4) { _, context in context.broadcast(Message(type: 1)) }
        harness.advance(milliseconds: 10)
        XCTAssertTrue((0..<4).allSatisfy { harness.node(NodeID($0)).received.isEmpty })
    }

    func testAClogHoldsMessagesUntilHealed() throws {
        var configuration = probeConfiguration()
        configuration.nemesis.suite = .network
        let harness = try ProbeHarness(configuration)
        XCTAssertTrue(harness.simulator.injectNow(.clog))
        for source in 0..<5 { for target in 0..<5 where source != target {
            harness.send(Message(type: 1, key: UInt64(source)), from: NodeID(source), to: NodeID(target))
        } }
        harness.advance(milliseconds: 100)
        let starved = (0..<5).filter { harness.node(NodeID($0)).received.count == 0 }
        XCTAssertEqual(starved.count, 1, "the clogged node hears nothing")
        harness.simulator.healAll()
        harness.send(Message(type: 1, key: 99), from: NodeID((starved[0] + 1) % 5), to: NodeID(starved[0]))
        harness.advance(milliseconds: 100)
        let keys = harness.node(NodeID(starved[0])).received.map(\.message.key)
        XCTAssertEqual(keys.count, 5, "the four held messages arrive after the heal, then the new one")
        XCTAssertTrue(keys.contains(99))
    }
}

final class CrashPointTests: XCTestCase {
    func testCrashPointsSometimesCrashAndRestartTheNodeUnderCrashSuites() throws {
        var configuration = probeConfiguration()
        configuration.nemesis.suite = .nodes
        configuration.nemesis.failureRate = .never
        let harness = try ProbeHarness(configuration, record: true)
        for _ in 0..<200 {
            _ = harness.simulator.withContext(of: 1) { _, context in context.crashPoint() }
            harness.advance(milliseconds: 60)
        }
        let events = try harness.finishAndReadTrace()
        let crashes = events.filter { $0.kind == .crash && $0.node == 1 }.count
        XCTAssertGreaterThan(crashes, 25, "about one crash point in four fires")
        XCTAssertLessThan(crashes, 80)
        XCTAssertEqual(events.filter { $0.kind == .restart && $0.node == 1 }.count, crashes, "each is restarted within 50 ms")
    }

    func testAFiredCrashPointLosesTheRestOfTheHandler() throws {
        var configuration = probeConfiguration()
        configuration.nemesis.suite = .nodes
        configuration.nemesis.failureRate = .never
        let harness = try ProbeHarness(configuration, record: true)
        // Until one fires: a crash point, then a send, a write and an fsync in the same handler.
        for round in 0..<100 {
            _ = harness.simulator.withContext(of: 1) { _, context in
                context.crashPoint()
                context.send(Message(type: 7, key: UInt64(round)), to: 2)
                try? context.write("after", [1])
                try? context.fsync()
            }
            harness.advance(milliseconds: 60)
        }
        let events = try harness.finishAndReadTrace()
        let crashes = events.filter { $0.kind == .crash && $0.node == 1 }.count
        XCTAssertGreaterThan(crashes, 0)
        let sent = events.filter { $0.kind == .send && $0.node == 1 }.count
        XCTAssertEqual(sent, 100 - crashes, "a handler that hit a firing crash point sends nothing after it")
    }

    func testPinnedCrashesFireAtTheFirstCrashPointFromTheirTimeAndDrawNothing() throws {
        var configuration = probeConfiguration()
        configuration.nemesis.suite = .nodes
        configuration.nemesis.failureRate = .never
        var interventions = Interventions()
        interventions.pinnedCrashes = [Interventions.PinnedCrash(node: 1, notBefore: 1_000_000_000, downFor: 30_000_000),
                                       Interventions.PinnedCrash(node: 2, notBefore: 500_000_000, downFor: 7_000_000)]
        configuration.interventions = interventions
        let harness = try ProbeHarness(configuration, record: true)
        for _ in 0..<40 {
            for node: NodeID in [1, 2, 3] {
                _ = harness.simulator.withContext(of: node) { _, context in context.crashPoint() }
            }
            harness.advance(milliseconds: 60)
        }
        let events = try harness.finishAndReadTrace()
        let crashes = events.filter { $0.kind == .crash }
        XCTAssertEqual(crashes.map(\.node).sorted(), [1, 2], "each pinned crash fires once, on its node only")
        for (node, notBefore, downFor) in [(UInt32(1), UInt64(1_000_000_000), UInt64(30_000_000)), (2, 500_000_000, 7_000_000)] {
            let crash = try XCTUnwrap(crashes.first { $0.node == node })
            XCTAssertGreaterThanOrEqual(crash.time, notBefore)
            XCTAssertLessThan(crash.time, notBefore + 60_000_000, "at the first crash point from its time")
            let restart = try XCTUnwrap(events.first { $0.kind == .restart && $0.node == node })
            XCTAssertEqual(restart.time - crash.time, downFor)
        }
        XCTAssertFalse(events.contains { $0.kind == .decision && $0.node == DecisionStream.nemesis
                && ($0.peer == DecisionTag.crashPoint || $0.peer == DecisionTag.crashPointRestart) },
                       "pinned crash points draw nothing")
        // Configurations without pinned crashes encode as before (no key), with them round-trip.
        let plain = String(decoding: try JSONCoding.encoder.encode(Interventions()), as: UTF8.self)
        XCTAssertFalse(plain.contains("pinnedCrashes"))
        let decoded = try JSONDecoder().decode(Interventions.self, from: JSONCoding.encoder.encode(interventions))
        XCTAssertEqual(decoded, interventions)
    }

    func testCrashPointsNeverFireWithoutCrashFaults() throws {
        var configuration = probeConfiguration()
        configuration.nemesis.suite = .network
        let harness = try ProbeHarness(configuration, record: true)
        for _ in 0..<100 {
            _ = harness.simulator.withContext(of: 1) { _, context in context.crashPoint() }
            harness.advance(milliseconds: 10)
        }
        XCTAssertFalse(try harness.finishAndReadTrace().contains { $0.kind == .crash })
    }
}
