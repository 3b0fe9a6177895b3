/// One thing `verify` found wrong.
public struct VerifyProblem: Codable, Equatable, Sendable, CustomStringConvertible {
    public var run: UInt64?
    public var chunk: UInt32?
    public var message: String

    public var description: String {
        var place: [String] = []
        if let run { place.append("run \(run)") }
        if let chunk { place.append("chunk \(chunk)") }
        return (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + message
    }
}

/// What `verify` checked and found.
public struct VerifyReport: Codable, Equatable, Sendable {
    public var path: String
    public var runs = 0
    public var chunks = 0
    public var events: UInt64 = 0
    public var incompleteRuns: [UInt64] = []
    public var problems: [VerifyProblem] = []
    public var ok: Bool { problems.isEmpty }
}

extension TraceStore {
    /// Decompresses every chunk (zstd checks each frame's checksum), decodes every event, and checks
    /// event counts, numbering, time order and both indexes against the run metadata. Damage is
    /// reported, not thrown; only a store that cannot be read at all throws.
    /// - Complexity: O(total events).
    public func verify() throws -> VerifyReport {
        var report = VerifyReport(path: path)
        let entries = try storage { (txn) throws(LMDBError) -> [LMDBCursor.Entry] in
            try txn.withCursor(runsDB) { (cursor) throws(LMDBError) -> [LMDBCursor.Entry] in
                var entries: [LMDBCursor.Entry] = []
                var entry = try cursor.first()
                while let current = entry {
                    entries.append(current)
                    entry = try cursor.next()
                }
                return entries
            }
        }
        for entry in entries {
            guard entry.key.count == 8, let id = Bytes.readBigEndian64(entry.key, at: 0) else {
                report.problems.append(VerifyProblem(message: "run metadata under a malformed key"))
                continue
            }
            report.runs += 1
            let info: RunInfo
            do { info = try decodeRunInfo(entry.value, run: id) } catch {
                report.problems.append(VerifyProblem(run: id, message: "metadata is not readable JSON"))
                continue
            }
            if info.status == .incomplete { report.incompleteRuns.append(id) }
            verifyRun(info, into: &report)
        }
        // Chunks and index entries must belong to a known run. The runs are listed again in the
        // same read transaction as the scan: a writer at work meanwhile starts runs whose chunks
        // must not pass for orphans.
        for database in [(chunksDB, "chunks"), (byEventDB, "event index entries"), (byTimeDB, "time index entries")] {
            let orphans = try storage { (txn) throws(LMDBError) -> [UInt64] in
                let runs = try txn.withCursor(runsDB) { (cursor) throws(LMDBError) -> Set<UInt64> in
                    var runs = Set<UInt64>()
                    var entry = try cursor.first()
                    while let current = entry {
                        if let id = Bytes.readBigEndian64(current.key, at: 0) { runs.insert(id) }
                        entry = try cursor.next()
                    }
                    return runs
                }
                return try txn.withCursor(database.0) { (cursor) throws(LMDBError) -> [UInt64] in
                    var orphans: [UInt64] = []
                    var entry = try cursor.first()
                    while let current = entry {
                        let run = Bytes.readBigEndian64(current.key, at: 0) ?? UInt64.max
                        if !runs.contains(run) && orphans.last != run { orphans.append(run) }
                        entry = try cursor.next()
                    }
                    return orphans
                }
            }
            for run in orphans {
                report.problems.append(VerifyProblem(run: run, message: "\(database.1) of a run with no metadata"))
            }
        }
        return report
    }

    private func verifyRun(_ info: RunInfo, into report: inout VerifyReport) {
        let reader = RunReader(store: self, info: info)
        var expectedNumber: UInt64 = 0
        var previousTime: UInt64 = 0
        for chunk in 0..<info.chunkCount {
            report.chunks += 1
            do {
                let header = try reader.loadChunk(chunk)
                if header.firstEventNumber != expectedNumber {
                    report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "starts at event \(header.firstEventNumber), expected \(expectedNumber)"))
                }
                var lastTime = header.baseTime
                var decodedTimeOrder = true
                var count = 0
                _ = try reader.visitLoadedForVerify(header, chunk: chunk) { event in
                    if event.time < previousTime || event.time < lastTime { decodedTimeOrder = false }
                    lastTime = event.time
                    count += 1
                }
                if !decodedTimeOrder {
                    report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "virtual time goes backwards"))
                }
                if lastTime != header.lastTime {
                    report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "last event time \(lastTime) differs from the header's \(header.lastTime)"))
                }
                if try reader.chunkContaining(event: header.lastEventNumber) != chunk {
                    report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "event index does not point at this chunk"))
                }
                let byTime = try storage { (txn) throws(LMDBError) in
                    try txn.get(byTimeDB, key: TraceStore.timeKey(info.id, header.lastTime, chunk))
                }
                if byTime.flatMap({ Bytes.readBigEndian32($0, at: 0) }) != chunk {
                    report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "time index entry missing or wrong"))
                }
                previousTime = lastTime
                expectedNumber = header.firstEventNumber + UInt64(count)
                report.events += UInt64(count)
            } catch let error as TraceStoreError {
                report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: Self.shortReason(error)))
                // Later chunks are still checked; numbering continues from the index.
                if let next = try? reader.firstNumber(ofChunk: chunk + 1) { expectedNumber = next }
            } catch {
                report.problems.append(VerifyProblem(run: info.id, chunk: chunk, message: "\(error)"))
            }
        }
        // A run a live writer is still recording grows while it is checked: its chunks are
        // checked as far as its metadata went when it was listed.
        if info.status == .running { return }
        if expectedNumber != info.eventCount && report.problems.allSatisfy({ $0.run != info.id }) {
            report.problems.append(VerifyProblem(run: info.id, message: "holds \(expectedNumber) events, metadata says \(info.eventCount)"))
        }
        if (try? rawChunk(run: info.id, chunk: info.chunkCount)) ?? nil != nil {
            report.problems.append(VerifyProblem(run: info.id, chunk: info.chunkCount, message: "chunk beyond the run's recorded chunk count"))
        }
    }

    static func shortReason(_ error: TraceStoreError) -> String {
        switch error {
        case .corruptChunk(_, _, _, let reason): reason
        case .corruptRun(_, _, let reason): reason
        default: error.description
        }
    }
}

extension RunReader {
    func visitLoadedForVerify(_ header: ChunkHeader, chunk: UInt32, _ body: (RawEvent) -> Void) throws -> Bool {
        try visitLoadedChunk(header, chunk: chunk) { event in body(event) }
    }

    /// The first event number of `chunk`, from the index (without reading the chunk).
    func firstNumber(ofChunk chunk: UInt32) throws -> UInt64? {
        guard chunk < info.chunkCount, let bytes = try store.rawChunk(run: info.id, chunk: chunk) else { return nil }
        return try bytes.withUnsafeBytes { raw in try ChunkHeader.parse(raw).0.firstEventNumber }
    }
}
