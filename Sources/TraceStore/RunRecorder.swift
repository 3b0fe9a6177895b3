import Foundation

/// Appends the events of one run to a store. Events are encoded into a chunk of
/// `Options.chunkSize` raw bytes on the caller's thread; full chunks go to a writer thread that
/// compresses each and commits it in a transaction of its own (with its index entries and the
/// run's updated metadata), so a process that dies loses at most the chunks in flight.
/// The writer thread only persists bytes already decided: it cannot change what a run does.
///
/// Use from one thread. Call `finish` at the end; a recorder dropped without it marks its run
/// `incomplete`.
public final class RunRecorder {
    public let store: TraceStore
    @usableFromInline let kindCounts: UnsafeMutablePointer<UInt64> = {
        let counts = UnsafeMutablePointer<UInt64>.allocate(capacity: 32)
        counts.initialize(repeating: 0, count: 32)
        return counts
    }()
    @usableFromInline var finished = false
    private let chunkSize: Int
    private let writer: ChunkWriter
    @usableFromInline var batch: RecordBuffer
    /// Events handed to the writer so far.
    private var handedOff: UInt64 = 0
    @usableFromInline var lastTime: UInt64 = 0
    public let runID: UInt64

    init(store: TraceStore, info: RunInfo) {
        self.store = store
        self.runID = info.id
        self.chunkSize = max(store.options.chunkSize, 64)
        self.writer = ChunkWriter(store: store, info: info, chunkSize: chunkSize)
        self.batch = RecordBuffer(chunkSize: chunkSize)
    }

    deinit {
        if !finished {
            // Best effort: keep what was recorded and say the run did not finish.
            try? handOff()
            writer.drain()
            var info = writer.committed
            info.status = .incomplete
            try? store.saveRunInfo(info)
        }
        writer.stop()
        batch.deallocate()
        kindCounts.deallocate()
    }

    /// The run's metadata as committed so far.
    public var info: RunInfo { writer.committed }

    /// Events appended so far, committed or not.
    public var eventCount: UInt64 { handedOff + UInt64(batch.count) }

    /// Appends one event. Times must not decrease. The event is copied into a batch; encoding,
    /// compression and the commit happen on the writer thread, so this costs a few nanoseconds.
    /// - Complexity: amortized O(payload size).
    @inlinable
    public func append(kind: EventKind, time: UInt64, node: UInt32 = 0, peer: UInt32 = 0, id: UInt64 = 0,
                       payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws {
        precondition(!finished, "append after finish")
        precondition(time >= lastTime, "event time went backwards: \(time) after \(lastTime)")
        lastTime = time
        kindCounts[Int(kind.rawValue)] &+= 1
        if batch.append(kind: kind, time: time, node: node, peer: peer, id: id, payload: payload) { try handOff() }
    }

    public func append(_ event: Event) throws {
        try event.payload.withUnsafeBytes { raw in
            try append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: raw)
        }
    }

    /// Hands the batch to the writer as one chunk.
    @usableFromInline
    func handOff() throws {
        guard batch.count > 0 else { return }
        batch.firstEventNumber = handedOff
        handedOff += UInt64(batch.count)
        let full = batch
        batch = writer.recycledBatch() ?? RecordBuffer(chunkSize: chunkSize)
        try writer.submit(full)
    }

    /// Commits everything appended so far, waiting for the writer.
    public func flush() throws {
        try handOff()
        writer.drain()
        if let failure = writer.failure { throw failure }
    }

    /// Stores a checkpoint of the system's state as of event `number`.
    public func putCheckpoint(atEvent number: UInt64, state: [UInt8]) throws {
        let store = store
        let run = runID
        try store.storageWrite { (txn) throws(LMDBError) in
            try txn.put(store.checkpointsDB, key: TraceStore.runAndNumberKey(run, number), value: state)
        }
    }

    /// Commits what is buffered and marks the run complete with its verdict.
    @discardableResult
    public func finish(verdict: String, summary: String? = nil, virtualEndTime: UInt64, digest: String? = nil) throws -> RunInfo {
        precondition(!finished, "finish called twice")
        try flush()
        finished = true
        writer.stop()
        var info = writer.committed
        info.status = .complete
        info.verdict = verdict
        info.summary = summary
        info.virtualEndTime = virtualEndTime
        info.digest = digest
        var counts: [String: UInt64] = [:]
        for kind in EventKind.allCases where kindCounts[Int(kind.rawValue)] > 0 {
            counts[kind.name] = kindCounts[Int(kind.rawValue)]
        }
        info.kindCounts = counts
        try store.saveRunInfo(info)
        return info
    }
}

/// Events of one future chunk as plain records plus a payload arena: cheap to fill on the
/// simulation's thread, encoded on the writer's. A value holding raw memory: exactly one owner
/// (the recorder, the writer's queue or its spares) frees it with `deallocate`.
@usableFromInline
struct RecordBuffer: @unchecked Sendable {
    @usableFromInline
    struct Record {
        @usableFromInline var time: UInt64
        @usableFromInline var id: UInt64
        @usableFromInline var node: UInt32
        @usableFromInline var peer: UInt32
        @usableFromInline var payloadLength: UInt32
        @usableFromInline var kind: EventKind

        @inlinable
        init(time: UInt64, id: UInt64, node: UInt32, peer: UInt32, payloadLength: UInt32, kind: EventKind) {
            self.time = time
            self.id = id
            self.node = node
            self.peer = peer
            self.payloadLength = payloadLength
            self.kind = kind
        }
    }

    @usableFromInline let capacity: Int
    @usableFromInline let records: UnsafeMutablePointer<Record>
    @usableFromInline var count = 0
    @usableFromInline var payloads: UnsafeMutablePointer<UInt8>
    @usableFromInline var payloadCapacity: Int
    @usableFromInline var payloadCount = 0
    /// The estimated encoded size at which the batch is full.
    @usableFromInline let chunkSize: Int
    var firstEventNumber: UInt64 = 0

    init(chunkSize: Int) {
        self.chunkSize = chunkSize
        // An encoded event takes at least 3 bytes; 2 is a safe floor for the record count.
        capacity = Swift.max(chunkSize / 2, 16)
        records = .allocate(capacity: capacity)
        payloadCapacity = Swift.max(chunkSize, 256)
        payloads = .allocate(capacity: payloadCapacity)
    }

    func deallocate() {
        records.deallocate()
        payloads.deallocate()
    }

    mutating func reset() {
        count = 0
        payloadCount = 0
    }

    /// Adds a record; returns true when the batch is full.
    @inlinable
    mutating func append(kind: EventKind, time: UInt64, node: UInt32, peer: UInt32, id: UInt64, payload: UnsafeRawBufferPointer) -> Bool {
        if !payload.isEmpty {
            if payloadCount + payload.count > payloadCapacity { growPayloads(payloadCount + payload.count) }
            (payloads + payloadCount).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
            payloadCount += payload.count
        }
        records[count] = Record(time: time, id: id, node: node, peer: peer, payloadLength: UInt32(payload.count), kind: kind)
        count += 1
        // About 6 encoded bytes per event plus payloads.
        return count == capacity || count &* 6 &+ payloadCount >= chunkSize
    }

    @usableFromInline
    mutating func growPayloads(_ needed: Int) {
        var newCapacity = payloadCapacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        grown.update(from: payloads, count: payloadCount)
        payloads.deallocate()
        payloads = grown
        payloadCapacity = newCapacity
    }

    /// Encodes every record into `encoder` (after a reset).
    func encode(into encoder: EventEncoder) {
        encoder.reset()
        encoder.append(records: records, count: count, payloads: payloadCount == 0 ? nil : UnsafePointer(payloads))
    }
}

/// Compresses and commits chunks on a thread of its own, a few chunks behind the recorder.
final class ChunkWriter: @unchecked Sendable {
    private let store: TraceStore
    private let condition = NSCondition()
    private var queue: [RecordBuffer] = []
    private var spare: [RecordBuffer] = []
    private let chunkSize: Int
    private var busy = false
    private var stopping = false
    private var stopped = false
    private var committedInfo: RunInfo
    private var firstFailure: Error?
    /// Chunks waiting before `submit` blocks.
    private let depth = 3

    init(store: TraceStore, info: RunInfo, chunkSize: Int) {
        self.store = store
        self.committedInfo = info
        self.chunkSize = chunkSize
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "chaostrace-chunk-writer"
        thread.start()
    }

    var committed: RunInfo {
        condition.lock()
        defer { condition.unlock() }
        return committedInfo
    }

    var failure: Error? {
        condition.lock()
        defer { condition.unlock() }
        return firstFailure
    }

    func submit(_ batch: RecordBuffer) throws {
        condition.lock()
        defer { condition.unlock() }
        if let firstFailure {
            batch.deallocate()
            throw firstFailure
        }
        while queue.count >= depth && !stopped { condition.wait() }
        if stopped {
            batch.deallocate()
            return
        }
        queue.append(batch)
        condition.broadcast()
    }

    /// An emptied batch to fill again, if one is free.
    func recycledBatch() -> RecordBuffer? {
        condition.lock()
        defer { condition.unlock() }
        return spare.popLast()
    }

    /// Waits until every submitted chunk is committed (or has failed).
    func drain() {
        condition.lock()
        while (!queue.isEmpty || busy) && !stopped { condition.wait() }
        condition.unlock()
    }

    /// Ends the thread after the chunks already submitted.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        let compressor = ZstdCompressor(level: store.options.compressionLevel)
        let encoder = EventEncoder(capacity: chunkSize)
        var bytes: [UInt8] = []
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                for buffer in spare { buffer.deallocate() }
                spare.removeAll()
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            var batch = queue.removeFirst()
            busy = true
            let failed = firstFailure != nil
            let info = committedInfo
            condition.broadcast()
            condition.unlock()
            var next = info
            var failure: Error?
            if !failed {
                do {
                    batch.encode(into: encoder)
                    let raw = encoder.finish()
                    let header = ChunkHeader(eventCount: batch.count, rawSize: raw.count, firstEventNumber: batch.firstEventNumber,
                                             baseTime: encoder.baseTime, lastTime: encoder.lastTime)
                    bytes.removeAll(keepingCapacity: true)
                    bytes.append(contentsOf: header.encoded())
                    try compressor.compress(raw, boundaries: encoder.boundaries, appendingTo: &bytes)
                    next = try store.commitChunk(run: info, header: header, bytes: bytes)
                } catch let error as ZstdError {
                    failure = TraceStoreError.compression(path: store.path, reason: error.name)
                } catch {
                    failure = error
                }
            }
            batch.reset()
            condition.lock()
            if spare.count < depth + 2 { spare.append(batch) } else { batch.deallocate() }
            busy = false
            if let failure, firstFailure == nil { firstFailure = failure }
            if failure == nil && !failed { committedInfo = next }
            condition.broadcast()
            condition.unlock()
        }
    }
}

extension TraceStore {
    /// Commits one compressed chunk of `run` with its index entries and the run's new metadata.
    func commitChunk(run info: RunInfo, header: ChunkHeader, bytes: [UInt8]) throws -> RunInfo {
        let chunk = info.chunkCount
        var next = info
        next.eventCount += UInt64(header.eventCount)
        next.chunkCount += 1
        next.lastEventTime = header.lastTime
        next.storedBytes += UInt64(bytes.count)
        let run = info.id
        let infoBytes = RunInfoCoding.encode(next)
        try storageWrite { (txn) throws(LMDBError) in
            try txn.put(chunksDB, key: TraceStore.chunkKey(run, chunk), value: bytes)
            var chunkValue: [UInt8] = []
            Bytes.appendBigEndian(chunk, to: &chunkValue)
            try txn.put(byEventDB, key: TraceStore.runAndNumberKey(run, header.lastEventNumber), value: chunkValue)
            try txn.put(byTimeDB, key: TraceStore.timeKey(run, header.lastTime, chunk), value: chunkValue)
            try txn.put(runsDB, key: TraceStore.runKey(run), value: infoBytes)
        }
        if options.syncEveryChunks > 0 && next.chunkCount % UInt32(options.syncEveryChunks) == 0 {
            try sync()
        }
        return next
    }

    func saveRunInfo(_ info: RunInfo) throws {
        let key = TraceStore.runKey(info.id)
        let bytes = RunInfoCoding.encode(info)
        try storageWrite { (txn) throws(LMDBError) in try txn.put(runsDB, key: key, value: bytes) }
    }
}
