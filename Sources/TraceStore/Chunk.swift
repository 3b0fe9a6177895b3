/// The header stored in front of every chunk's zstd frame.
///
/// Layout: version byte, then varints: event count, raw (decompressed) size, number of the first
/// event, virtual time of the first event, virtual time of the last event. The raw size bounds
/// decompression: a hostile file cannot make a reader allocate more than `maxRawBytes`.
public struct ChunkHeader: Equatable, Sendable {
    /// The chunk format version written (`EventCodec`); versions 1 and 2 are read.
    public static let version: UInt8 = 2
    static let readableVersions: ClosedRange<UInt8> = 1...2
    /// The largest raw chunk a reader accepts.
    public static let maxRawBytes = 64 << 20
    /// The smallest an encoded event can be (kind byte, time delta, node).
    static let minEventBytes = 3

    public var eventCount: Int
    public var rawSize: Int
    public var firstEventNumber: UInt64
    public var baseTime: UInt64
    public var lastTime: UInt64
    /// The format version of this chunk's raw bytes.
    public var version: UInt8 = ChunkHeader.version

    public var lastEventNumber: UInt64 { firstEventNumber + UInt64(eventCount) - 1 }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = [version]
        Bytes.appendVarint(UInt64(eventCount), to: &bytes)
        Bytes.appendVarint(UInt64(rawSize), to: &bytes)
        Bytes.appendVarint(firstEventNumber, to: &bytes)
        Bytes.appendVarint(baseTime, to: &bytes)
        Bytes.appendVarint(lastTime, to: &bytes)
        return bytes
    }

    /// Parses the header at the start of `value`; returns it and the offset of the zstd frame.
    static func parse(_ value: UnsafeRawBufferPointer) throws(DecodeError) -> (ChunkHeader, Int) {
        guard let version = value.first else { throw DecodeError(reason: "empty chunk", offset: 0) }
        guard readableVersions.contains(version) else {
            throw DecodeError(reason: "unknown chunk version \(version) (this build reads versions \(readableVersions.lowerBound) to \(readableVersions.upperBound))", offset: 0)
        }
        var offset = 1
        var fields: [UInt64] = []
        for name in ["event count", "raw size", "first event number", "base time", "last time"] {
            guard let field = Bytes.readVarint(value, at: &offset) else {
                throw DecodeError(reason: "chunk header: bad \(name)", offset: offset)
            }
            fields.append(field)
        }
        guard fields[1] <= UInt64(maxRawBytes) else {
            throw DecodeError(reason: "chunk header: raw size \(fields[1]) exceeds the \(maxRawBytes)-byte limit", offset: 1)
        }
        guard fields[0] >= 1, fields[0] * UInt64(minEventBytes) <= fields[1] else {
            throw DecodeError(reason: "chunk header: \(fields[0]) events cannot fit in \(fields[1]) bytes", offset: 1)
        }
        guard fields[3] <= fields[4], fields[2] <= UInt64.max - fields[0] else {
            throw DecodeError(reason: "chunk header: inconsistent times or event numbers", offset: 1)
        }
        let header = ChunkHeader(eventCount: Int(fields[0]), rawSize: Int(fields[1]), firstEventNumber: fields[2],
                                 baseTime: fields[3], lastTime: fields[4], version: version)
        return (header, offset)
    }
}
