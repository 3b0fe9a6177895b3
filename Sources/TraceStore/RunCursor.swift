/// Reads a run's events one at a time, in order, holding one decompressed chunk. Unlike
/// `RunReader.forEach`, the caller pulls: a replay advances it in step with the events it produces.
public final class RunCursor {
    private let reader: RunReader
    private var chunk: UInt32 = 0
    private var events: [Event] = []
    private var position = 0
    /// Number of the next event `next()` returns.
    public private(set) var number: UInt64 = 0

    public init(reader: RunReader) {
        self.reader = reader
    }

    /// The next event, or nil at the end of the run.
    public func next() throws -> Event? {
        while position >= events.count {
            guard chunk < reader.info.chunkCount else { return nil }
            events.removeAll(keepingCapacity: true)
            position = 0
            let header = try reader.loadChunk(chunk)
            _ = try reader.visitLoadedChunk(header, chunk: chunk) { events.append($0.materialize()) }
            chunk += 1
        }
        defer {
            position += 1
            number += 1
        }
        return events[position]
    }
}
