/// Appends the events of one run to a store. Events are buffered into a chunk of
/// `Options.chunkSize` raw bytes, which is compressed and committed in a transaction of its own
/// (together with its index entries and the run's updated metadata), so a process that dies loses
/// at most the chunk in flight.
///
/// Not thread-safe. Call `finish` at the end; a recorder dropped without it marks its run
/// `incomplete`.
public final class RunRecorder {
    public let store: TraceStore
    public private(set) var info: RunInfo
    private let encoder: EventEncoder
    private let compressor: ZstdCompressor
    private var chunkBytes: [UInt8] = []
    private var kindCounts = [UInt64](repeating: 0, count: 32)
    private var finished = false
    private let chunkSize: Int

    init(store: TraceStore, info: RunInfo) {
        self.store = store
        self.info = info
        self.chunkSize = max(store.options.chunkSize, 64)
        self.encoder = EventEncoder(capacity: chunkSize)
        self.compressor = ZstdCompressor(level: store.options.compressionLevel)
    }

    deinit {
        if !finished {
            // Best effort: keep what was buffered and say the run did not finish.
            try? flush()
            info.status = .incomplete
            try? saveInfo()
        }
    }

    public var runID: UInt64 { info.id }

    /// Events appended so far, committed or buffered.
    public var eventCount: UInt64 { info.eventCount + UInt64(encoder.eventCount) }

    /// Appends one event. Times must not decrease.
    /// - Complexity: amortized O(payload size); every `chunkSize` bytes a chunk is compressed and committed.
    @inline(__always)
    public func append(kind: EventKind, time: UInt64, node: UInt32 = 0, peer: UInt32 = 0, id: UInt64 = 0,
                       payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws {
        precondition(!finished, "append after finish")
        encoder.append(kind: kind, time: time, node: node, peer: peer, id: id, payload: payload)
        kindCounts[Int(kind.rawValue)] &+= 1
        if encoder.count >= chunkSize { try flush() }
    }

    public func append(_ event: Event) throws {
        try event.payload.withUnsafeBytes { (raw) throws in
            try append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: raw)
        }
    }

    /// Compresses and commits the buffered events as one chunk.
    public func flush() throws {
        guard encoder.eventCount > 0 else { return }
        let raw = encoder.finish()
        let header = ChunkHeader(eventCount: encoder.eventCount, rawSize: raw.count,
                                 firstEventNumber: info.eventCount, baseTime: encoder.baseTime, lastTime: encoder.lastTime)
        chunkBytes.removeAll(keepingCapacity: true)
        chunkBytes.append(contentsOf: header.encoded())
        do { try compressor.compress(raw, appendingTo: &chunkBytes) } catch {
            throw TraceStoreError.compression(path: store.path, reason: "\(error)")
        }
        let chunk = info.chunkCount
        var next = info
        next.eventCount += UInt64(header.eventCount)
        next.chunkCount += 1
        next.lastEventTime = header.lastTime
        next.storedBytes += UInt64(chunkBytes.count)
        let run = info.id
        let value = chunkBytes
        let infoBytes = RunInfoCoding.encode(next)
        let store = store
        try store.storageWrite { (txn) throws(LMDBError) in
            try txn.put(store.chunksDB, key: TraceStore.chunkKey(run, chunk), value: value)
            var chunkValue: [UInt8] = []
            Bytes.appendBigEndian(chunk, to: &chunkValue)
            try txn.put(store.byEventDB, key: TraceStore.runAndNumberKey(run, header.lastEventNumber), value: chunkValue)
            try txn.put(store.byTimeDB, key: TraceStore.timeKey(run, header.lastTime, chunk), value: chunkValue)
            try txn.put(store.runsDB, key: TraceStore.runKey(run), value: infoBytes)
        }
        info = next
        encoder.reset()
        if store.options.syncEveryChunks > 0 && info.chunkCount % UInt32(store.options.syncEveryChunks) == 0 {
            try store.sync()
        }
    }

    /// Stores a checkpoint of the system's state as of event `number`.
    public func putCheckpoint(atEvent number: UInt64, state: [UInt8]) throws {
        let store = store
        let run = info.id
        try store.storageWrite { (txn) throws(LMDBError) in
            try txn.put(store.checkpointsDB, key: TraceStore.runAndNumberKey(run, number), value: state)
        }
    }

    /// Commits what is buffered and marks the run complete with its verdict.
    @discardableResult
    public func finish(verdict: String, summary: String? = nil, virtualEndTime: UInt64) throws -> RunInfo {
        precondition(!finished, "finish called twice")
        try flush()
        finished = true
        info.status = .complete
        info.verdict = verdict
        info.summary = summary
        info.virtualEndTime = virtualEndTime
        var counts: [String: UInt64] = [:]
        for kind in EventKind.allCases where kindCounts[Int(kind.rawValue)] > 0 {
            counts[kind.name] = kindCounts[Int(kind.rawValue)]
        }
        info.kindCounts = counts
        try saveInfo()
        try store.sync()
        return info
    }

    private func saveInfo() throws {
        let store = store
        let key = TraceStore.runKey(info.id)
        let bytes = RunInfoCoding.encode(info)
        try store.storageWrite { (txn) throws(LMDBError) in try txn.put(store.runsDB, key: key, value: bytes) }
    }
}
