import XCTest
@testable import TraceStore

final class RoundTripTests: XCTestCase {
    func testRandomEventsOfEveryKindReadBackEqualAcrossRandomChunkSizes() throws {
        var random = TestRandom(seed: 11)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for round in 0..<6 {
            var options = TraceStore.Options()
            options.chunkSize = [64, 200, 1_000, 4_096, 20_000, 70_000][round]
            let store = try TraceStore(path: directory.appendingPathComponent("rt\(round).trace").path, options: options)
            let events = randomEvents(count: 3_000, random: &random)
            XCTAssertEqual(Set(events.map(\.kind)).count, EventKind.allCases.count, "every kind is exercised")
            let run = try record(events, in: store, seed: UInt64(round))
            let info = try store.run(run)
            XCTAssertEqual(info.eventCount, UInt64(events.count))
            XCTAssertEqual(info.status, .complete)
            let reader = try store.reader(run: run)
            XCTAssertEqual(try reader.allEvents(), events, "chunk size \(options.chunkSize)")
            XCTAssertTrue(try store.verify().ok)
        }
    }

    func testSeekByEventNumberReturnsThatEvent() throws {
        var random = TestRandom(seed: 12)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = TraceStore.Options()
        options.chunkSize = 512
        let store = try TraceStore(path: directory.appendingPathComponent("seek.trace").path, options: options)
        let events = randomEvents(count: 5_000, random: &random)
        let run = try record(events, in: store)
        let reader = try store.reader(run: run)
        XCTAssertGreaterThan(reader.info.chunkCount, 20)
        for _ in 0..<400 {
            let number = random.below(UInt64(events.count))
            XCTAssertEqual(try reader.event(at: number), events[Int(number)], "event \(number)")
        }
        XCTAssertEqual(try reader.event(at: 0), events.first)
        XCTAssertEqual(try reader.event(at: UInt64(events.count - 1)), events.last)
        XCTAssertNil(try reader.event(at: UInt64(events.count)))
        let slice = try reader.events(100..<140)
        XCTAssertEqual(slice.map(\.event), Array(events[100..<140]))
        XCTAssertEqual(slice.map(\.number), Array(100..<140))
    }

    func testSeekByTimeReturnsTheFirstEventAtOrAfterIt() throws {
        var random = TestRandom(seed: 13)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = TraceStore.Options()
        options.chunkSize = 300
        let store = try TraceStore(path: directory.appendingPathComponent("time.trace").path, options: options)
        // Many events share a time, so chunk boundaries fall inside runs of equal times.
        var events: [Event] = []
        var time: UInt64 = 5
        for index in 0..<4_000 {
            if random.below(6) == 0 { time += random.below(3) * 1_000 + 1 }
            events.append(Event(kind: .send, time: time, node: UInt32(index % 5), peer: 1, id: UInt64(index)))
        }
        let run = try record(events, in: store)
        let reader = try store.reader(run: run)
        for _ in 0..<300 {
            let target = random.below(time + 2_000)
            let expected = events.firstIndex { $0.time >= target }
            let found = try reader.firstEvent(atOrAfter: target)
            XCTAssertEqual(found?.number, expected.map { UInt64($0) }, "time \(target)")
            XCTAssertEqual(found?.event, expected.map { events[$0] })
        }
    }

    func testManyRunsInOneStoreStayApartAndListInOrder() throws {
        var random = TestRandom(seed: 14)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = TraceStore.Options()
        options.chunkSize = 256
        let store = try TraceStore(path: directory.appendingPathComponent("many.trace").path, options: options)
        var all: [[Event]] = []
        for seed in 0..<5 {
            let events = randomEvents(count: 200 + seed * 50, random: &random)
            _ = try record(events, in: store, seed: UInt64(seed))
            all.append(events)
        }
        let runs = try store.runs()
        XCTAssertEqual(runs.map(\.seed), [0, 1, 2, 3, 4])
        for (index, info) in runs.enumerated() {
            XCTAssertEqual(try store.reader(run: info.id).allEvents(), all[index])
        }
        XCTAssertEqual(try store.resolveRun("latest").id, runs.last?.id)
        XCTAssertThrowsError(try store.resolveRun("latest-failure"))
        XCTAssertThrowsError(try store.resolveRun("999")) { error in
            XCTAssertEqual((error as? TraceStoreError)?.exitCode, 64)
        }
        try store.deleteRun(runs[1].id)
        XCTAssertEqual(try store.runs().count, 4)
        XCTAssertTrue(try store.verify().ok)
    }

    func testCheckpointsAreFoundAtOrBeforeAnEvent() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try TraceStore(path: directory.appendingPathComponent("cp.trace").path)
        let recorder = try store.beginRun(seed: 1, configuration: "{}", toolVersion: "test")
        for index in 0..<100 { try recorder.append(Event(kind: .log, time: UInt64(index), node: 1)) }
        try recorder.putCheckpoint(atEvent: 10, state: [1])
        try recorder.putCheckpoint(atEvent: 50, state: [2])
        try recorder.finish(verdict: "pass", virtualEndTime: 100)
        XCTAssertNil(try store.checkpoint(run: recorder.runID, atOrBefore: 9)?.0)
        XCTAssertEqual(try store.checkpoint(run: recorder.runID, atOrBefore: 10)?.1, [1])
        XCTAssertEqual(try store.checkpoint(run: recorder.runID, atOrBefore: 49)?.1, [1])
        XCTAssertEqual(try store.checkpoint(run: recorder.runID, atOrBefore: 80)?.0, 50)
        XCTAssertEqual(try store.checkpointNumbers(run: recorder.runID), [10, 50])
    }

    func testATinyMapGrowsWhileWritingFarPastIt() throws {
        var random = TestRandom(seed: 15)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var options = TraceStore.Options()
        options.initialMapSize = 64 << 10
        options.chunkSize = 16 << 10
        let path = directory.appendingPathComponent("tiny.trace").path
        let store = try TraceStore(path: path, options: options)
        // Incompressible payloads: about 8 MiB, over a hundred times the initial map.
        var events: [Event] = []
        for index in 0..<2_000 {
            events.append(Event(kind: .send, time: UInt64(index), node: 1, peer: 2, id: UInt64(index), payload: random.bytes(4_096)))
        }
        let run = try record(events, in: store)
        XCTAssertGreaterThan(store.mapGrowths, 3)
        XCTAssertEqual(try store.reader(run: run).allEvents(), events)
        XCTAssertTrue(try store.verify().ok)
    }

    func testReopeningAStoreKeepsItsRuns() throws {
        var random = TestRandom(seed: 16)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("reopen.trace").path
        let events = randomEvents(count: 500, random: &random)
        do {
            let store = try TraceStore(path: path)
            _ = try record(events, in: store)
        }
        var options = TraceStore.Options()
        options.readOnly = true
        let store = try TraceStore(path: path, options: options)
        XCTAssertEqual(try store.reader(run: 1).allEvents(), events)
    }
}

final class PathPartsTests: XCTestCase {
    func testPathsSplitWithoutFoundationsOneCharacterCrash() {
        XCTAssertTrue(PathParts.split("s") == ("", "s"))
        XCTAssertTrue(PathParts.split("/tmp/s") == ("/tmp", "s"))
        XCTAssertTrue(PathParts.split("/s") == ("/", "s"))
        XCTAssertTrue(PathParts.split("a/b/report.md") == ("a/b", "report.md"))
        XCTAssertTrue(PathParts.split("dir/") == ("", "dir"))
    }
}
