/// A probability as an integer ratio, so that no floating-point rounding can reach a schedule.
public struct Ratio: Hashable, Codable, Sendable, CustomStringConvertible {
    public var numerator: UInt64
    public var denominator: UInt64

    public init(_ numerator: UInt64, _ denominator: UInt64) {
        precondition(denominator > 0, "a ratio needs a positive denominator")
        precondition(numerator <= denominator, "a probability cannot exceed 1: \(numerator)/\(denominator)")
        self.numerator = numerator
        self.denominator = denominator
    }

    public static let never = Ratio(0, 1)
    public static let always = Ratio(1, 1)

    /// The ratio nearest to `probability`, in millionths.
    public init(probability: Double) {
        let clamped = Swift.min(Swift.max(probability, 0), 1)
        self.init(UInt64((clamped * 1_000_000).rounded()), 1_000_000)
    }

    public var isNever: Bool { numerator == 0 }
    public var description: String { "\(numerator)/\(denominator)" }
}

/// The project's own PRNG: xoshiro256** seeded through SplitMix64. Its algorithm and its range
/// reduction are ours, so a toolchain update cannot change what a seed means.
public struct PRNG: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    /// An independent stream for a component, derived from the run's seed and the component's
    /// stream number: adding draws in one stream never shifts another.
    public init(seed: UInt64, stream: UInt64) {
        var mix = SplitMix64(state: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        self.init(seed: mix.next() ^ stream)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform value in `0..<bound` (bound > 0): multiply-shift with rejection, so no bias.
    @inline(__always)
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "below(0)")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }
}

struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A 64-bit FNV-1a style digest with a final mix; stable across processes and platforms
/// (unlike `Hasher`, which is seeded per process).
public struct StableDigest: Sendable, Equatable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    @inline(__always)
    public mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01B3
        value ^= value >> 29
    }

    public mutating func mix(_ bytes: [UInt8]) {
        mix(UInt64(bytes.count))
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    }

    public mutating func mix(_ bytes: UnsafeRawBufferPointer) {
        mix(UInt64(bytes.count))
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    }

    public mutating func mix(_ text: String) { mix(Array(text.utf8)) }
}
