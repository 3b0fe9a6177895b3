import CLMDB
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from LMDB. The code is an open set over the C return code, so codes this version
/// does not name still carry their meaning through `mdb_strerror`.
public struct LMDBError: Error, RawRepresentable, Equatable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let notFound = LMDBError(rawValue: MDB_NOTFOUND)
    public static let mapFull = LMDBError(rawValue: MDB_MAP_FULL)
    public static let mapResized = LMDBError(rawValue: MDB_MAP_RESIZED)
    public static let invalid = LMDBError(rawValue: MDB_INVALID)
    public static let versionMismatch = LMDBError(rawValue: MDB_VERSION_MISMATCH)
    public static let corrupted = LMDBError(rawValue: MDB_CORRUPTED)
    public static let pageNotFound = LMDBError(rawValue: MDB_PAGE_NOTFOUND)

    public var message: String { String(cString: mdb_strerror(rawValue)) }
    public var description: String { "LMDB error \(rawValue): \(message)" }

    /// The file is not an LMDB environment, or is damaged at a level LMDB detects.
    public var meansBadFile: Bool {
        self == .invalid || self == .versionMismatch || self == .corrupted || self == .pageNotFound
            || rawValue == MDB_BAD_TXN || rawValue == MDB_BAD_VALSIZE || rawValue == MDB_INCOMPATIBLE
    }
}

@inline(__always)
func lmdbCheck(_ code: Int32) throws(LMDBError) {
    if code != 0 { throw LMDBError(rawValue: code) }
}

/// A named database inside an environment. Handles stay valid for the environment's lifetime.
public struct LMDBDatabase: Sendable, Equatable {
    let dbi: MDB_dbi
}

/// One LMDB environment kept in a single file (`MDB_NOSUBDIR`), with its lock file beside it.
///
/// Transactions are scoped to closures: values read are copied out (or lent only for the
/// duration of a closure), so nothing points into the memory map after a transaction ends.
/// A write that fills the map grows the map and runs again: `MDB_MAP_FULL` never reaches callers,
/// which is why write closures must be safe to run more than once.
///
/// Thread-safe: every operation holds the environment's lock, so a transaction never overlaps a
/// map resize (LMDB allows a resize only while this process has no transaction open).
public final class LMDBEnvironment: @unchecked Sendable {
    public struct Options: Sendable {
        /// Open without write access; the file must exist.
        public var readOnly = false
        /// Use no lock file (`MDB_NOLOCK`): for reading a file in a directory this process may not
        /// write, where no writer can be at work either.
        public var noLock = false
        /// Added to the message should the map fault (see `CrashGuard`).
        public var damageHint: String?
        /// Skip the fsync at every commit. A process crash still loses nothing committed; a machine
        /// crash may lose the last commits. Call `sync()` at points that must survive one.
        public var noSync = false
        /// The initial map size; the map grows by doubling when full.
        public var initialMapSize = 16 << 20
        public var maxDatabases: UInt32 = 16
        public init() {}
    }

    let env: OpaquePointer
    public let path: String
    public let options: Options
    public private(set) var mapSize: Int
    /// How many times a write found the map full and grew it.
    public private(set) var mapGrowths = 0
    private let lock = NSRecursiveLock()
    /// What to say if the map faults while this environment is accessed (see `CrashGuard`).
    private let crashMessage: UnsafeMutablePointer<CChar>

    public init(path: String, options: Options = Options()) throws(LMDBError) {
        var pointer: OpaquePointer?
        try lmdbCheck(mdb_env_create(&pointer))
        guard let env = pointer else { throw LMDBError(rawValue: ENOMEM) }
        self.env = env
        self.path = path
        self.options = options
        self.crashMessage = CrashGuard.message(for: path, hint: options.damageHint)
        self.mapSize = max(options.initialMapSize, 64 << 10)
        do {
            try lmdbCheck(mdb_env_set_maxdbs(env, options.maxDatabases))
            try lmdbCheck(mdb_env_set_mapsize(env, mapSize))
            var flags = UInt32(MDB_NOSUBDIR | MDB_NOTLS)
            if !options.readOnly { try Self.checkSpace(path) }
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if options.noSync { flags |= UInt32(MDB_NOSYNC) }
            if options.noLock { flags |= UInt32(MDB_NOLOCK) }
            try lmdbCheck(mdb_env_open(env, path, flags, 0o644))
            var info = MDB_envinfo()
            try lmdbCheck(mdb_env_info(env, &info))
            mapSize = info.me_mapsize
        }
        // On a throw above, every stored property is set, so deinit runs and closes the environment.
    }

    deinit { mdb_env_close(env) }

    /// Opens (or with `create`, creates) a named database.
    public func database(named name: String, create: Bool) throws(LMDBError) -> LMDBDatabase {
        lock.lock()
        defer { lock.unlock() }
        let outer = CrashGuard.enter(crashMessage)
        defer { CrashGuard.leave(outer) }
        if options.readOnly || !create {
            // A handle opened in a transaction that aborts is closed with it: commit even a read.
            let txn = try begin(flags: UInt32(MDB_RDONLY))
            do {
                let database = try LMDBTransaction(txn: txn).openDatabase(name, flags: 0)
                try lmdbCheck(mdb_txn_commit(txn))
                return database
            } catch {
                mdb_txn_abort(txn)
                throw error
            }
        }
        return try write { (txn) throws(LMDBError) in try txn.openDatabase(name, flags: UInt32(MDB_CREATE)) }
    }

    /// Runs `body` in a read-only transaction.
    public func read<T>(_ body: (borrowing LMDBTransaction) throws(LMDBError) -> T) throws(LMDBError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let outer = CrashGuard.enter(crashMessage)
        defer { CrashGuard.leave(outer) }
        let txn = try begin(flags: UInt32(MDB_RDONLY))
        defer { mdb_txn_abort(txn) }
        return try body(LMDBTransaction(txn: txn))
    }

    /// Variant of `read` whose body may throw any error.
    public func readAny<T>(_ body: (borrowing LMDBTransaction) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let outer = CrashGuard.enter(crashMessage)
        defer { CrashGuard.leave(outer) }
        let txn = try begin(flags: UInt32(MDB_RDONLY))
        defer { mdb_txn_abort(txn) }
        return try body(LMDBTransaction(txn: txn))
    }

    /// Free space a write needs on the store's file system. LMDB touches new pages through its
    /// map, and on a full file system (tmpfs above all) that ends the process with SIGBUS instead
    /// of an error: a write is refused with ENOSPC before it begins when less than this is free.
    static let spaceMargin: UInt64 = 4 << 20

    static func checkSpace(_ path: String) throws(LMDBError) {
        var status = statvfs()
        // The file's own file system (through a symbolic link too), or for a new one its directory's.
        let directory = PathParts.split(path).directory
        guard statvfs(path, &status) == 0 || statvfs(directory.isEmpty ? "." : directory, &status) == 0 else { return }
        if UInt64(status.f_bavail) * UInt64(status.f_frsize) < spaceMargin { throw LMDBError(rawValue: ENOSPC) }
    }

    /// Runs `body` in a write transaction and commits it. If the map fills up, the transaction is
    /// aborted, the map doubled, and `body` runs again from the start.
    public func write<T>(_ body: (borrowing LMDBTransaction) throws(LMDBError) -> T) throws(LMDBError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let outer = CrashGuard.enter(crashMessage)
        defer { CrashGuard.leave(outer) }
        try Self.checkSpace(path)
        while true {
            let txn = try begin(flags: 0)
            do {
                let result = try body(LMDBTransaction(txn: txn))
                let code = mdb_txn_commit(txn)  // frees the transaction, success or not
                if code == MDB_MAP_FULL { try grow(); continue }
                try lmdbCheck(code)
                return result
            } catch where error == .mapFull {
                mdb_txn_abort(txn)
                try grow()
            } catch {
                mdb_txn_abort(txn)
                throw error
            }
        }
    }

    /// Flushes committed data to disk (needed after commits made with `noSync`).
    public func sync() throws(LMDBError) {
        lock.lock()
        defer { lock.unlock() }
        try lmdbCheck(mdb_env_sync(env, 1))
    }

    /// Bytes of the file in use (last used page + 1, times the page size).
    public func usedBytes() throws(LMDBError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        var info = MDB_envinfo()
        try lmdbCheck(mdb_env_info(env, &info))
        var stat = MDB_stat()
        try lmdbCheck(mdb_env_stat(env, &stat))
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }

    private func begin(flags: UInt32) throws(LMDBError) -> OpaquePointer {
        var attempts = 0
        while true {
            var txn: OpaquePointer?
            let code = mdb_txn_begin(env, nil, flags, &txn)
            if code == MDB_MAP_RESIZED && attempts < 4 {
                // Another process grew the map: adopt its size and try again.
                attempts += 1
                try lmdbCheck(mdb_env_set_mapsize(env, 0))
                var info = MDB_envinfo()
                try lmdbCheck(mdb_env_info(env, &info))
                mapSize = info.me_mapsize
                continue
            }
            try lmdbCheck(code)
            return txn!
        }
    }

    private func grow() throws(LMDBError) {
        var info = MDB_envinfo()
        try lmdbCheck(mdb_env_info(env, &info))
        let newSize = max(info.me_mapsize, mapSize) * 2
        try lmdbCheck(mdb_env_set_mapsize(env, newSize))
        mapSize = newSize
        mapGrowths += 1
    }
}

/// A transaction, valid only inside the closure it was lent to.
public struct LMDBTransaction: ~Copyable {
    let txn: OpaquePointer

    /// True when the environment's main database holds nothing (no named databases either).
    func mainDatabaseIsEmpty() throws(LMDBError) -> Bool {
        var dbi: MDB_dbi = 0
        try lmdbCheck(mdb_dbi_open(txn, nil, 0, &dbi))
        var stat = MDB_stat()
        try lmdbCheck(mdb_stat(txn, dbi, &stat))
        return stat.ms_entries == 0
    }

    func openDatabase(_ name: String, create: Bool) throws(LMDBError) -> LMDBDatabase {
        try openDatabase(name, flags: create ? UInt32(MDB_CREATE) : 0)
    }

    func openDatabase(_ name: String, flags: UInt32) throws(LMDBError) -> LMDBDatabase {
        var dbi: MDB_dbi = 0
        try lmdbCheck(mdb_dbi_open(txn, name, flags, &dbi))
        return LMDBDatabase(dbi: dbi)
    }

    /// The value stored under `key`, copied out of the map, or nil.
    public func get(_ database: LMDBDatabase, key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        try rawValue(database, key: key).map { Array($0) }
    }

    /// Lends the value stored under `key` to `body` without copying it; the buffer is valid only
    /// during `body`. Returns nil when the key is absent.
    public func withValue<T>(_ database: LMDBDatabase, key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        guard let buffer = try rawValue(database, key: key) else { return nil }
        return try body(buffer)
    }

    private func rawValue(_ database: LMDBDatabase, key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var value = MDB_val()
        let code = key.withUnsafeBytes { raw -> Int32 in
            var k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return mdb_get(txn, database.dbi, &k, &value)
        }
        if code == MDB_NOTFOUND { return nil }
        try lmdbCheck(code)
        return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }

    public func put(_ database: LMDBDatabase, key: [UInt8], value: [UInt8]) throws(LMDBError) {
        let code = key.withUnsafeBytes { rawKey -> Int32 in
            value.withUnsafeBytes { rawValue -> Int32 in
                var k = MDB_val(mv_size: rawKey.count, mv_data: UnsafeMutableRawPointer(mutating: rawKey.baseAddress))
                var v = MDB_val(mv_size: rawValue.count, mv_data: UnsafeMutableRawPointer(mutating: rawValue.baseAddress))
                return mdb_put(txn, database.dbi, &k, &v, 0)
            }
        }
        try lmdbCheck(code)
    }

    /// Deletes `key`; returns false when it was absent.
    @discardableResult
    public func delete(_ database: LMDBDatabase, key: [UInt8]) throws(LMDBError) -> Bool {
        let code = key.withUnsafeBytes { raw -> Int32 in
            var k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return mdb_del(txn, database.dbi, &k, nil)
        }
        if code == MDB_NOTFOUND { return false }
        try lmdbCheck(code)
        return true
    }

    /// Lends a cursor over `database` to `body`.
    public func withCursor<T>(_ database: LMDBDatabase, _ body: (inout LMDBCursor) throws(LMDBError) -> T) throws(LMDBError) -> T {
        var pointer: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, database.dbi, &pointer))
        var cursor = LMDBCursor(cursor: pointer!)
        defer { mdb_cursor_close(pointer) }
        return try body(&cursor)
    }
}

/// A cursor, valid only inside the closure it was lent to. Keys and values it returns are copies.
public struct LMDBCursor: ~Copyable {
    let cursor: OpaquePointer

    public typealias Entry = (key: [UInt8], value: [UInt8])

    private func get(_ op: MDB_cursor_op, key: [UInt8]? = nil) throws(LMDBError) -> Entry? {
        var k = MDB_val()
        var v = MDB_val()
        let code: Int32
        if let key {
            code = key.withUnsafeBytes { raw -> Int32 in
                k = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return mdb_cursor_get(cursor, &k, &v, op)
            }
        } else {
            code = mdb_cursor_get(cursor, &k, &v, op)
        }
        if code == MDB_NOTFOUND { return nil }
        try lmdbCheck(code)
        let keyBytes = Array(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size))
        let valueBytes = Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        return (keyBytes, valueBytes)
    }

    /// Positions at the first key greater than or equal to `key`.
    public mutating func seek(atLeast key: [UInt8]) throws(LMDBError) -> Entry? { try get(MDB_SET_RANGE, key: key) }
    public mutating func first() throws(LMDBError) -> Entry? { try get(MDB_FIRST) }
    public mutating func last() throws(LMDBError) -> Entry? { try get(MDB_LAST) }
    public mutating func next() throws(LMDBError) -> Entry? { try get(MDB_NEXT) }
    public mutating func previous() throws(LMDBError) -> Entry? { try get(MDB_PREV) }
}

public enum LMDB {
    public static var versionString: String { String(cString: chaostrace_lmdb_version_string()) }
}
