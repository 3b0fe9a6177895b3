import CZstd

/// An error reported by zstd, carrying zstd's own error name, or a size check of ours.
public struct ZstdError: Error, CustomStringConvertible, Equatable {
    /// zstd's error code (`ZSTD_getErrorCode`), or 0 for checks done by ChaosTrace itself.
    public let code: Int
    /// zstd's name for the error (`ZSTD_getErrorName`) or a description of the failed check.
    public let name: String

    init(result: Int) {
        self.code = Int(ZSTD_getErrorCode(result).rawValue)
        self.name = String(cString: ZSTD_getErrorName(result))
    }

    init(check: String) {
        self.code = 0
        self.name = check
    }

    public var description: String { "zstd: \(name)" }
}

@inline(__always)
private func checked(_ result: Int) throws -> Int {
    if ZSTD_isError(result) != 0 { throw ZstdError(result: result) }
    return result
}

/// Compresses whole chunks into single zstd frames with the frame checksum on and the content
/// size recorded in the frame header. Reuses one compression context: not thread-safe.
public final class ZstdCompressor {
    private let context: OpaquePointer
    public let level: Int32

    /// - Parameter level: zstd compression level, clamped to the library's range.
    public init(level: Int32 = 3) {
        guard let context = ZSTD_createCCtx() else { fatalError("zstd: out of memory creating a compression context") }
        self.context = context
        self.level = max(ZSTD_minCLevel(), min(level, ZSTD_maxCLevel()))
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, self.level)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Appends one zstd frame holding `input` to `output`.
    /// - Complexity: O(n) in the input size.
    public func compress(_ input: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]) throws {
        let bound = chaostrace_zstd_compress_bound(input.count)
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bound))
        let written: Int
        do {
            written = try output.withUnsafeMutableBytes { (buffer) throws -> Int in
                try checked(ZSTD_compress2(context, buffer.baseAddress! + start, bound, input.baseAddress, input.count))
            }
        } catch {
            output.removeSubrange(start...)
            throw error
        }
        output.removeLast(bound - written)
    }

    /// Appends one zstd frame holding `input` to `output`, starting a new block at each of
    /// `boundaries` (offsets into `input`, ascending). Each block gets its own entropy tables, so
    /// columns of different statistics laid end to end compress as well as apart, while matches
    /// still reach across them; any zstd decoder reads the frame as usual.
    public func compress(_ input: UnsafeRawBufferPointer, boundaries: [Int], appendingTo output: inout [UInt8]) throws {
        let bound = chaostrace_zstd_compress_bound(input.count) + 64 * (boundaries.count + 1)
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bound))
        do {
            _ = ZSTD_CCtx_reset(context, ZSTD_reset_session_only)
            _ = try checked(ZSTD_CCtx_setPledgedSrcSize(context, UInt64(input.count)))
            let written = try output.withUnsafeMutableBytes { (buffer) throws -> Int in
                var out = ZSTD_outBuffer(dst: buffer.baseAddress! + start, size: bound, pos: 0)
                var segmentStart = 0
                for end in boundaries + [input.count] where end >= segmentStart && end <= input.count {
                    let last = end == input.count
                    var inBuffer = ZSTD_inBuffer(src: input.baseAddress.map { $0 + segmentStart }, size: end - segmentStart, pos: 0)
                    while true {
                        let remaining = try checked(ZSTD_compressStream2(context, &out, &inBuffer, last ? ZSTD_e_end : ZSTD_e_flush))
                        if remaining == 0 && inBuffer.pos == inBuffer.size { break }
                        guard out.pos < out.size else { throw ZstdError(check: "compression output bound exceeded") }
                    }
                    segmentStart = end
                    if last { break }
                }
                return out.pos
            }
            output.removeLast(bound - written)
        } catch {
            output.removeSubrange(start...)
            _ = ZSTD_CCtx_reset(context, ZSTD_reset_session_only)
            throw error
        }
    }

    public func compress(_ input: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        try input.withUnsafeBytes { (raw) throws in try compress(raw, appendingTo: &output) }
        return output
    }
}

/// Decompresses single-frame chunks whose decompressed size is known in advance (from the chunk
/// header). The output buffer is exactly that size, so a hostile frame cannot make it allocate
/// more, and a frame whose content is larger, smaller or fails its checksum is an error.
public final class ZstdDecompressor {
    private let context: OpaquePointer

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("zstd: out of memory creating a decompression context") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `frame`, which must hold exactly `expectedSize` bytes of content, into `output`
    /// (replacing its contents).
    /// - Complexity: O(`expectedSize`).
    public func decompress(_ frame: UnsafeRawBufferPointer, expectedSize: Int, into output: inout [UInt8]) throws {
        guard expectedSize >= 0 else { throw ZstdError(check: "negative expected size") }
        let declared = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        if declared == chaostrace_zstd_content_size_error() {
            throw ZstdError(check: "not a zstd frame (bad magic number or truncated header)")
        }
        if declared != chaostrace_zstd_content_size_unknown() && declared != UInt64(expectedSize) {
            throw ZstdError(check: "frame declares \(declared) bytes but the chunk header says \(expectedSize)")
        }
        if output.count != expectedSize {
            output = [UInt8](repeating: 0, count: expectedSize)
        }
        let produced = try output.withUnsafeMutableBytes { (buffer) throws -> Int in
            // zstd never writes past the capacity it is given.
            try checked(ZSTD_decompressDCtx(context, buffer.baseAddress, expectedSize, frame.baseAddress, frame.count))
        }
        guard produced == expectedSize else {
            throw ZstdError(check: "frame holds \(produced) bytes but the chunk header says \(expectedSize)")
        }
    }

    public func decompress(_ frame: [UInt8], expectedSize: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        try frame.withUnsafeBytes { (raw) throws in try decompress(raw, expectedSize: expectedSize, into: &output) }
        return output
    }
}

public enum Zstd {
    public static var versionString: String { String(cString: ZSTD_versionString()) }
}
