/// The binary event format of a chunk's raw (decompressed) bytes. Version 2 is written; versions 1
/// and 2 are read.
///
/// Version 2 lays the chunk out in streams, so that zstd sees like next to like, and the recorder
/// starts a new zstd block at each large stream (`EventEncoder.boundaries`), so each gets its own
/// entropy tables:
///
///     section table: varint time quantum, varint heads length, varint nodes length, varint mask of
///               the kinds present, varint mask of the kinds whose payloads are differences, then
///               per present kind (ascending) the varint lengths of its five streams
///     heads:    one byte per event: kind (low 5 bits) and presence flags for peer, id delta, payload
///     nodes:    varint node
///     then per present kind, its streams:
///       times:    varint delta of virtual time from the previous event (of any kind), divided by
///                 the quantum
///       peers:    varint peer, for events flagged with one
///       ids:      zigzag varint delta of the id from the previous id in the same context, when
///                 flagged. The context is the kind, and for kinds whose peer names a stream (a
///                 decision's type, a timer's tag, an outcome, a resource) also the peer's low byte
///       lengths:  varint payload length, for events flagged with a payload
///       payloads: the bytes. For the kinds of the difference mask, a payload shorter than 256 bytes
///                 is stored as its bytewise difference from the previous payload of the same kind
///                 and length in the chunk, if any: a message that repeats another with a counter
///                 moved on is mostly zeros. The encoder picks differences for a kind when their
///                 order-0 entropy is at least 10 % below the plain bytes'.
///
/// Version 1 kept one stream per field (heads, times, nodes, peers, ids, then payloads with their
/// lengths), ids in the context of the kind and the peer's low 3 bits, and payloads as they are.
///
/// Deltas restart at every chunk (time from the chunk's base time, ids from zero, payloads plain),
/// so each chunk decodes on its own. The quantum is the largest of 1, 10³, 10⁶ ns dividing every
/// delta of the chunk.
public enum EventCodec {
    /// The store's format version (`meta`): 2 since chunks may be written in version 2.
    public static let formatVersion: UInt32 = 2
    /// Store format versions this build reads.
    public static let readableFormatVersions: Set<String> = ["1", "2"]
    static let kindMask: UInt8 = 0x1F
    static let hasPeer: UInt8 = 0x20
    static let hasPayload: UInt8 = 0x40
    static let hasIDDelta: UInt8 = 0x80
    static let kindCount = 32
    /// The highest kind number (`EventKind` numbers its cases 1…lastKind without gaps).
    static let lastKind: UInt8 = 25
    /// Streams per kind in version 2: times, peers, ids, lengths, payloads.
    static let streamsPerKind = 5
    static let timesStream = 0, peersStream = 1, idsStream = 2, lengthsStream = 3, payloadsStream = 4
    /// Payloads shorter than this are stored as differences from the previous one of their length.
    static let deltaLengthLimit = 256
    /// Streams shorter than this share a zstd block with the stream before them.
    static let blockMinimum = 256
    /// Id contexts: a kind and a peer byte.
    static let contextCount = kindCount << 8

    /// Kinds whose peer names a stream of ids of its own (version 2).
    /// decision (21), timer-set (7), timer-fire (8), client-complete (20), disk-fault (16),
    /// resource-pressure (17); a literal, so the hot paths read no lazily initialized global.
    static let peerKeyedKinds: UInt32 = 1 << 21 | 1 << 7 | 1 << 8 | 1 << 20 | 1 << 16 | 1 << 17

    /// decision (21), state-digest (22): kinds whose ids are drawn or hashed values, stored as they
    /// are (a difference of two random values spreads wider than either).
    static let rawIDKinds: UInt32 = 1 << 21 | 1 << 22

    /// deliver (4), drop (5), duplicate (6): their ids name a message sent earlier, predicted by the
    /// last send's id (a message's age in sends spreads less than the gap between two deliveries).
    static let sentIDKinds: UInt32 = 1 << 4 | 1 << 5 | 1 << 6
    static let sendContext = Int(3) << 8

    /// The context an id is predicted in, version 2.
    @inline(__always)
    static func context(_ kind: UInt8, _ peer: UInt32) -> Int {
        peerKeyedKinds & (1 << UInt32(kind)) != 0 ? Int(kind) << 8 | Int(peer & 0xFF) : Int(kind) << 8
    }

    /// Order-0 entropy of `bytes` in 1/256 bits, in integer arithmetic (the same on every machine):
    /// a cheap guess at how small entropy coding can pack them.
    static func packedSizeEstimate(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard bytes.count > 1 else { return UInt64(bytes.count) << 11 }
        var counts = [Int](repeating: 0, count: 256)
        for byte in bytes { counts[Int(byte)] += 1 }
        // n·log2(n) − Σ c·log2(c)
        var sum = UInt64(bytes.count) * log2Fixed(UInt64(bytes.count))
        for count in counts where count > 1 { sum -= UInt64(count) * log2Fixed(UInt64(count)) }
        return sum
    }

    /// log2(x) in 1/256 units, for x ≥ 1: the integer part from the highest bit, the fraction
    /// interpolated linearly from the bits below it.
    static func log2Fixed(_ x: UInt64) -> UInt64 {
        let high = UInt64(63 - x.leadingZeroBitCount)
        let rest = x - (1 << high)
        let fraction = high >= 8 ? rest >> (high - 8) : rest << (8 - high)
        return high << 8 + fraction
    }

    /// The context an id is predicted in, version 1: kind and the low three bits of peer.
    @inline(__always)
    static func contextV1(_ kind: UInt8, _ peer: UInt32) -> Int { Int(kind) << 3 | Int(peer & 7) }
}

@inline(__always)
func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

@inline(__always)
func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

/// A growable byte buffer with unchecked appends after an explicit `reserve`.
struct ByteColumn {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = Swift.max(capacity, 64)
        self.base = .allocate(capacity: self.capacity)
    }

    func free() { base.deallocate() }

    @inline(__always)
    mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        base[count] = value
        count += 1
    }

    /// Appends a varint; the caller has reserved 10 bytes.
    @inline(__always)
    mutating func varint(_ value: UInt64) { ByteColumn.write(varint: value, to: base, at: &count) }

    /// Writes a varint at `base[offset]` and advances `offset`; the caller has made room.
    @inline(__always)
    static func write(varint value: UInt64, to base: UnsafeMutablePointer<UInt8>, at offset: inout Int) {
        var v = value
        while v >= 0x80 {
            base[offset] = UInt8(truncatingIfNeeded: v) | 0x80
            offset += 1
            v >>= 7
        }
        base[offset] = UInt8(truncatingIfNeeded: v)
        offset += 1
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let source = bytes.baseAddress {
            (base + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        }
        count += bytes.count
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Encodes events into the streams of one chunk (format version 2). Owns its memory; not
/// thread-safe.
public final class EventEncoder {
    private var heads: ByteColumn
    private var nodes: ByteColumn
    /// `kindCount * streamsPerKind` streams, kind-major.
    private let streams: UnsafeMutablePointer<ByteColumn>
    /// Per kind: its payloads as they are (the references of the differences, and the stream when
    /// differences would not pay).
    private let originals: UnsafeMutablePointer<ByteColumn>
    /// Per kind and length: offset in `originals` of the kind's last payload of that length, or -1.
    private let lastPayload: UnsafeMutablePointer<Int>
    private var assembled: ByteColumn
    private var deltas: UnsafeMutablePointer<UInt64>
    private var deltaCapacity: Int
    private let previousIDs: UnsafeMutablePointer<UInt64>
    private var deltasDivisibleByMicro = true
    private var deltasDivisibleByMilli = true
    /// Kinds seen since the last reset, as a bit mask.
    private var kindsPresent: UInt32 = 0
    /// Events written since the last reset.
    public private(set) var eventCount = 0
    /// The time of the first event (the chunk's base) and of the last.
    public private(set) var baseTime: UInt64 = 0
    public private(set) var lastTime: UInt64 = 0
    /// After `finish`: the offsets in its bytes where a new zstd block should start (the large
    /// streams' starts).
    public private(set) var boundaries: [Int] = []

    public init(capacity: Int = 128 << 10) {
        heads = ByteColumn(capacity: capacity / 4)
        nodes = ByteColumn(capacity: capacity / 4)
        let streamCount = EventCodec.kindCount * EventCodec.streamsPerKind
        streams = .allocate(capacity: streamCount)
        for index in 0..<streamCount { (streams + index).initialize(to: ByteColumn(capacity: 64)) }
        originals = .allocate(capacity: EventCodec.kindCount)
        for index in 0..<EventCodec.kindCount { (originals + index).initialize(to: ByteColumn(capacity: 64)) }
        lastPayload = .allocate(capacity: EventCodec.kindCount * EventCodec.deltaLengthLimit)
        lastPayload.initialize(repeating: -1, count: EventCodec.kindCount * EventCodec.deltaLengthLimit)
        assembled = ByteColumn(capacity: capacity * 2)
        deltaCapacity = Swift.max(capacity / 4, 64)
        deltas = .allocate(capacity: deltaCapacity)
        previousIDs = .allocate(capacity: EventCodec.contextCount)
        previousIDs.initialize(repeating: 0, count: EventCodec.contextCount)
    }

    deinit {
        for column in [heads, nodes, assembled] { column.free() }
        for index in 0..<EventCodec.kindCount * EventCodec.streamsPerKind { streams[index].free() }
        streams.deinitialize(count: EventCodec.kindCount * EventCodec.streamsPerKind)
        streams.deallocate()
        for index in 0..<EventCodec.kindCount { originals[index].free() }
        originals.deinitialize(count: EventCodec.kindCount)
        originals.deallocate()
        lastPayload.deallocate()
        deltas.deallocate()
        previousIDs.deallocate()
    }

    /// Forgets everything written; the next event starts a new chunk.
    public func reset() {
        heads.count = 0
        nodes.count = 0
        for kind in 0..<EventCodec.kindCount where kindsPresent & (1 << UInt32(kind)) != 0 {
            for stream in 0..<EventCodec.streamsPerKind { streams[kind * EventCodec.streamsPerKind + stream].count = 0 }
            if originals[kind].count > 0 {
                originals[kind].count = 0
                (lastPayload + kind * EventCodec.deltaLengthLimit).update(repeating: -1, count: EventCodec.deltaLengthLimit)
            }
            (previousIDs + (kind << 8)).update(repeating: 0, count: 256)
        }
        assembled.count = 0
        deltasDivisibleByMicro = true
        deltasDivisibleByMilli = true
        kindsPresent = 0
        eventCount = 0
        baseTime = 0
        lastTime = 0
        boundaries = []
    }

    private func growDeltas() {
        let newCapacity = deltaCapacity * 2
        let grown = UnsafeMutablePointer<UInt64>.allocate(capacity: newCapacity)
        grown.update(from: deltas, count: eventCount)
        deltas.deallocate()
        deltas = grown
        deltaCapacity = newCapacity
    }

    /// Encodes one event. `time` must not be earlier than the previous event's.
    /// - Complexity: O(payload size).
    public func append(kind: EventKind, time: UInt64, node: UInt32, peer: UInt32, id: UInt64, payload: UnsafeRawBufferPointer) {
        withUnsafePointer(to: RecordBuffer.Record(time: time, id: id, node: node, peer: peer, payloadLength: UInt32(payload.count), kind: kind)) {
            append(records: $0, count: 1, payloads: payload.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Encodes `count` events, their payloads laid end to end at `payloads`. The hot state lives
    /// in locals for the loop: stores through byte pointers could otherwise alias it, and every
    /// event would reload it from memory.
    func append(records: UnsafePointer<RecordBuffer.Record>, count: Int, payloads: UnsafePointer<UInt8>?) {
        guard count > 0 else { return }
        if eventCount == 0 {
            baseTime = records[0].time
            lastTime = records[0].time
        }
        heads.reserve(count)
        nodes.reserve(count * 5)
        while eventCount + count > deltaCapacity { growDeltas() }
        let headsBase = heads.base, nodesBase = nodes.base, deltas = self.deltas
        let streams = self.streams, originals = self.originals, lastPayload = self.lastPayload, previousIDs = self.previousIDs
        var headsCount = heads.count, nodesCount = nodes.count, events = eventCount, last = lastTime
        var micro = deltasDivisibleByMicro, milli = deltasDivisibleByMilli, present = kindsPresent
        var offset = 0
        for index in 0..<count {
            let record = records[index]
            let time = record.time
            precondition(time >= last, "event time went backwards: \(time) after \(last)")
            let delta = time &- last
            if delta != 0 && micro {
                if delta % 1_000 != 0 { micro = false; milli = false }
                else if delta % 1_000_000 != 0 { milli = false }
            }
            deltas[events] = delta
            let kindIndex = Int(record.kind.rawValue)
            let bit: UInt32 = 1 << UInt32(kindIndex)
            present |= bit
            let kindStreams = streams + kindIndex * EventCodec.streamsPerKind
            var head = record.kind.rawValue
            let peer = record.peer, id = record.id
            if peer != 0 {
                head |= EventCodec.hasPeer
                kindStreams[EventCodec.peersStream].reserve(10)
                kindStreams[EventCodec.peersStream].varint(UInt64(peer))
            }
            if EventCodec.rawIDKinds & bit != 0 {
                if id != 0 {
                    head |= EventCodec.hasIDDelta
                    kindStreams[EventCodec.idsStream].reserve(10)
                    kindStreams[EventCodec.idsStream].varint(id)
                }
            } else {
                let sent = EventCodec.sentIDKinds & bit != 0
                let context = sent ? EventCodec.sendContext : EventCodec.context(record.kind.rawValue, peer)
                let previousID = previousIDs[context]
                if id != previousID {
                    head |= EventCodec.hasIDDelta
                    kindStreams[EventCodec.idsStream].reserve(10)
                    kindStreams[EventCodec.idsStream].varint(zigzag(Int64(bitPattern: id &- previousID)))
                    if !sent { previousIDs[context] = id }
                }
            }
            let length = Int(record.payloadLength)
            if length > 0 {
                head |= EventCodec.hasPayload
                let source = payloads! + offset
                offset += length
                kindStreams[EventCodec.lengthsStream].reserve(10)
                kindStreams[EventCodec.lengthsStream].varint(UInt64(length))
                kindStreams[EventCodec.payloadsStream].reserve(length)
                let target = kindStreams[EventCodec.payloadsStream].base + kindStreams[EventCodec.payloadsStream].count
                if length < EventCodec.deltaLengthLimit {
                    let slot = kindIndex * EventCodec.deltaLengthLimit + length
                    let reference = lastPayload[slot]
                    if reference >= 0 {
                        let previous = originals[kindIndex].base + reference
                        for byte in 0..<length { target[byte] = source[byte] &- previous[byte] }
                    } else {
                        target.update(from: source, count: length)
                    }
                    lastPayload[slot] = originals[kindIndex].count
                } else {
                    target.update(from: source, count: length)
                }
                originals[kindIndex].append(UnsafeRawBufferPointer(start: source, count: length))
                kindStreams[EventCodec.payloadsStream].count += length
            }
            headsBase[headsCount] = head
            headsCount += 1
            ByteColumn.write(varint: UInt64(record.node), to: nodesBase, at: &nodesCount)
            last = time
            events += 1
        }
        heads.count = headsCount
        nodes.count = nodesCount
        eventCount = events
        lastTime = last
        deltasDivisibleByMicro = micro
        deltasDivisibleByMilli = milli
        kindsPresent = present
    }

    public func append(_ event: Event) {
        event.payload.withUnsafeBytes { raw in
            append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: raw)
        }
    }

    /// Lays the streams out as the chunk's raw bytes and sets `boundaries`. Valid until the next
    /// append or reset.
    public func finish() -> UnsafeRawBufferPointer {
        let quantum: UInt64 = deltasDivisibleByMilli ? 1_000_000 : deltasDivisibleByMicro ? 1_000 : 1
        for kind in 0..<EventCodec.kindCount where kindsPresent & (1 << UInt32(kind)) != 0 {
            streams[kind * EventCodec.streamsPerKind + EventCodec.timesStream].count = 0
        }
        for index in 0..<eventCount {
            let kind = Int(heads.base[index] & EventCodec.kindMask)
            let times = streams + kind * EventCodec.streamsPerKind + EventCodec.timesStream
            times.pointee.reserve(10)
            times.pointee.varint(deltas[index] / quantum)
        }
        assembled.count = 0
        assembled.reserve(4 * 10 + EventCodec.kindCount * EventCodec.streamsPerKind * 10)
        assembled.varint(quantum)
        assembled.varint(UInt64(heads.count))
        assembled.varint(UInt64(nodes.count))
        assembled.varint(UInt64(kindsPresent))
        // Per kind, the payloads as differences only where they promise to pack smaller.
        var differenceKinds: UInt32 = 0
        for kind in 0..<EventCodec.kindCount where originals[kind].count > 0 {
            let differences = streams[kind * EventCodec.streamsPerKind + EventCodec.payloadsStream]
            if EventCodec.packedSizeEstimate(differences.bytes) * 10 < EventCodec.packedSizeEstimate(originals[kind].bytes) * 9 {
                differenceKinds |= 1 << UInt32(kind)
            }
        }
        assembled.varint(UInt64(differenceKinds))
        for kind in 0..<EventCodec.kindCount where kindsPresent & (1 << UInt32(kind)) != 0 {
            for stream in 0..<EventCodec.streamsPerKind {
                assembled.varint(UInt64(streams[kind * EventCodec.streamsPerKind + stream].count))
            }
        }
        boundaries = [assembled.count]
        assembled.append(heads.bytes)
        boundaries.append(assembled.count)
        assembled.append(nodes.bytes)
        for kind in 0..<EventCodec.kindCount where kindsPresent & (1 << UInt32(kind)) != 0 {
            for stream in 0..<EventCodec.streamsPerKind {
                var column = streams[kind * EventCodec.streamsPerKind + stream]
                if stream == EventCodec.payloadsStream && differenceKinds & (1 << UInt32(kind)) == 0 { column = originals[kind] }
                if column.count >= EventCodec.blockMinimum { boundaries.append(assembled.count) }
                assembled.append(column.bytes)
            }
        }
        return assembled.bytes
    }
}

/// An error found while decoding trace bytes: the data is damaged or not a trace.
public struct DecodeError: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public var offset: Int
    public var description: String { "\(reason) at byte \(offset)" }
}

/// A decoded event whose payload still lies in the decoder's buffer.
public struct RawEvent {
    public var kind: EventKind
    public var time: UInt64
    public var node: UInt32
    public var peer: UInt32
    public var id: UInt64
    /// The payload's bytes; valid only while the buffer being decoded is.
    public var payload: UnsafeRawBufferPointer

    public func materialize() -> Event {
        Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: payload.isEmpty ? [] : Array(payload))
    }
}

/// Decodes events from a raw (decompressed) chunk, of format version 1 or 2. Every read is
/// bounds-checked: damaged input throws `DecodeError`, it never traps. A class: decoding an event
/// must not copy the decoder's state around.
public final class EventDecoder {
    private let bytes: UnsafeRawBufferPointer
    /// `bytes`' start (never read past `bytes.count`).
    private let base: UnsafePointer<UInt8>
    private let version: UInt8
    private var heads: Int, headsEnd: Int
    private var nodes: Int, nodesEnd: Int
    /// Version 1: read positions and ends of the times, peers, ids columns; payloads run to the end.
    private var times = 0, timesEnd = 0
    private var peers = 0, peersEnd = 0
    private var ids = 0, idsEnd = 0
    private var payloads = 0
    private let quantum: UInt64
    private var time: UInt64
    private let previousIDs: UnsafeMutablePointer<UInt64>
    /// Version 2: per kind and stream, read position and end (`Scratch`).
    private let positions: UnsafeMutablePointer<Int>
    private let ends: UnsafeMutablePointer<Int>
    private let lastPayload: UnsafeMutablePointer<Int>
    /// Version 2: the payloads restored from their differences, at the offsets they have in `bytes`.
    private let restored: UnsafeMutablePointer<UInt8>
    /// Version 2: kinds whose payloads are stored as differences.
    private var differenceKinds: UInt32 = 0
    /// Kept alive while the decoder points into it.
    private let scratch: Scratch

    /// Scratch memory a decoder needs. Reuse one across chunks.
    public final class Scratch {
        let previousIDs = UnsafeMutablePointer<UInt64>.allocate(capacity: EventCodec.contextCount)
        let positions = UnsafeMutablePointer<Int>.allocate(capacity: EventCodec.kindCount * EventCodec.streamsPerKind)
        let ends = UnsafeMutablePointer<Int>.allocate(capacity: EventCodec.kindCount * EventCodec.streamsPerKind)
        let lastPayload = UnsafeMutablePointer<Int>.allocate(capacity: EventCodec.kindCount * EventCodec.deltaLengthLimit)
        var restored = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 16)
        var restoredCapacity = 1 << 16
        public init() {
            previousIDs.initialize(repeating: 0, count: EventCodec.contextCount)
            positions.initialize(repeating: 0, count: EventCodec.kindCount * EventCodec.streamsPerKind)
            ends.initialize(repeating: 0, count: EventCodec.kindCount * EventCodec.streamsPerKind)
            lastPayload.initialize(repeating: -1, count: EventCodec.kindCount * EventCodec.deltaLengthLimit)
        }
        deinit {
            previousIDs.deallocate()
            positions.deallocate()
            ends.deallocate()
            lastPayload.deallocate()
            restored.deallocate()
        }

        func reserveRestored(_ size: Int) {
            guard size > restoredCapacity else { return }
            restored.deallocate()
            restoredCapacity = Swift.max(size, restoredCapacity * 2)
            restored = .allocate(capacity: restoredCapacity)
        }
    }

    /// - Parameters:
    ///   - version: the chunk's format version (`ChunkHeader.version`).
    ///   - scratch: not to be shared with another live decoder (the decoder keeps it alive). Payloads
    ///     of version 2 chunks lie in it: they stay valid until it decodes another chunk.
    public init(bytes: UnsafeRawBufferPointer, baseTime: UInt64, scratch: Scratch,
                version: UInt8 = ChunkHeader.version) throws(DecodeError) {
        guard version == 1 || version == 2 else {
            throw DecodeError(reason: "unknown chunk format version \(version)", offset: 0)
        }
        self.version = version
        self.scratch = scratch
        previousIDs = scratch.previousIDs
        positions = scratch.positions
        ends = scratch.ends
        lastPayload = scratch.lastPayload
        self.bytes = bytes
        self.base = UnsafePointer(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) ?? UnsafePointer(EventDecoder.empty)
        self.time = baseTime
        var offset = 0
        guard let quantum = Bytes.readVarint(bytes, at: &offset), quantum == 1 || quantum == 1_000 || quantum == 1_000_000 else {
            throw DecodeError(reason: "bad time quantum in the section table", offset: offset)
        }
        self.quantum = quantum
        func length() throws(DecodeError) -> Int {
            guard let length = Bytes.readVarint(bytes, at: &offset), length <= UInt64(bytes.count) else {
                throw DecodeError(reason: "bad stream length in the section table", offset: offset)
            }
            return Int(length)
        }
        var start = 0
        func take(_ length: Int) throws(DecodeError) -> (Int, Int) {
            guard length <= bytes.count - start else {
                throw DecodeError(reason: "stream runs past the chunk end", offset: start)
            }
            defer { start += length }
            return (start, start + length)
        }
        if version == 1 {
            restored = scratch.restored
            var lengths: [Int] = []
            for _ in 0..<5 { lengths.append(try length()) }
            start = offset
            (heads, headsEnd) = try take(lengths[0])
            (times, timesEnd) = try take(lengths[1])
            (nodes, nodesEnd) = try take(lengths[2])
            (peers, peersEnd) = try take(lengths[3])
            (ids, idsEnd) = try take(lengths[4])
            payloads = start
            previousIDs.initialize(repeating: 0, count: 256)
            return
        }
        let headsLength = try length()
        let nodesLength = try length()
        guard let mask = Bytes.readVarint(bytes, at: &offset), mask <= UInt64(UInt32.max) else {
            throw DecodeError(reason: "bad kind mask in the section table", offset: offset)
        }
        let kindsPresent = UInt32(mask)
        guard let differences = Bytes.readVarint(bytes, at: &offset), differences <= UInt64(UInt32.max) else {
            throw DecodeError(reason: "bad payload difference mask in the section table", offset: offset)
        }
        differenceKinds = UInt32(differences)
        var streamLengths: [Int] = []
        for _ in 0..<kindsPresent.nonzeroBitCount * EventCodec.streamsPerKind { streamLengths.append(try length()) }
        start = offset
        (heads, headsEnd) = try take(headsLength)
        (nodes, nodesEnd) = try take(nodesLength)
        var next = 0
        for kind in 0..<EventCodec.kindCount {
            for stream in 0..<EventCodec.streamsPerKind {
                let slot = kind * EventCodec.streamsPerKind + stream
                if kindsPresent & (1 << UInt32(kind)) != 0 {
                    (positions[slot], ends[slot]) = try take(streamLengths[next])
                    next += 1
                } else {
                    (positions[slot], ends[slot]) = (0, 0)
                }
            }
        }
        guard start == bytes.count else {
            throw DecodeError(reason: "\(bytes.count - start) bytes after the last stream", offset: start)
        }
        // Only the rows of the kinds present are read (deliveries read the sends' row): clearing
        // just those keeps the decoder's working set small.
        let idRows = kindsPresent | (kindsPresent & EventCodec.sentIDKinds != 0 ? 1 << UInt32(EventCodec.sendContext >> 8) : 0)
        for kind in 0..<EventCodec.kindCount where idRows & (1 << UInt32(kind)) != 0 {
            (previousIDs + (kind << 8)).update(repeating: 0, count: 256)
        }
        for kind in 0..<EventCodec.kindCount where differenceKinds & (1 << UInt32(kind)) != 0 {
            (lastPayload + kind * EventCodec.deltaLengthLimit).update(repeating: -1, count: EventCodec.deltaLengthLimit)
        }
        scratch.reserveRestored(bytes.count)
        restored = scratch.restored
    }

    public var isAtEnd: Bool { heads >= headsEnd }

    /// True when every stream was consumed exactly (checked after the last event).
    public var consumedEverything: Bool {
        guard heads == headsEnd && nodes == nodesEnd else { return false }
        if version == 1 {
            return times == timesEnd && peers == peersEnd && ids == idsEnd && payloads == bytes.count
        }
        for slot in 0..<EventCodec.kindCount * EventCodec.streamsPerKind where positions[slot] != ends[slot] { return false }
        return true
    }

    /// Something to point at when the chunk is empty (never read).
    private static let empty = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

    /// Reads a varint at `offset`, below `end`: one-byte values inline, longer ones out of line.
    @inline(__always)
    private func varint(_ offset: inout Int, _ end: Int, _ column: StaticString) throws(DecodeError) -> UInt64 {
        if offset < end {
            let byte = base[offset]
            if byte < 0x80 {
                offset += 1
                return UInt64(byte)
            }
        }
        return try longVarint(&offset, end, column)
    }

    @inline(never)
    private func longVarint(_ offset: inout Int, _ end: Int, _ column: StaticString) throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw DecodeError(reason: "truncated varint in the \(column) column", offset: offset) }
            let byte = base[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw DecodeError(reason: "varint overflows 64 bits in the \(column) column", offset: offset - 1) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw DecodeError(reason: "varint longer than 10 bytes in the \(column) column", offset: offset) }
        }
    }

    @inline(__always)
    private func advanceTime(_ delta: UInt64, at offset: Int) throws(DecodeError) {
        let (scaled, overflowScale) = delta.multipliedReportingOverflow(by: quantum)
        let (newTime, overflow) = time.addingReportingOverflow(scaled)
        guard !overflow && !overflowScale else { throw DecodeError(reason: "virtual time overflows", offset: offset) }
        time = newTime
    }

    /// Decodes the next event, or returns nil at the end of the chunk.
    public func next() throws(DecodeError) -> RawEvent? {
        guard heads < headsEnd else { return nil }
        let head = base[heads]
        let raw = head & EventCodec.kindMask
        // Kinds are numbered 1…lastKind in declaration order, so a kind's case is its number less
        // one (a payload-free enum's cases are 0…n-1 in declaration order).
        guard raw &- 1 < EventCodec.lastKind else {
            throw DecodeError(reason: "unknown event kind \(raw)", offset: heads)
        }
        let kind = unsafeBitCast(raw &- 1, to: EventKind.self)
        heads += 1
        if version == 1 { return try nextV1(head: head, kind: kind) }
        let kindIndex = Int(kind.rawValue)
        let position = positions + kindIndex &* EventCodec.streamsPerKind
        let end = ends + kindIndex &* EventCodec.streamsPerKind
        try advanceTime(try varint(&position[EventCodec.timesStream], end[EventCodec.timesStream], "time"),
                        at: position[EventCodec.timesStream])
        let node = try varint(&nodes, nodesEnd, "node")
        guard node <= UInt64(UInt32.max) else { throw DecodeError(reason: "node out of range", offset: nodes) }
        var peer: UInt64 = 0
        if head & EventCodec.hasPeer != 0 {
            peer = try varint(&position[EventCodec.peersStream], end[EventCodec.peersStream], "peer")
            guard peer <= UInt64(UInt32.max) else { throw DecodeError(reason: "peer out of range", offset: position[EventCodec.peersStream]) }
        }
        var id: UInt64 = 0
        if EventCodec.rawIDKinds & (1 << UInt32(kindIndex)) != 0 {
            if head & EventCodec.hasIDDelta != 0 {
                id = try varint(&position[EventCodec.idsStream], end[EventCodec.idsStream], "id")
            }
        } else {
            let sent = EventCodec.sentIDKinds & (1 << UInt32(kindIndex)) != 0
            let context = sent ? EventCodec.sendContext : EventCodec.context(kind.rawValue, UInt32(truncatingIfNeeded: peer))
            id = previousIDs[context]
            if head & EventCodec.hasIDDelta != 0 {
                id = id &+ UInt64(bitPattern: unzigzag(try varint(&position[EventCodec.idsStream], end[EventCodec.idsStream], "id")))
                if !sent { previousIDs[context] = id }
            }
        }
        var payload = UnsafeRawBufferPointer(start: nil, count: 0)
        if head & EventCodec.hasPayload != 0 {
            let lengthOffset = position[EventCodec.lengthsStream]
            let length = try varint(&position[EventCodec.lengthsStream], end[EventCodec.lengthsStream], "payload length")
            let start = position[EventCodec.payloadsStream]
            guard length >= 1, length <= UInt64(end[EventCodec.payloadsStream] - start) else {
                throw DecodeError(reason: "payload of \(length) bytes runs past its stream", offset: lengthOffset)
            }
            let count = Int(length)
            position[EventCodec.payloadsStream] = start + count
            guard differenceKinds & (1 << UInt32(kindIndex)) != 0 else {
                return RawEvent(kind: kind, time: time, node: UInt32(node), peer: UInt32(peer), id: id,
                                payload: UnsafeRawBufferPointer(start: base + start, count: count))
            }
            let target = restored + start
            let source = base + start
            if count < EventCodec.deltaLengthLimit {
                let slot = kindIndex &* EventCodec.deltaLengthLimit &+ count
                let reference = lastPayload[slot]
                if reference >= 0 {
                    let previous = restored + reference
                    for index in 0..<count { target[index] = source[index] &+ previous[index] }
                } else {
                    target.update(from: source, count: count)
                }
                lastPayload[slot] = start
            } else {
                target.update(from: source, count: count)
            }
            payload = UnsafeRawBufferPointer(start: target, count: count)
        }
        return RawEvent(kind: kind, time: time, node: UInt32(node), peer: UInt32(peer), id: id, payload: payload)
    }

    private func nextV1(head: UInt8, kind: EventKind) throws(DecodeError) -> RawEvent {
        try advanceTime(try varint(&times, timesEnd, "time"), at: times)
        let node = try varint(&nodes, nodesEnd, "node")
        guard node <= UInt64(UInt32.max) else { throw DecodeError(reason: "node out of range", offset: nodes) }
        var peer: UInt64 = 0
        if head & EventCodec.hasPeer != 0 {
            peer = try varint(&peers, peersEnd, "peer")
            guard peer <= UInt64(UInt32.max) else { throw DecodeError(reason: "peer out of range", offset: peers) }
        }
        let context = EventCodec.contextV1(kind.rawValue, UInt32(truncatingIfNeeded: peer))
        var id = previousIDs[context]
        if head & EventCodec.hasIDDelta != 0 {
            id = id &+ UInt64(bitPattern: unzigzag(try varint(&ids, idsEnd, "id")))
            previousIDs[context] = id
        }
        var payload = UnsafeRawBufferPointer(start: nil, count: 0)
        if head & EventCodec.hasPayload != 0 {
            let lengthOffset = payloads
            let length = try varint(&payloads, bytes.count, "payload")
            guard length <= UInt64(bytes.count - payloads) else {
                throw DecodeError(reason: "payload of \(length) bytes runs past the chunk end", offset: lengthOffset)
            }
            payload = UnsafeRawBufferPointer(rebasing: bytes[payloads..<payloads + Int(length)])
            payloads += Int(length)
        }
        return RawEvent(kind: kind, time: time, node: UInt32(node), peer: UInt32(peer), id: id, payload: payload)
    }
}

/// Little helpers for the fixed-width big-endian keys of the store (big-endian so that LMDB's
/// byte order is numeric order) and for varints outside events.
enum Bytes {
    static func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func readBigEndian64(_ bytes: [UInt8], at offset: Int) -> UInt64? {
        guard offset >= 0, offset + 8 <= bytes.count else { return nil }
        var value: UInt64 = 0
        for index in offset..<offset + 8 { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    static func readBigEndian32(_ bytes: [UInt8], at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for index in offset..<offset + 4 { value = value << 8 | UInt32(bytes[index]) }
        return value
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Reads a varint from `bytes` at `offset`, advancing it; nil when truncated or too long.
    static func readVarint(_ bytes: UnsafeRawBufferPointer, at offset: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count && shift <= 63 {
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }
}
