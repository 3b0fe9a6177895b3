import XCTest
@testable import TraceStore

final class DamageTests: XCTestCase {
    /// Records three runs, then flips bytes of one committed chunk of run 2 in the file itself.
    private func damagedStore(flipAt position: (Int) -> Int) throws -> (path: String, chunk: UInt32, events: [[Event]]) {
        var random = TestRandom(seed: 21)
        let directory = temporaryDirectory()
        let path = directory.appendingPathComponent("damaged.trace").path
        var options = TraceStore.Options()
        options.chunkSize = 2_048
        let events = (1...3).map { _ in randomEvents(count: 2_000, random: &random) }
        let damagedChunk: UInt32 = 2
        var chunkBytes: [UInt8] = []
        do {
            let store = try TraceStore(path: path, options: options)
            for seed in 1...3 { _ = try record(events[seed - 1], in: store, seed: UInt64(seed)) }
            chunkBytes = try XCTUnwrap(store.rawChunk(run: 2, chunk: damagedChunk))
        }
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        let range = try XCTUnwrap(file.range(of: Data(chunkBytes)), "the chunk's bytes are in the file")
        let offset = range.lowerBound + position(chunkBytes.count)
        file[offset] ^= 0x5A
        try file.write(to: URL(fileURLWithPath: path))
        return (path, damagedChunk, events)
    }

    func testVerifyNamesTheRunAndChunkWhoseFrameWasDamaged() throws {
        let (path, chunk, events) = try damagedStore { $0 / 2 }
        let store = try TraceStore(path: path)
        let report = try store.verify()
        XCTAssertFalse(report.ok)
        XCTAssertEqual(report.problems.count, 1, "\(report.problems)")
        XCTAssertEqual(report.problems.first?.run, 2)
        XCTAssertEqual(report.problems.first?.chunk, chunk)
        // Reading the damaged run raises a typed error; the others read back whole.
        XCTAssertThrowsError(try store.reader(run: 2).allEvents()) { error in
            guard case .corruptChunk(_, 2, chunk, _)? = error as? TraceStoreError else {
                return XCTFail("expected corruptChunk of run 2, chunk \(chunk), got \(error)")
            }
            XCTAssertEqual((error as? TraceStoreError)?.exitCode, 65)
        }
        XCTAssertEqual(try store.reader(run: 1).allEvents(), events[0])
        XCTAssertEqual(try store.reader(run: 3).allEvents(), events[2])
        // Events before the damaged chunk still stream.
        var readable = 0
        XCTAssertThrowsError(try store.reader(run: 2).forEach { _, _ in readable += 1; return true })
        XCTAssertGreaterThan(readable, 0)
    }

    func testDamageToAChunkHeaderIsReportedNotTrapped() throws {
        for position in [0, 1, 2, 3] {
            let (path, chunk, _) = try damagedStore { _ in position }
            let store = try TraceStore(path: path)
            let report = try store.verify()
            XCTAssertFalse(report.ok, "flip at header byte \(position)")
            XCTAssertTrue(report.problems.contains { $0.run == 2 && $0.chunk == chunk }, "\(report.problems)")
        }
    }

    func testRandomBytesNeverTrapTheDecoder() throws {
        var random = TestRandom(seed: 22)
        let scratch = EventDecoder.Scratch()
        for _ in 0..<3_000 {
            let bytes = random.bytes(Int(random.below(200)))
            // Both layouts a chunk header may name.
            for version in ChunkHeader.readableVersions {
                bytes.withUnsafeBytes { raw in
                    guard let decoder = try? EventDecoder(bytes: raw, baseTime: random.next(), scratch: scratch, version: version) else { return }
                    var steps = 0
                    while steps < 1_000, (try? decoder.next()) != nil { steps += 1 }
                }
            }
        }
    }

    func testRandomStreamsBehindAValidSectionTableNeverTrapTheDecoder() throws {
        // Random bytes rarely get past a version 2 section table; these do, so the events' decoding
        // itself meets garbage: kinds, flags, varints, payload lengths and differences.
        var random = TestRandom(seed: 24)
        let scratch = EventDecoder.Scratch()
        var decodedSome = 0
        for _ in 0..<2_000 {
            let kinds = UInt32(truncatingIfNeeded: random.next()) & 0x03FF_FFFE
            let differences = UInt32(truncatingIfNeeded: random.next()) & kinds
            var lengths = [Int(1 + random.below(60)), Int(random.below(80))]
            for _ in 0..<kinds.nonzeroBitCount * 5 { lengths.append(Int(random.below(40))) }
            var table: [UInt8] = []
            Bytes.appendVarint([1, 1_000, 1_000_000][Int(random.below(3))], to: &table)
            Bytes.appendVarint(UInt64(lengths[0]), to: &table)
            Bytes.appendVarint(UInt64(lengths[1]), to: &table)
            Bytes.appendVarint(UInt64(kinds), to: &table)
            Bytes.appendVarint(UInt64(differences), to: &table)
            for length in lengths.dropFirst(2) { Bytes.appendVarint(UInt64(length), to: &table) }
            let chunk = table + random.bytes(lengths.reduce(0, +))
            chunk.withUnsafeBytes { raw in
                guard let decoder = try? EventDecoder(bytes: raw, baseTime: random.next(), scratch: scratch, version: 2) else {
                    XCTFail("a well-formed section table is accepted")
                    return
                }
                var steps = 0
                while steps < 1_000, (try? decoder.next()) != nil { steps += 1 }
                decodedSome += steps > 0 ? 1 : 0
            }
        }
        XCTAssertGreaterThan(decodedSome, 100, "garbage streams decode some events before failing")
    }

    func testDamagedEncodingsOfRealChunksAreCaught() throws {
        var random = TestRandom(seed: 23)
        let encoder = EventEncoder()
        for event in randomEvents(count: 300, random: &random) { encoder.append(event) }
        let raw = Array(encoder.finish())
        let scratch = EventDecoder.Scratch()
        var caught = 0
        for _ in 0..<500 {
            var damaged = raw
            let index = Int(random.below(UInt64(damaged.count)))
            damaged[index] ^= UInt8(1 + random.below(255))
            if random.below(4) == 0 { damaged.removeLast(Int(random.below(UInt64(damaged.count)))) }
            damaged.withUnsafeBytes { bytes in
                do {
                    let decoder = try EventDecoder(bytes: bytes, baseTime: 0, scratch: scratch)
                    var count = 0
                    while try decoder.next() != nil { count += 1 }
                    if count != 300 || !decoder.consumedEverything { caught += 1 }
                } catch {
                    caught += 1
                }
            }
        }
        // Some flips (inside payloads, say) decode to other valid events; the rest must be caught.
        XCTAssertGreaterThan(caught, 100)
    }

    func testChunkHeadersClaimingHugeSizesAreRejected() throws {
        var header = ChunkHeader(eventCount: 10, rawSize: ChunkHeader.maxRawBytes + 1, firstEventNumber: 0, baseTime: 0, lastTime: 1).encoded()
        header.append(contentsOf: [0x28, 0xB5, 0x2F, 0xFD])
        XCTAssertThrowsError(try header.withUnsafeBytes { try ChunkHeader.parse($0) })
        let tooMany = ChunkHeader(eventCount: 1_000, rawSize: 10, firstEventNumber: 0, baseTime: 0, lastTime: 1).encoded()
        XCTAssertThrowsError(try tooMany.withUnsafeBytes { try ChunkHeader.parse($0) })
    }

    func testZstdRefusesAFrameLargerThanTheChunkHeaderSays() throws {
        let data = [UInt8](repeating: 7, count: 10_000)
        let frame = try ZstdCompressor(level: 3).compress(data)
        XCTAssertEqual(try ZstdDecompressor().decompress(frame, expectedSize: 10_000), data)
        XCTAssertThrowsError(try ZstdDecompressor().decompress(frame, expectedSize: 100))
        XCTAssertThrowsError(try ZstdDecompressor().decompress(Array(frame.dropLast(3)), expectedSize: 10_000))
        XCTAssertThrowsError(try ZstdDecompressor().decompress([1, 2, 3, 4, 5, 6], expectedSize: 10))
    }

    func testAFileThatIsNotAStoreIsATypedError() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("not.trace").path
        try Data(repeating: 0x41, count: 100_000).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TraceStore(path: path)) { error in
            XCTAssertEqual((error as? TraceStoreError)?.exitCode, 65, "\(error)")
        }
        var options = TraceStore.Options()
        options.readOnly = true
        XCTAssertThrowsError(try TraceStore(path: directory.appendingPathComponent("missing.trace").path, options: options)) { error in
            XCTAssertEqual(error as? TraceStoreError, .storeMissing(path: directory.appendingPathComponent("missing.trace").path))
        }
    }

    func testAStoreFileCreatedButNotYetSetUpIsSetUpByWhoeverOpensItNext() throws {
        // Another process may have created the file and not yet set it up: the store is set up in
        // one write transaction, by whichever opener holds LMDB's writer lock first.
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("young.trace").path
        _ = try smallEnvironment(at: path)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let store = try TraceStore(path: path)
        var random = TestRandom(seed: 3)
        let events = randomEvents(count: 200, random: &random)
        let run = try record(events, in: store)
        XCTAssertEqual(try store.reader(run: run).allEvents(), events)
        XCTAssertTrue(try TraceStore(path: path).verify().ok, "a second opener finds the store whole")
    }

    func testSomebodyElsesLMDBFileIsNotTakenOver() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("foreign.mdb").path
        do {
            let environment = try smallEnvironment(at: path)
            let database = try environment.database(named: "theirs", create: true)
            try environment.write { (txn) throws(LMDBError) in try txn.put(database, key: [1], value: [2]) }
        }
        XCTAssertThrowsError(try TraceStore(path: path)) { error in
            XCTAssertEqual((error as? TraceStoreError)?.exitCode, 65, "\(error)")
        }
        // Nothing of ours was added to it.
        var options = LMDBEnvironment.Options()
        options.readOnly = true
        let environment = try LMDBEnvironment(path: path, options: options)
        XCTAssertThrowsError(try environment.database(named: "meta", create: false))
        let theirs = try environment.database(named: "theirs", create: false)
        XCTAssertEqual(try environment.read { (txn) throws(LMDBError) in try txn.get(theirs, key: [1]) }, [2])
    }

    /// A plain LMDB environment file, as another program (or a store still being set up) leaves it.
    private func smallEnvironment(at path: String) throws -> LMDBEnvironment {
        var options = LMDBEnvironment.Options()
        options.initialMapSize = 1 << 20
        return try LMDBEnvironment(path: path, options: options)
    }
}
