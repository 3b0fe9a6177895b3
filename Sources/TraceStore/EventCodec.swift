/// The binary event format, version 1.
///
/// An event is: one byte holding the kind (low 5 bits) and three presence flags, then the varint
/// delta of its virtual time from the previous event in the chunk, the varint node, and — when
/// flagged — the varint peer, the zigzag varint delta of its id from the previous event's id, and
/// a varint length followed by the payload bytes. Deltas restart at every chunk (time from the
/// chunk's base time, id from zero), so each chunk decodes on its own.
public enum EventCodec {
    public static let formatVersion: UInt32 = 1
    static let kindMask: UInt8 = 0x1F
    static let hasPeer: UInt8 = 0x20
    static let hasPayload: UInt8 = 0x40
    static let hasIDDelta: UInt8 = 0x80
    /// The longest a varint can be (64-bit values).
    static let maxVarintBytes = 10
    /// The most bytes an event needs besides its payload.
    static let maxEventOverheadBytes = 1 + 4 * maxVarintBytes + maxVarintBytes
}

@inline(__always)
func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

@inline(__always)
func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

/// Appends encoded events into a growable raw buffer. Owns its memory; not thread-safe.
public final class EventEncoder {
    private(set) var buffer: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0
    /// Events written so far.
    public private(set) var eventCount = 0
    /// The time of the first event (the chunk's base) and of the last.
    public private(set) var baseTime: UInt64 = 0
    public private(set) var lastTime: UInt64 = 0
    private var previousID: UInt64 = 0

    public init(capacity: Int = 64 << 10) {
        self.capacity = max(capacity, 256)
        self.buffer = .allocate(capacity: self.capacity)
    }

    deinit { buffer.deallocate() }

    /// Forgets everything written; the next event starts a new chunk.
    public func reset() {
        count = 0
        eventCount = 0
        previousID = 0
        baseTime = 0
        lastTime = 0
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer, count: count) }

    private func reserve(_ extra: Int) {
        if count + extra <= capacity { return }
        var newCapacity = capacity * 2
        while newCapacity < count + extra { newCapacity *= 2 }
        let newBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBuffer.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = newBuffer
        capacity = newCapacity
    }

    @inline(__always)
    private func putVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            buffer[count] = UInt8(truncatingIfNeeded: v) | 0x80
            count += 1
            v >>= 7
        }
        buffer[count] = UInt8(truncatingIfNeeded: v)
        count += 1
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
        reserve(EventCodec.maxEventOverheadBytes + payload.count)
        var head = kind.rawValue
        if peer != 0 { head |= EventCodec.hasPeer }
        if !payload.isEmpty { head |= EventCodec.hasPayload }
        if id != previousID { head |= EventCodec.hasIDDelta }
        buffer[count] = head
        count += 1
        putVarint(time &- lastTime)
        putVarint(UInt64(node))
        if peer != 0 { putVarint(UInt64(peer)) }
        if id != previousID { putVarint(zigzag(Int64(bitPattern: id &- previousID))) }
        if !payload.isEmpty {
            putVarint(UInt64(payload.count))
            (buffer + count).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
            count += payload.count
        }
        previousID = id
        lastTime = time
        eventCount += 1
    }

    public func append(_ event: Event) {
        event.payload.withUnsafeBytes { raw in
            append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: raw)
        }
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
    public private(set) var offset = 0
    private var time: UInt64
    private var previousID: UInt64 = 0

    public init(bytes: UnsafeRawBufferPointer, baseTime: UInt64) {
        self.bytes = bytes
        self.time = baseTime
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    @inline(__always)
    private mutating func varint() throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw DecodeError(reason: "truncated varint", offset: offset) }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw DecodeError(reason: "varint overflows 64 bits", offset: offset - 1) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw DecodeError(reason: "varint longer than 10 bytes", offset: offset) }
        }
    }

    @inline(__always)
    private mutating func varint32(_ what: String) throws(DecodeError) -> UInt32 {
        let start = offset
        let value = try varint()
        guard value <= UInt64(UInt32.max) else { throw DecodeError(reason: "\(what) out of range", offset: start) }
        return UInt32(value)
    }

    /// Decodes the next event, or returns nil at the end of the buffer.
    public mutating func next() throws(DecodeError) -> RawEvent? {
        guard offset < bytes.count else { return nil }
        let head = bytes[offset]
        guard let kind = EventKind(rawValue: head & EventCodec.kindMask) else {
            throw DecodeError(reason: "unknown event kind \(head & EventCodec.kindMask)", offset: offset)
        }
        offset += 1
        let (newTime, overflow) = time.addingReportingOverflow(try varint())
        guard !overflow else { throw DecodeError(reason: "virtual time overflows", offset: offset) }
        time = newTime
        let node = try varint32("node")
        let peer = head & EventCodec.hasPeer != 0 ? try varint32("peer") : 0
        if head & EventCodec.hasIDDelta != 0 {
            previousID = previousID &+ UInt64(bitPattern: unzigzag(try varint()))
        }
        var payload = UnsafeRawBufferPointer(start: nil, count: 0)
        if head & EventCodec.hasPayload != 0 {
            let lengthOffset = offset
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else {
                throw DecodeError(reason: "payload of \(length) bytes runs past the chunk end", offset: lengthOffset)
            }
            payload = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(length)])
            offset += Int(length)
        }
        return RawEvent(kind: kind, time: time, node: node, peer: peer, id: previousID, payload: payload)
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
