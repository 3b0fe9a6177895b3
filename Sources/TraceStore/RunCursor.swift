/// Reads a run's events one at a time, in order, holding one decompressed chunk. Unlike
/// `RunReader.forEach`, the caller pulls: a replay advances it in step with the events it produces.
public final class RunCursor {
    private let reader: RunReader
    private var chunk: UInt32 = 0
    private var buffer: UnsafeMutableRawBufferPointer
    private var decoder: EventDecoder?
    private var remaining = 0
    private let scratch = EventDecoder.Scratch()
    /// Number of the next event `next()` returns.
    public private(set) var number: UInt64 = 0

    public init(reader: RunReader) {
        self.reader = reader
        self.buffer = .allocate(byteCount: 1 << 16, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// The next event without copying its payload; valid until the next call. Nil at the end.
    public func nextRaw() throws -> RawEvent? {
        while remaining == 0 {
            guard chunk < reader.info.chunkCount else { return nil }
            let header = try reader.loadChunk(chunk, into: &buffer)
            decoder = try EventDecoder(bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<header.rawSize]), baseTime: header.baseTime, scratch: scratch, version: header.version)
            remaining = header.eventCount
            chunk += 1
        }
        guard let event = try decoder!.next() else {
            throw TraceStoreError.corruptChunk(path: reader.store.path, run: reader.info.id, chunk: chunk - 1, reason: "fewer events than its header says")
        }
        remaining -= 1
        number += 1
        return event
    }

    /// The next event, materialized. Nil at the end.
    public func next() throws -> Event? {
        try nextRaw()?.materialize()
    }
}
