import Foundation
/// Errors of the trace store. Each names the file and says what to do; `exitCode` maps it onto the
/// command line's documented codes (64 bad usage, 65 bad input data, 70 internal error, 74 the
/// store's file system refused a write).
public enum TraceStoreError: Error, CustomStringConvertible, Equatable {
    /// No store at this path.
    case storeMissing(path: String)
    /// The file exists but is not a ChaosTrace store (or is damaged beyond opening).
    case notAStore(path: String, reason: String)
    /// The store was written by a format this build does not read.
    case unsupportedFormat(path: String, found: String)
    /// No run matches what was asked for.
    case runNotFound(path: String, run: String)
    /// A chunk of a run is damaged.
    case corruptChunk(path: String, run: UInt64, chunk: UInt32, reason: String)
    /// A run's metadata or index is damaged.
    case corruptRun(path: String, run: UInt64, reason: String)
    /// The run was already finished; nothing more may be appended.
    case runAlreadyFinished(run: UInt64)
    /// zstd refused to compress a chunk.
    case compression(path: String, reason: String)
    /// Any other LMDB failure.
    case storage(path: String, error: LMDBError)

    /// LMDB errors that come from where the store lives, not from the store: the file system is
    /// full, read-only, or not ours.
    static let environmentErrors: Set<Int32> = [ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EFBIG]

    public var exitCode: Int32 {
        switch self {
        case .storeMissing, .runNotFound: 64
        case .notAStore, .unsupportedFormat, .corruptChunk, .corruptRun: 65
        case .storage(_, let error) where Self.environmentErrors.contains(error.rawValue): 74
        case .storage(_, let error): error.meansBadFile ? 65 : 70
        case .runAlreadyFinished, .compression: 70
        }
    }

    public var description: String {
        switch self {
        case .storeMissing(let path):
            "no trace store at \(path): record a run first (chaostrace run --store \(path)) or pass --store PATH"
        case .notAStore(let path, let reason) where reason.hasPrefix("cannot read it"):
            "\(path) \(reason.replacingOccurrences(of: "cannot read it", with: "cannot be read")); check its permissions (or the path)"
        case .notAStore(let path, let reason):
            "\(path) is not a readable ChaosTrace store (\(reason)); check the path, or restore the file from a copy"
        case .unsupportedFormat(let path, let found):
            "\(path) has trace format version \(found), but this build reads versions \(EventCodec.readableFormatVersions.sorted().joined(separator: " and ")); use a matching chaostrace"
        case .runNotFound(let path, let run) where run == "latest-failure":
            "no failing run in \(path); list the runs with: chaostrace ls --store \(path)"
        case .runNotFound(let path, let run) where run == "latest":
            "no runs in \(path) yet; record one with: chaostrace run --store \(path)"
        case .runNotFound(let path, let run):
            "no run '\(run)' in \(path); list the runs with: chaostrace ls --store \(path)"
        case .corruptChunk(let path, let run, let chunk, let reason):
            "\(path): run \(run), chunk \(chunk) is damaged (\(reason)); events before this chunk are still readable. Run: chaostrace verify --store \(path)"
        case .corruptRun(let path, let run, let reason):
            "\(path): run \(run) is damaged (\(reason)). Run: chaostrace verify --store \(path)"
        case .runAlreadyFinished(let run):
            "run \(run) is already finished"
        case .compression(let path, let reason):
            "\(path): cannot compress a chunk (\(reason))"
        case .storage(let path, let error) where error.rawValue == ENOSPC || error.rawValue == EDQUOT || error.rawValue == EFBIG:
            "cannot write \(path): \(String(cString: strerror(error.rawValue)).lowercased()); free some space (or record into a store on "
                + "another disk with --store); every run committed before is kept"
        case .storage(let path, let error) where Self.environmentErrors.contains(error.rawValue):
            "cannot write \(path): \(String(cString: strerror(error.rawValue)).lowercased()); record into a store in a directory you may "
                + "write (--store PATH), or read this one with a command that only reads (ls, show, replay, stats, export)"
        case .storage(let path, let error):
            "\(path): \(error.description)"
        }
    }
}

/// A path's directory and last component, without `NSString`, whose path methods stop the process
/// on a one-character relative path ("s") in this Foundation.
public enum PathParts {
    /// The directory ("" for a bare name, "/" for a name in the root) and the name.
    public static func split(_ path: String) -> (directory: String, name: String) {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return ("", String(trimmed)) }
        let directory = trimmed[..<slash]
        return (directory.isEmpty ? "/" : String(directory), String(trimmed[trimmed.index(after: slash)...]))
    }
}
