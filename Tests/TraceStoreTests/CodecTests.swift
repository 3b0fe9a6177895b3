import XCTest
@testable import TraceStore

final class CodecTests: XCTestCase {
    /// Protocol-like traffic: messages whose payloads repeat with counters moved on, random draws,
    /// timers, and a few payloads too long to be stored as differences.
    private func protocolEvents(count: Int, random: inout TestRandom) -> [Event] {
        var events: [Event] = []
        var time: UInt64 = 5_000
        var message: UInt64 = 0
        var term: UInt64 = 1
        for index in 0..<count {
            time += random.below(40) * 1_000
            switch random.below(6) {
            case 0, 1:
                message += 1
                if random.below(40) == 0 { term += 1 }
                var payload: [UInt8] = [UInt8(random.below(3))]
                Bytes.appendVarint(term, to: &payload)
                Bytes.appendVarint(UInt64(index), to: &payload)
                payload += [0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45]
                events.append(Event(kind: .send, time: time, node: UInt32(random.below(5)), peer: UInt32(random.below(5)), id: message, payload: payload))
            case 2:
                events.append(Event(kind: .deliver, time: time, node: UInt32(random.below(5)), peer: UInt32(random.below(5)),
                                    id: message - min(message, random.below(8))))
            case 3:
                events.append(Event(kind: .decision, time: time, node: 1 + UInt32(random.below(5)), peer: 3, id: random.below(4_000)))
            case 4:
                events.append(Event(kind: .timerSet, time: time, node: UInt32(random.below(5)), peer: 2, id: UInt64(index), payload: [0x80, 0xB5, 0x18]))
            default:
                events.append(Event(kind: .log, time: time, node: UInt32(random.below(5)), payload: random.bytes(256 + Int(random.below(40)))))
            }
        }
        return events
    }

    private func decodeAll(_ raw: UnsafeRawBufferPointer, baseTime: UInt64, version: UInt8 = ChunkHeader.version) throws -> [Event] {
        let decoder = try EventDecoder(bytes: raw, baseTime: baseTime, scratch: EventDecoder.Scratch(), version: version)
        var events: [Event] = []
        while let event = try decoder.next() { events.append(event.materialize()) }
        XCTAssertTrue(decoder.consumedEverything)
        return events
    }

    /// The section table's mask of kinds whose payloads are stored as differences.
    private func differenceMask(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        var offset = 0
        for _ in 0..<4 { _ = Bytes.readVarint(raw, at: &offset) }
        return UInt32(Bytes.readVarint(raw, at: &offset)!)
    }

    func testPayloadsWithMovingCountersAreStoredAsDifferencesAndReadBackEqual() throws {
        var random = TestRandom(seed: 5)
        let events = protocolEvents(count: 4_000, random: &random)
        let encoder = EventEncoder()
        for event in events { encoder.append(event) }
        let raw = encoder.finish()
        let mask = differenceMask(raw)
        XCTAssertNotEqual(mask & 1 << UInt32(EventKind.send.rawValue), 0, "repeating messages are stored as differences")
        XCTAssertEqual(mask & 1 << UInt32(EventKind.log.rawValue), 0, "random payloads are stored as they are")
        XCTAssertEqual(try decodeAll(raw, baseTime: encoder.baseTime), events)
        // Every stream boundary lies inside the chunk, ascending, and a zstd frame cut into blocks
        // there decompresses to the same bytes.
        XCTAssertEqual(encoder.boundaries, encoder.boundaries.sorted())
        XCTAssertTrue(encoder.boundaries.allSatisfy { $0 > 0 && $0 <= raw.count })
        var frame: [UInt8] = []
        try ZstdCompressor(level: 3).compress(raw, boundaries: encoder.boundaries, appendingTo: &frame)
        XCTAssertEqual(try ZstdDecompressor().decompress(frame, expectedSize: raw.count), Array(raw))
        let whole = try ZstdCompressor(level: 3).compress(Array(raw))
        XCTAssertLessThan(frame.count, whole.count, "a block per stream packs smaller than one block for all")
    }

    func testAPayloadIsReadFromItsOwnChunkAfterTheEncoderIsReused() throws {
        var random = TestRandom(seed: 6)
        let first = protocolEvents(count: 500, random: &random)
        let second = protocolEvents(count: 500, random: &random)
        let encoder = EventEncoder()
        for event in first { encoder.append(event) }
        let firstRaw = Array(encoder.finish())
        let firstBase = encoder.baseTime
        encoder.reset()
        for event in second { encoder.append(event) }
        let secondRaw = Array(encoder.finish())
        // Differences restart at every chunk: each decodes on its own, in either order.
        try secondRaw.withUnsafeBytes { XCTAssertEqual(try decodeAll($0, baseTime: encoder.baseTime), second) }
        try firstRaw.withUnsafeBytes { XCTAssertEqual(try decodeAll($0, baseTime: firstBase), first) }
    }

    /// Chunks written before format 2 still read: a writer of the documented version 1 layout,
    /// independent of the encoder.
    func testChunksOfFormatVersionOneStillDecode() throws {
        var random = TestRandom(seed: 7)
        let events = protocolEvents(count: 600, random: &random) + randomEvents(count: 300, random: &random).map {
            var event = $0
            event.time = 0
            return event
        }
        var time = events[0].time
        var ordered: [Event] = []
        for var event in events {
            time = max(time, event.time)
            event.time = time
            ordered.append(event)
        }
        var heads: [UInt8] = [], times: [UInt8] = [], nodes: [UInt8] = [], peers: [UInt8] = [], ids: [UInt8] = [], payloads: [UInt8] = []
        var previousIDs = [UInt64](repeating: 0, count: 256)
        var last = ordered[0].time
        for event in ordered {
            var head = event.kind.rawValue
            Bytes.appendVarint(event.time - last, to: &times)
            last = event.time
            Bytes.appendVarint(UInt64(event.node), to: &nodes)
            if event.peer != 0 {
                head |= 0x20
                Bytes.appendVarint(UInt64(event.peer), to: &peers)
            }
            let context = Int(event.kind.rawValue) << 3 | Int(event.peer & 7)
            if event.id != previousIDs[context] {
                head |= 0x80
                Bytes.appendVarint(zigzag(Int64(bitPattern: event.id &- previousIDs[context])), to: &ids)
                previousIDs[context] = event.id
            }
            if !event.payload.isEmpty {
                head |= 0x40
                Bytes.appendVarint(UInt64(event.payload.count), to: &payloads)
                payloads += event.payload
            }
            heads.append(head)
        }
        var raw: [UInt8] = []
        Bytes.appendVarint(1, to: &raw)  // quantum
        for column in [heads, times, nodes, peers, ids] { Bytes.appendVarint(UInt64(column.count), to: &raw) }
        raw += heads + times + nodes + peers + ids + payloads
        try raw.withUnsafeBytes { XCTAssertEqual(try decodeAll($0, baseTime: ordered[0].time, version: 1), ordered) }
        // The same bytes read as version 2 are not taken for events.
        XCTAssertThrowsError(try raw.withUnsafeBytes { try decodeAll($0, baseTime: ordered[0].time, version: 2) })
    }

    func testKindsAreNumberedWithoutGapsUpToTheDecodersLimit() {
        XCTAssertEqual(EventKind.allCases.map(\.rawValue), Array(1...EventCodec.lastKind))
        for kind in EventKind.allCases { XCTAssertEqual(unsafeBitCast(kind.rawValue - 1, to: EventKind.self), kind) }
    }

    func testTheKindMasksNameTheirKinds() {
        func mask(_ kinds: [EventKind]) -> UInt32 { kinds.reduce(0) { $0 | 1 << UInt32($1.rawValue) } }
        XCTAssertEqual(EventCodec.peerKeyedKinds, mask([.decision, .timerSet, .timerFire, .clientComplete, .diskFault, .resourcePressure]))
        XCTAssertEqual(EventCodec.rawIDKinds, mask([.decision, .stateDigest]))
        XCTAssertEqual(EventCodec.sentIDKinds, mask([.deliver, .drop, .duplicate]))
        XCTAssertEqual(EventCodec.sendContext, Int(EventKind.send.rawValue) << 8)
    }

    func testTheEntropyEstimateOrdersSkewedBelowUniformBytes() {
        let skewed = [UInt8](repeating: 0, count: 900) + (0..<100).map { UInt8($0) }
        let uniform = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let skewedSize = skewed.withUnsafeBytes { EventCodec.packedSizeEstimate($0) }
        let uniformSize = uniform.withUnsafeBytes { EventCodec.packedSizeEstimate($0) }
        XCTAssertLessThan(skewedSize * 3, uniformSize)
        // 1,000 bytes spread over all 256 values: close to 8 bits each (in 1/256 bits).
        XCTAssertEqual(Double(uniformSize) / 256 / 1_000, 8, accuracy: 0.15)
        XCTAssertEqual(EventCodec.log2Fixed(1), 0)
        XCTAssertEqual(EventCodec.log2Fixed(1 << 20), 20 << 8)
    }
}
