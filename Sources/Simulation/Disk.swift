/// A node's simulated disk: a key-value store with write-back semantics. Writes are pending until
/// `fsync`; a crash loses pending writes (or, with torn writes, applies them damaged). Fault rates
/// come from the disk's current configuration, every chance a recorded decision.
///
/// Keys are only ever enumerated sorted, so hash order never reaches a decision.
public final class SimulatedDisk {
    var durable: [String: [UInt8]] = [:]
    /// Un-synced writes in the order they were made (nil value: a delete).
    var pending: [(key: String, value: [UInt8]?)] = []
    var configuration: DiskConfiguration
    var capacityBytes: Int

    init(configuration: DiskConfiguration) {
        self.configuration = configuration
        self.capacityBytes = configuration.capacityBytes
    }

    /// Bytes the disk would hold after an fsync.
    public var usedBytes: Int {
        var view = durable
        for write in pending { view[write.key] = write.value }
        return view.values.reduce(0) { $0 + $1.count + 16 }
    }

    func currentValue(_ key: String) -> [UInt8]? {
        if let index = pending.lastIndex(where: { $0.key == key }) { return pending[index].value }
        return durable[key]
    }

    /// Durable keys, sorted.
    public var durableKeys: [String] { durable.keys.sorted() }

    /// The value as it would survive a crash right now.
    public func durableValue(_ key: String) -> [UInt8]? { durable[key] }

    public var hasPendingWrites: Bool { !pending.isEmpty }
}

/// A node's clock: virtual time plus an offset and a drift, as clock faults set them.
struct SimulatedClock {
    var offsetNanoseconds: Int64 = 0
    /// Drift in parts per million since `driftStart`.
    var driftPartsPerMillion: Int64 = 0
    var driftStart: UInt64 = 0

    func read(at time: UInt64) -> UInt64 {
        let drifted = Int64(truncatingIfNeeded: time &- driftStart) / 1_000_000 * driftPartsPerMillion
        let value = Int64(truncatingIfNeeded: time) &+ offsetNanoseconds &+ drifted
        return value < 0 ? 0 : UInt64(value)
    }
}
