/// The binary event format, version 1.
///
/// A chunk's raw bytes are laid out by column, so that zstd sees like next to like:
///
///     section table: varint time quantum, then varint byte lengths of the first five columns
///     heads:    one byte per event: kind (low 5 bits) and presence flags for peer, id delta, payload
///     times:    varint delta of virtual time from the previous event, divided by the quantum
///     nodes:    varint node
///     peers:    varint peer, for events flagged with one
///     ids:      zigzag varint delta of the id from the previous id in the same context (kind and
///               the low 3 bits of peer: a decision's type, a timer's tag, a message's peer), when flagged
///     payloads: varint length and the bytes, for events flagged with a payload (the rest of the chunk)
///
/// Deltas restart at every chunk (time from the chunk's base time, ids from zero), so each chunk
/// decodes on its own. The quantum is the largest of 1, 10³, 10⁶ ns dividing every delta of the chunk.
public enum EventCodec {
    public static let formatVersion: UInt32 = 1
    static let kindMask: UInt8 = 0x1F
    static let hasPeer: UInt8 = 0x20
    static let hasPayload: UInt8 = 0x40
    static let hasIDDelta: UInt8 = 0x80
    static let columnCount = 6

    /// The context an id is predicted in: kind and the low three bits of peer.
    @inline(__always)
    static func context(_ kind: UInt8, _ peer: UInt32) -> Int { Int(kind) << 3 | Int(peer & 7) }
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
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: v) | 0x80
            count += 1
            v >>= 7
        }
        base[count] = UInt8(truncatingIfNeeded: v)
        count += 1
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

/// Encodes events into the columns of one chunk. Owns its memory; not thread-safe.
public final class EventEncoder {
    private var heads: ByteColumn
    private var nodes: ByteColumn
    private var peers: ByteColumn
    private var ids: ByteColumn
    private var payloads: ByteColumn
    private var times: ByteColumn
    private var assembled: ByteColumn
    private var deltas: UnsafeMutablePointer<UInt64>
    private var deltaCapacity: Int
    private let previousIDs: UnsafeMutablePointer<UInt64>
    private var deltasDivisibleByMicro = true
    private var deltasDivisibleByMilli = true
    /// Events written since the last reset.
    public private(set) var eventCount = 0
    /// The time of the first event (the chunk's base) and of the last.
    public private(set) var baseTime: UInt64 = 0
    public private(set) var lastTime: UInt64 = 0

    public init(capacity: Int = 64 << 10) {
        heads = ByteColumn(capacity: capacity / 4)
        nodes = ByteColumn(capacity: capacity / 4)
        peers = ByteColumn(capacity: capacity / 4)
        ids = ByteColumn(capacity: capacity / 4)
        payloads = ByteColumn(capacity: capacity)
        times = ByteColumn(capacity: capacity / 2)
        assembled = ByteColumn(capacity: capacity * 2)
        deltaCapacity = Swift.max(capacity / 4, 64)
        deltas = .allocate(capacity: deltaCapacity)
        previousIDs = .allocate(capacity: 256)
        previousIDs.initialize(repeating: 0, count: 256)
    }

    deinit {
        for column in [heads, nodes, peers, ids, payloads, times, assembled] { column.free() }
        deltas.deallocate()
        previousIDs.deallocate()
    }

    /// Bytes the chunk holds so far, with time deltas counted at one byte each (an estimate until
    /// `finish`, good enough to decide when a chunk is full).
    public var count: Int { heads.count * 2 + nodes.count + peers.count + ids.count + payloads.count }

    /// Forgets everything written; the next event starts a new chunk.
    public func reset() {
        heads.count = 0
        nodes.count = 0
        peers.count = 0
        ids.count = 0
        payloads.count = 0
        times.count = 0
        assembled.count = 0
        previousIDs.update(repeating: 0, count: 256)
        deltasDivisibleByMicro = true
        deltasDivisibleByMilli = true
        eventCount = 0
        baseTime = 0
        lastTime = 0
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
    @inline(__always)
    public func append(kind: EventKind, time: UInt64, node: UInt32, peer: UInt32, id: UInt64, payload: UnsafeRawBufferPointer) {
        if eventCount == 0 {
            baseTime = time
            lastTime = time
        }
        precondition(time >= lastTime, "event time went backwards: \(time) after \(lastTime)")
        let delta = time &- lastTime
        if delta != 0 && deltasDivisibleByMicro {
            if delta % 1_000 != 0 { deltasDivisibleByMicro = false; deltasDivisibleByMilli = false }
            else if delta % 1_000_000 != 0 { deltasDivisibleByMilli = false }
        }
        if eventCount == deltaCapacity { growDeltas() }
        deltas[eventCount] = delta
        var head = kind.rawValue
        let context = EventCodec.context(kind.rawValue, peer)
        let previousID = previousIDs[context]
        if peer != 0 {
            head |= EventCodec.hasPeer
            peers.reserve(10)
            peers.varint(UInt64(peer))
        }
        if id != previousID {
            head |= EventCodec.hasIDDelta
            ids.reserve(10)
            ids.varint(zigzag(Int64(bitPattern: id &- previousID)))
            previousIDs[context] = id
        }
        if !payload.isEmpty {
            head |= EventCodec.hasPayload
            payloads.reserve(10 + payload.count)
            payloads.varint(UInt64(payload.count))
            payloads.append(payload)
        }
        heads.reserve(1)
        heads.byte(head)
        nodes.reserve(10)
        nodes.varint(UInt64(node))
        lastTime = time
        eventCount += 1
    }

    public func append(_ event: Event) {
        event.payload.withUnsafeBytes { raw in
            append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: raw)
        }
    }

    /// Lays the columns out as the chunk's raw bytes. Valid until the next append or reset.
    public func finish() -> UnsafeRawBufferPointer {
        let quantum: UInt64 = deltasDivisibleByMilli ? 1_000_000 : deltasDivisibleByMicro ? 1_000 : 1
        times.count = 0
        times.reserve(eventCount * 10)
        for index in 0..<eventCount { times.varint(deltas[index] / quantum) }
        assembled.count = 0
        assembled.reserve(6 * 10)
        assembled.varint(quantum)
        assembled.varint(UInt64(heads.count))
        assembled.varint(UInt64(times.count))
        assembled.varint(UInt64(nodes.count))
        assembled.varint(UInt64(peers.count))
        assembled.varint(UInt64(ids.count))
        assembled.append(heads.bytes)
        assembled.append(times.bytes)
        assembled.append(nodes.bytes)
        assembled.append(peers.bytes)
        assembled.append(ids.bytes)
        assembled.append(payloads.bytes)
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

/// Decodes events from a raw (decompressed) chunk. Every read is bounds-checked: damaged input
/// throws `DecodeError`, it never traps.
public struct EventDecoder {
    private let bytes: UnsafeRawBufferPointer
    /// Read positions and ends of the six columns.
    private var heads: Int, headsEnd: Int
    private var times: Int, timesEnd: Int
    private var nodes: Int, nodesEnd: Int
    private var peers: Int, peersEnd: Int
    private var ids: Int, idsEnd: Int
    private var payloads: Int
    private let quantum: UInt64
    private var time: UInt64
    private let previousIDs: UnsafeMutablePointer<UInt64>

    /// Scratch memory a decoder needs: the previous id of each context. Reuse one across chunks.
    public final class Scratch {
        let previousIDs = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
        public init() {}
        deinit { previousIDs.deallocate() }
    }

    /// - Parameter scratch: must outlive the decoder and not be shared with another live decoder.
    public init(bytes: UnsafeRawBufferPointer, baseTime: UInt64, scratch: Scratch) throws(DecodeError) {
        previousIDs = scratch.previousIDs
        previousIDs.initialize(repeating: 0, count: 256)
        self.bytes = bytes
        self.time = baseTime
        var offset = 0
        guard let quantum = Bytes.readVarint(bytes, at: &offset), quantum == 1 || quantum == 1_000 || quantum == 1_000_000 else {
            throw DecodeError(reason: "bad time quantum in the section table", offset: offset)
        }
        self.quantum = quantum
        var lengths: [Int] = []
        for _ in 0..<5 {
            guard let length = Bytes.readVarint(bytes, at: &offset), length <= UInt64(bytes.count) else {
                throw DecodeError(reason: "bad column length in the section table", offset: offset)
            }
            lengths.append(Int(length))
        }
        var start = offset
        var bounds: [(Int, Int)] = []
        for length in lengths {
            guard length <= bytes.count - start else {
                throw DecodeError(reason: "column runs past the chunk end", offset: start)
            }
            bounds.append((start, start + length))
            start += length
        }
        (heads, headsEnd) = bounds[0]
        (times, timesEnd) = bounds[1]
        (nodes, nodesEnd) = bounds[2]
        (peers, peersEnd) = bounds[3]
        (ids, idsEnd) = bounds[4]
        payloads = start
    }

    public var isAtEnd: Bool { heads >= headsEnd }

    /// True when every column was consumed exactly (checked after the last event).
    public var consumedEverything: Bool {
        heads == headsEnd && times == timesEnd && nodes == nodesEnd && peers == peersEnd && ids == idsEnd && payloads == bytes.count
    }

    @inline(__always)
    private func varint(_ offset: inout Int, _ end: Int, _ column: StaticString) throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw DecodeError(reason: "truncated varint in the \(column) column", offset: offset) }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw DecodeError(reason: "varint overflows 64 bits in the \(column) column", offset: offset - 1) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw DecodeError(reason: "varint longer than 10 bytes in the \(column) column", offset: offset) }
        }
    }

    /// Decodes the next event, or returns nil at the end of the chunk.
    public mutating func next() throws(DecodeError) -> RawEvent? {
        guard heads < headsEnd else { return nil }
        let head = bytes[heads]
        guard let kind = EventKind(rawValue: head & EventCodec.kindMask) else {
            throw DecodeError(reason: "unknown event kind \(head & EventCodec.kindMask)", offset: heads)
        }
        heads += 1
        let (scaled, overflowScale) = try varint(&times, timesEnd, "time").multipliedReportingOverflow(by: quantum)
        let (newTime, overflow) = time.addingReportingOverflow(scaled)
        guard !overflow && !overflowScale else { throw DecodeError(reason: "virtual time overflows", offset: times) }
        time = newTime
        let node = try varint(&nodes, nodesEnd, "node")
        guard node <= UInt64(UInt32.max) else { throw DecodeError(reason: "node out of range", offset: nodes) }
        var peer: UInt64 = 0
        if head & EventCodec.hasPeer != 0 {
            peer = try varint(&peers, peersEnd, "peer")
            guard peer <= UInt64(UInt32.max) else { throw DecodeError(reason: "peer out of range", offset: peers) }
        }
        let context = EventCodec.context(kind.rawValue, UInt32(truncatingIfNeeded: peer))
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
