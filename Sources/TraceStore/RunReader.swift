/// Streams the events of one run in order, one chunk in memory at a time, and seeks to an event
/// number or a virtual time by reading one chunk.
public final class RunReader {
    public let store: TraceStore
    public let info: RunInfo
    private let decompressor = ZstdDecompressor()
    private var raw: [UInt8] = []
    private let scratch = EventDecoder.Scratch()

    init(store: TraceStore, info: RunInfo) {
        self.store = store
        self.info = info
    }

    public var runID: UInt64 { info.id }

    /// Reads and decompresses chunk `chunk` into the reader's buffer and returns its header.
    func loadChunk(_ chunk: UInt32) throws -> ChunkHeader {
        let store = store
        let run = info.id
        let key = TraceStore.chunkKey(run, chunk)
        let result: Result<ChunkHeader, TraceStoreError>?
        do {
            result = try store.environment.readAny { txn in
                try txn.withValue(store.chunksDB, key: key) { value -> Result<ChunkHeader, TraceStoreError> in
                    do {
                        let (header, frameOffset) = try ChunkHeader.parse(value)
                        try decompressor.decompress(UnsafeRawBufferPointer(rebasing: value[frameOffset...]),
                                                    expectedSize: header.rawSize, into: &raw)
                        return .success(header)
                    } catch let error as DecodeError {
                        return .failure(.corruptChunk(path: store.path, run: run, chunk: chunk, reason: error.description))
                    } catch let error as ZstdError {
                        return .failure(.corruptChunk(path: store.path, run: run, chunk: chunk, reason: error.description))
                    }
                }
            }
        } catch let error as LMDBError {
            throw store.mapped(error)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        guard let result else {
            throw TraceStoreError.corruptRun(path: store.path, run: run, reason: "chunk \(chunk) is missing")
        }
        return try result.get()
    }

    /// Reads and decompresses chunk `chunk` into `buffer` (grown when too small).
    func loadChunk(_ chunk: UInt32, into buffer: inout UnsafeMutableRawBufferPointer) throws -> ChunkHeader {
        let header = try loadChunk(chunk)
        if buffer.count < header.rawSize {
            buffer.deallocate()
            buffer = .allocate(byteCount: max(header.rawSize, buffer.count * 2), alignment: 8)
        }
        raw.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: header.rawSize)
        }
        return header
    }

    /// Calls `body` with every event of the chunk just loaded, from `skip` events in. `body`
    /// returns false to stop. Returns false when stopped.
    private func visitLoaded(_ header: ChunkHeader, chunk: UInt32, skip: Int, until stopTime: UInt64?,
                             _ body: (UInt64, RawEvent) throws -> Bool) throws -> Bool {
        let store = store
        let run = info.id
        return try raw.withUnsafeBytes { bytes -> Bool in
            var decoder: EventDecoder
            do { decoder = try EventDecoder(bytes: bytes, baseTime: header.baseTime, scratch: scratch, version: header.version) } catch {
                throw TraceStoreError.corruptChunk(path: store.path, run: run, chunk: chunk, reason: "\(error)")
            }
            var index = 0
            while true {
                let decoded: RawEvent?
                do { decoded = try decoder.next() } catch {
                    throw TraceStoreError.corruptChunk(path: store.path, run: run, chunk: chunk, reason: "\(error)")
                }
                guard let event = decoded else { break }
                if index >= header.eventCount {
                    throw TraceStoreError.corruptChunk(path: store.path, run: run, chunk: chunk, reason: "more events than the header's \(header.eventCount)")
                }
                if index >= skip && (stopTime == nil || event.time >= stopTime!) {
                    if try !body(header.firstEventNumber + UInt64(index), event) { return false }
                }
                index += 1
            }
            if index != header.eventCount || !decoder.consumedEverything {
                throw TraceStoreError.corruptChunk(path: store.path, run: run, chunk: chunk, reason: "\(index) events decoded, header says \(header.eventCount)")
            }
            return true
        }
    }

    /// Decodes every event of the chunk just loaded, checking the count against the header.
    func visitLoadedChunk(_ header: ChunkHeader, chunk: UInt32, _ body: (RawEvent) -> Void) throws -> Bool {
        try visitLoaded(header, chunk: chunk, skip: 0, until: nil) { _, event in
            body(event)
            return true
        }
    }

    /// Streams events from event number `start` on, calling `body(number, event)`; the event's
    /// payload is valid only during the call. `body` returns false to stop early.
    /// - Complexity: O(events visited), plus one index lookup.
    public func forEach(from start: UInt64 = 0, _ body: (UInt64, RawEvent) throws -> Bool) throws {
        guard start < info.eventCount else { return }
        guard let first = try chunkContaining(event: start) else { return }
        var chunk = first
        while chunk < info.chunkCount {
            let header = try loadChunk(chunk)
            let skip = start > header.firstEventNumber ? Int(start - header.firstEventNumber) : 0
            if try !visitLoaded(header, chunk: chunk, skip: skip, until: nil, body) { return }
            chunk += 1
        }
    }

    /// Streams events whose time is at least `time`, like `forEach(from:)`.
    public func forEach(fromTime time: UInt64, _ body: (UInt64, RawEvent) throws -> Bool) throws {
        guard let first = try chunkContaining(time: time) else { return }
        var chunk = first
        var stopTime: UInt64? = time
        while chunk < info.chunkCount {
            let header = try loadChunk(chunk)
            if try !visitLoaded(header, chunk: chunk, skip: 0, until: stopTime, body) { return }
            stopTime = nil
            chunk += 1
        }
    }

    /// All events in `range` (event numbers), materialized.
    public func events(_ range: Range<UInt64>) throws -> [NumberedEvent] {
        var result: [NumberedEvent] = []
        try forEach(from: range.lowerBound) { number, event in
            guard number < range.upperBound else { return false }
            result.append(NumberedEvent(number: number, event: event.materialize()))
            return true
        }
        return result
    }

    /// Every event of the run, materialized. For small runs and tests; stream large ones.
    public func allEvents() throws -> [Event] {
        var result: [Event] = []
        result.reserveCapacity(Int(info.eventCount))
        try forEach { _, event in
            result.append(event.materialize())
            return true
        }
        return result
    }

    /// Event number `number`, reading exactly one chunk.
    public func event(at number: UInt64) throws -> Event? {
        var found: Event?
        try forEach(from: number) { _, event in
            found = event.materialize()
            return false
        }
        return found
    }

    /// The first event at or after virtual time `time`, with its number, reading one chunk.
    public func firstEvent(atOrAfter time: UInt64) throws -> NumberedEvent? {
        var found: NumberedEvent?
        try forEach(fromTime: time) { number, event in
            found = NumberedEvent(number: number, event: event.materialize())
            return false
        }
        return found
    }

    /// The chunk that holds event `number` (the first whose last event number is ≥ it).
    func chunkContaining(event number: UInt64) throws -> UInt32? {
        try lookup(store.byEventDB, key: TraceStore.runAndNumberKey(info.id, number))
    }

    /// The chunk holding the first event at or after `time` (the first whose last time is ≥ it).
    func chunkContaining(time: UInt64) throws -> UInt32? {
        try lookup(store.byTimeDB, key: TraceStore.timeKey(info.id, time, 0))
    }

    private func lookup(_ database: LMDBDatabase, key: [UInt8]) throws -> UInt32? {
        let prefix = TraceStore.runKey(info.id)
        let store = store
        let run = info.id
        let value = try store.storage { (txn) throws(LMDBError) -> [UInt8]? in
            try txn.withCursor(database) { (cursor) throws(LMDBError) -> [UInt8]? in
                guard let entry = try cursor.seek(atLeast: key), entry.key.starts(with: prefix) else { return nil }
                return entry.value
            }
        }
        guard let value else { return nil }
        guard let chunk = Bytes.readBigEndian32(value, at: 0), chunk < info.chunkCount else {
            throw TraceStoreError.corruptRun(path: store.path, run: run, reason: "index entry points at no chunk")
        }
        return chunk
    }
}
