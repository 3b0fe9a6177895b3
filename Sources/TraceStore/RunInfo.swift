import Foundation

/// Whether a run is still being written, finished, or was cut off by its writer's death.
public enum RunStatus: String, Codable, Sendable {
    case running
    case complete
    /// The writing process died before finishing; the run is readable to its last committed chunk.
    case incomplete
}

/// A run's metadata, stored as JSON in the store's `runs` database.
public struct RunInfo: Codable, Equatable, Sendable {
    public var id: UInt64
    public var seed: UInt64
    /// The run's configuration, a JSON document chosen by whoever recorded it.
    public var configuration: String
    public var toolVersion: String
    /// When recording began, in seconds since 1970 (wall clock; metadata only, never part of the trace).
    public var startedAt: Double
    public var status: RunStatus
    /// "pass", "fail", … — set when the run finishes.
    public var verdict: String?
    /// A one-line summary of the violation, when there is one.
    public var summary: String?
    /// Events committed so far (all events once complete).
    public var eventCount: UInt64
    public var chunkCount: UInt32
    /// Virtual time of the last committed event, in nanoseconds.
    public var lastEventTime: UInt64
    /// Virtual time at which the run ended, in nanoseconds.
    public var virtualEndTime: UInt64?
    /// Events per kind name, set when the run finishes.
    public var kindCounts: [String: UInt64]?
    /// The run this one was derived from (a shrink's original).
    public var parentRun: UInt64?
    /// Process id of the writer, to tell a live writer from a dead one.
    public var writerPID: Int32
    /// Bytes of compressed chunks stored.
    public var storedBytes: UInt64
    /// The recorder's rolling digest of every event (hex), set when the run finishes; a replay
    /// that ends with the same digest produced the same events.
    public var digest: String?

    public var failed: Bool { verdict == "fail" }
}

enum RunInfoCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func encode(_ info: RunInfo) -> [UInt8] {
        // Encoding a struct of plain values cannot fail.
        Array(try! encoder.encode(info))
    }

    static func decode(_ bytes: [UInt8]) throws -> RunInfo {
        try JSONDecoder().decode(RunInfo.self, from: Data(bytes))
    }
}
