import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file holding many recorded runs: one LMDB environment with named databases for run
/// metadata (`runs`), compressed event chunks (`chunks`), two indexes (`by-event`, `by-time`),
/// state checkpoints (`checkpoints`) and the store's format version (`meta`).
///
/// Keys are big-endian so LMDB's byte order is numeric order:
/// - `chunks`:      run(8) chunk(4)              → chunk header + zstd frame
/// - `by-event`:    run(8) lastEventNumber(8)    → chunk(4)
/// - `by-time`:     run(8) lastTime(8) chunk(4)  → chunk(4)
/// - `checkpoints`: run(8) eventNumber(8)        → state bytes
/// - `runs`:        run(8)                       → RunInfo JSON
///
/// Not thread-safe; one instance per file per process (an LMDB rule).
public final class TraceStore {
    public struct Options: Sendable {
        public var readOnly = false
        /// Raw bytes buffered before a chunk is compressed and committed.
        /// (128 KiB: about 20,000 events of a simulation, decoded in well under a millisecond on a
        /// seek, and packed 5 % smaller than 64 KiB chunks.)
        public var chunkSize = 128 << 10
        /// zstd level (3: the best size that keeps recording within its overhead budget).
        public var compressionLevel: Int32 = 3
        /// Initial LMDB map size; it grows on demand.
        public var initialMapSize = 64 << 20
        /// Flush to disk every this many chunks and when the store is closed. Commits are atomic
        /// either way: a crashed process loses at most the chunks in flight; a crashed machine may
        /// lose what was committed since the last flush.
        public var syncEveryChunks = 256
        public init() {}
    }

    public let path: String
    public let options: Options
    let environment: LMDBEnvironment
    let runsDB: LMDBDatabase
    let chunksDB: LMDBDatabase
    let byEventDB: LMDBDatabase
    let byTimeDB: LMDBDatabase
    let checkpointsDB: LMDBDatabase
    let metaDB: LMDBDatabase

    static let databaseNames = ["meta", "runs", "chunks", "by-event", "by-time", "checkpoints"]

    /// Opens the store at `path`, creating it unless `readOnly`. Runs left `running` by a writer
    /// that is gone are marked `incomplete`.
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        let existed = fileManager.fileExists(atPath: path, isDirectory: &isDirectory)
        if isDirectory.boolValue { throw TraceStoreError.notAStore(path: path, reason: "it is a directory") }
        // A pipe, a device or a socket: opening it to read its header could wait forever.
        var status = stat()
        if existed && stat(path, &status) == 0 && status.st_mode & S_IFMT != S_IFREG {
            throw TraceStoreError.notAStore(path: path, reason: "it is not a regular file (a pipe, a device or a socket)")
        }
        if !existed {
            if options.readOnly { throw TraceStoreError.storeMissing(path: path) }
            let directory = PathParts.split(path).directory
            if !directory.isEmpty && !fileManager.fileExists(atPath: directory) {
                do { try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                    throw TraceStoreError.notAStore(path: path, reason: "cannot create directory \(directory): \(error.localizedDescription)")
                }
            }
        }
        // LMDB maps the file and trusts its header: a file that is not a store, or one cut short
        // (a partial copy or download), must be turned away before it is mapped, or reading a page
        // past its end kills the process.
        let hint = existed ? try Self.checkHeader(path: path, readOnly: options.readOnly) : nil
        var environmentOptions = LMDBEnvironment.Options()
        environmentOptions.damageHint = hint
        environmentOptions.readOnly = options.readOnly
        environmentOptions.noSync = true
        environmentOptions.initialMapSize = options.initialMapSize
        func opened(_ options: LMDBEnvironment.Options) throws -> LMDBEnvironment {
            do { return try LMDBEnvironment(path: path, options: options) } catch {
                if error.meansBadFile { throw TraceStoreError.notAStore(path: path, reason: error.message) }
                throw TraceStoreError.storage(path: path, error: error)
            }
        }
        do {
            environment = try opened(environmentOptions)
        } catch TraceStoreError.storage(_, let error) where options.readOnly && (error.rawValue == EACCES || error.rawValue == EROFS)
                    && !fileManager.fileExists(atPath: path + "-lock") {
            // A readable store in a directory we may not write (a read-only mount, someone else's
            // bug report): its lock file cannot be made, so no writer can be at work there either
            // (a writer would have made one): read it without one.
            environmentOptions.noLock = true
            environment = try opened(environmentOptions)
        }
        let environment = environment
        /// A database that cannot be opened means the file is not a store (or a damaged one).
        func failure(_ error: LMDBError, _ missing: String) -> TraceStoreError {
            if error == .notFound || error.meansBadFile || error.rawValue == EINVAL {
                return .notAStore(path: path, reason: "\(missing) missing")
            }
            return .storage(path: path, error: error)
        }
        func open(_ name: String, create: Bool) throws -> LMDBDatabase {
            do { return try environment.database(named: name, create: create) } catch { throw failure(error, "database '\(name)' is") }
        }
        if options.readOnly {
            metaDB = try open("meta", create: false)
            runsDB = try open("runs", create: false)
            chunksDB = try open("chunks", create: false)
            byEventDB = try open("by-event", create: false)
            byTimeDB = try open("by-time", create: false)
            checkpointsDB = try open("checkpoints", create: false)
            try checkFormatVersion(isNew: false)
        } else {
            // Set up in one write transaction: another process opening the file meanwhile waits for
            // LMDB's writer lock and then finds the store whole. A file with nothing in it is a
            // store not yet set up (just created, here or by another process); a file with other
            // content must already be a store: never add our databases to someone else's.
            let databases: [LMDBDatabase]
            do {
                databases = try environment.write { (txn) throws(LMDBError) -> [LMDBDatabase] in
                    let isNew = try txn.mainDatabaseIsEmpty()
                    var opened: [LMDBDatabase] = []
                    for name in Self.databaseNames {
                        opened.append(try txn.openDatabase(name, create: isNew))
                    }
                    if isNew {
                        try txn.put(opened[0], key: Self.formatVersionKey, value: Array(String(EventCodec.formatVersion).utf8))
                    }
                    return opened
                }
            } catch {
                throw failure(error, "its databases are")
            }
            (metaDB, runsDB, chunksDB, byEventDB, byTimeDB, checkpointsDB) =
                (databases[0], databases[1], databases[2], databases[3], databases[4], databases[5])
            try checkFormatVersion(isNew: false)
        }
        if !options.readOnly { try markDeadRunsIncomplete() }
    }

    /// Reads the LMDB header of an existing file before LMDB maps it: refuses an empty file (unless
    /// it is to be set up as a new store), a file without LMDB's magic number, and a file that ends
    /// before the root pages its newest header names (cut short while being copied). The size is
    /// taken after the header is read: LMDB writes a transaction's pages before the header naming
    /// them, so a store another process is writing meanwhile is never taken for a cut one.
    /// Returns a hint for the crash guard's message when the file ends before the last page its
    /// header names (legitimate only when the pages past the end are free).
    @discardableResult
    static func checkHeader(path: String, readOnly: Bool) throws -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let reason = access(path, R_OK) != 0 ? String(cString: strerror(errno)).lowercased() : "it cannot be opened"
            throw TraceStoreError.notAStore(path: path, reason: "cannot read it: \(reason)")
        }
        defer { try? handle.close() }
        // Each of the two meta pages: a 16-byte page header, then the magic number, the version,
        // the map address and size, the free-page database (whose first field holds the page
        // size; its root page at 80), the main database (its root page at 128), the last page
        // used and the transaction id.
        func meta(at offset: UInt64) -> (pageSize: UInt64, roots: [UInt64], lastPage: UInt64, transaction: UInt64)? {
            guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.read(upToCount: 152), data.count == 152 else { return nil }
            let bytes = [UInt8](data)
            func integer(_ at: Int, _ width: Int) -> UInt64 {
                var value: UInt64 = 0
                for index in (0..<width).reversed() { value = value << 8 | UInt64(bytes[at + index]) }
                return value
            }
            guard integer(16, 4) == 0xBEEF_C0DE else { return nil }
            // An empty database has no root (all bits set).
            let roots = [integer(80, 8), integer(128, 8)].filter { $0 != UInt64.max }
            return (integer(40, 4), roots, integer(136, 8), integer(144, 8))
        }
        let first = meta(at: 0)
        let second = first.flatMap { meta(at: $0.pageSize) }
        let size = (try? handle.seekToEnd()) ?? 0
        if size == 0 {
            if readOnly { throw TraceStoreError.notAStore(path: path, reason: "the file is empty: no run was ever recorded in it") }
            return nil
        }
        // A writer leaves the rest to LMDB: another process may be setting the file up right now.
        guard readOnly else { return nil }
        guard let first else {
            throw TraceStoreError.notAStore(path: path, reason: size < 152 ? "it is too short to be one (\(size) bytes)" : "it has no store header")
        }
        let pageSize = first.pageSize
        guard pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else {
            throw TraceStoreError.notAStore(path: path, reason: "its header is damaged (page size \(pageSize))")
        }
        var newest = first
        if let second, second.transaction > first.transaction { newest = second }
        let pages = size / pageSize
        for root in newest.roots where root >= pages {
            throw TraceStoreError.notAStore(path: path, reason: "it is truncated: \(size) bytes, and its header names page \(root) (of \(pageSize) bytes); "
                                            + "it was cut short while being copied or written")
        }
        guard newest.lastPage >= pages else { return nil }
        return "It is also shorter than its header says (\(size) bytes, pages up to \(newest.lastPage) of \(pageSize) bytes): "
            + "it was probably cut short while being copied or downloaded."
    }

    deinit {
        // Commits skip fsync; flush them when the store is closed.
        if !options.readOnly { try? environment.sync() }
    }

    static let formatVersionKey = Array("format_version".utf8)
    static let nextRunKey = Array("next_run_id".utf8)

    private func checkFormatVersion(isNew: Bool) throws {
        let stored = try storage { (txn) throws(LMDBError) in try txn.get(metaDB, key: Self.formatVersionKey) }
        if let stored {
            let text = String(decoding: stored, as: UTF8.self)
            guard EventCodec.readableFormatVersions.contains(text) else { throw TraceStoreError.unsupportedFormat(path: path, found: text) }
        } else if isNew {
            try storageWrite { (txn) throws(LMDBError) in
                try txn.put(metaDB, key: Self.formatVersionKey, value: Array(String(EventCodec.formatVersion).utf8))
            }
        } else {
            throw TraceStoreError.notAStore(path: path, reason: "no format version recorded")
        }
    }

    // MARK: - Transactions with the store's errors

    func storage<T>(_ body: (borrowing LMDBTransaction) throws(LMDBError) -> T) throws -> T {
        do { return try environment.read(body) } catch { throw mapped(error) }
    }

    func storageWrite<T>(_ body: (borrowing LMDBTransaction) throws(LMDBError) -> T) throws -> T {
        do { return try environment.write(body) } catch { throw mapped(error) }
    }

    func mapped(_ error: LMDBError) -> TraceStoreError {
        error.meansBadFile ? .notAStore(path: path, reason: error.message) : .storage(path: path, error: error)
    }

    /// Flushes everything committed to disk.
    public func sync() throws {
        do { try environment.sync() } catch { throw mapped(error) }
    }

    /// How many times the map has grown since this store was opened.
    public var mapGrowths: Int { environment.mapGrowths }

    /// Bytes of the file in use.
    public func usedBytes() throws -> Int {
        do { return try environment.usedBytes() } catch { throw mapped(error) }
    }

    // MARK: - Keys

    static func runKey(_ run: UInt64) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(20)
        Bytes.appendBigEndian(run, to: &key)
        return key
    }

    static func chunkKey(_ run: UInt64, _ chunk: UInt32) -> [UInt8] {
        var key = runKey(run)
        Bytes.appendBigEndian(chunk, to: &key)
        return key
    }

    static func runAndNumberKey(_ run: UInt64, _ number: UInt64) -> [UInt8] {
        var key = runKey(run)
        Bytes.appendBigEndian(number, to: &key)
        return key
    }

    static func timeKey(_ run: UInt64, _ time: UInt64, _ chunk: UInt32) -> [UInt8] {
        var key = runAndNumberKey(run, time)
        Bytes.appendBigEndian(chunk, to: &key)
        return key
    }

    // MARK: - Runs

    /// All runs, oldest first.
    public func runs() throws -> [RunInfo] {
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
        var result: [RunInfo] = []
        for entry in entries {
            let run = Bytes.readBigEndian64(entry.key, at: 0) ?? 0
            result.append(try decodeRunInfo(entry.value, run: run))
        }
        return result
    }

    func decodeRunInfo(_ bytes: [UInt8], run: UInt64) throws -> RunInfo {
        do {
            var info = try RunInfoCoding.decode(bytes)
            if info.status == .running && !Self.writerIsAlive(info.writerPID) { info.status = .incomplete }
            return info
        } catch {
            throw TraceStoreError.corruptRun(path: path, run: run, reason: "metadata is not readable JSON")
        }
    }

    /// The run with this id.
    public func run(_ id: UInt64) throws -> RunInfo {
        guard let bytes = try storage({ (txn) throws(LMDBError) in try txn.get(runsDB, key: Self.runKey(id)) }) else {
            throw TraceStoreError.runNotFound(path: path, run: String(id))
        }
        return try decodeRunInfo(bytes, run: id)
    }

    /// Resolves what a user typed for RUN: a run id, `latest` or `latest-failure`.
    public func resolveRun(_ spec: String) throws -> RunInfo {
        switch spec {
        case "latest":
            guard let run = try runs().last else { throw TraceStoreError.runNotFound(path: path, run: spec) }
            return run
        case "latest-failure":
            guard let run = try runs().last(where: { $0.failed }) else { throw TraceStoreError.runNotFound(path: path, run: spec) }
            return run
        default:
            guard let id = UInt64(spec.hasPrefix("#") ? String(spec.dropFirst()) : spec) else {
                throw TraceStoreError.runNotFound(path: path, run: spec)
            }
            return try run(id)
        }
    }

    static func writerIsAlive(_ pid: Int32) -> Bool {
        if pid <= 0 { return false }
        if pid == getpid() { return true }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    private func markDeadRunsIncomplete() throws {
        let dead = try runs().filter { $0.status == .incomplete }
        guard !dead.isEmpty else { return }
        try storageWrite { (txn) throws(LMDBError) in
            for info in dead {
                // Re-read inside the transaction: only a run still marked running is changed.
                guard let bytes = try txn.get(runsDB, key: Self.runKey(info.id)),
                      var stored = try? RunInfoCoding.decode(bytes), stored.status == .running else { continue }
                stored.status = .incomplete
                try txn.put(runsDB, key: Self.runKey(info.id), value: RunInfoCoding.encode(stored))
            }
        }
    }

    /// Starts recording a new run (`startedAt`: seconds since 1970, now unless copying a run).
    /// Sets aside `count` run ids, in one transaction, for runs that other processes record with
    /// `beginRun(id:)`: the ids then follow the order the caller numbers them in, not the order the
    /// processes happen to start their runs. Returns the first.
    public func reserveRunIDs(_ count: Int) throws -> UInt64 {
        guard !options.readOnly else { throw TraceStoreError.storage(path: path, error: LMDBError(rawValue: EACCES)) }
        return try storageWrite { (txn) throws(LMDBError) -> UInt64 in
            let next = try txn.get(metaDB, key: Self.nextRunKey).flatMap { Bytes.readBigEndian64($0, at: 0) } ?? 1
            try txn.put(metaDB, key: Self.nextRunKey, value: Self.runKey(next + UInt64(max(0, count))))
            return next
        }
    }

    /// Starts recording a run under the next free id, or under `id` (one set aside with
    /// `reserveRunIDs`; it must not be in use).
    public func beginRun(seed: UInt64, configuration: String, toolVersion: String, parentRun: UInt64? = nil,
                         startedAt: Double? = nil, id: UInt64? = nil) throws -> RunRecorder {
        guard !options.readOnly else { throw TraceStoreError.storage(path: path, error: LMDBError(rawValue: EACCES)) }
        let startedAt = startedAt ?? Date().timeIntervalSince1970
        let info = try storageWrite { (txn) throws(LMDBError) -> RunInfo in
            let counter = try txn.get(metaDB, key: Self.nextRunKey).flatMap { Bytes.readBigEndian64($0, at: 0) } ?? 1
            var next = counter
            if let id {
                // A reserved id taken twice is a bug of the caller: never overwrite a run.
                guard try txn.get(runsDB, key: Self.runKey(id)) == nil else { throw LMDBError(rawValue: EEXIST) }
                next = id
            }
            let info = RunInfo(id: next, seed: seed, configuration: configuration, toolVersion: toolVersion,
                               startedAt: startedAt, status: .running, verdict: nil, summary: nil,
                               eventCount: 0, chunkCount: 0, lastEventTime: 0, virtualEndTime: nil,
                               kindCounts: nil, parentRun: parentRun, writerPID: getpid(), storedBytes: 0, digest: nil)
            try txn.put(metaDB, key: Self.nextRunKey, value: Self.runKey(max(counter, next + 1)))
            // A store of an older format takes chunks of the current one from now on.
            try txn.put(metaDB, key: Self.formatVersionKey, value: Array(String(EventCodec.formatVersion).utf8))
            try txn.put(runsDB, key: Self.runKey(next), value: RunInfoCoding.encode(info))
            return info
        }
        return RunRecorder(store: self, info: info)
    }

    /// Deletes a run and everything stored for it.
    public func deleteRun(_ id: UInt64) throws {
        _ = try run(id)
        try storageWrite { (txn) throws(LMDBError) in
            for database in [chunksDB, byEventDB, byTimeDB, checkpointsDB] {
                try Self.deletePrefix(txn, database, Self.runKey(id))
            }
            try txn.delete(runsDB, key: Self.runKey(id))
        }
    }

    static func deletePrefix(_ txn: borrowing LMDBTransaction, _ database: LMDBDatabase, _ prefix: [UInt8]) throws(LMDBError) {
        let keys = try txn.withCursor(database) { (cursor) throws(LMDBError) -> [[UInt8]] in
            var keys: [[UInt8]] = []
            var entry = try cursor.seek(atLeast: prefix)
            while let current = entry, current.key.starts(with: prefix) {
                keys.append(current.key)
                entry = try cursor.next()
            }
            return keys
        }
        for key in keys { try txn.delete(database, key: key) }
    }

    // MARK: - Checkpoints

    /// The latest checkpoint of `run` at or before event `number`: its event number and state.
    public func checkpoint(run: UInt64, atOrBefore number: UInt64) throws -> (UInt64, [UInt8])? {
        try storage { (txn) throws(LMDBError) -> (UInt64, [UInt8])? in
            try txn.withCursor(checkpointsDB) { (cursor) throws(LMDBError) -> (UInt64, [UInt8])? in
                let prefix = Self.runKey(run)
                var entry = try cursor.seek(atLeast: Self.runAndNumberKey(run, number))
                if let current = entry, current.key == Self.runAndNumberKey(run, number) {
                    return (number, current.value)
                }
                entry = entry == nil ? try cursor.last() : try cursor.previous()
                guard let found = entry, found.key.starts(with: prefix), let at = Bytes.readBigEndian64(found.key, at: 8) else { return nil }
                return (at, found.value)
            }
        }
    }

    /// Event numbers of all checkpoints of `run`.
    public func checkpointNumbers(run: UInt64) throws -> [UInt64] {
        try storage { (txn) throws(LMDBError) -> [UInt64] in
            try txn.withCursor(checkpointsDB) { (cursor) throws(LMDBError) -> [UInt64] in
                let prefix = Self.runKey(run)
                var numbers: [UInt64] = []
                var entry = try cursor.seek(atLeast: prefix)
                while let current = entry, current.key.starts(with: prefix) {
                    if let number = Bytes.readBigEndian64(current.key, at: 8) { numbers.append(number) }
                    entry = try cursor.next()
                }
                return numbers
            }
        }
    }

    // MARK: - Reading

    /// A reader streaming the events of `run`.
    public func reader(run: UInt64) throws -> RunReader {
        RunReader(store: self, info: try self.run(run))
    }

    /// The stored bytes of one chunk (header and frame), for tools and tests.
    public func rawChunk(run: UInt64, chunk: UInt32) throws -> [UInt8]? {
        try storage { (txn) throws(LMDBError) in try txn.get(chunksDB, key: Self.chunkKey(run, chunk)) }
    }
}
