import Simulation
import Systems
import ArgumentParser
import Foundation
import TraceStore

/// The documented exit codes.
enum Exit {
    static let success: Int32 = 0
    static let violation: Int32 = 1
    /// `check` ran out of its search budget: the verdict is unknown.
    static let unknown: Int32 = 2
    static let diverged: Int32 = 3
    static let usage: Int32 = 64
    static let badData: Int32 = 65
    static let internalError: Int32 = 70
}

/// An error the command line reports with its own message and exit code.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32
    var description: String { message }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("chaostrace: error: \(message)\n".utf8))
}

/// Runs a command body and turns every error into a message on stderr and a documented exit code,
/// so nothing escapes as a crash or an undocumented code.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as TraceStoreError {
        printError(error.description)
        throw ExitCode(error.exitCode)
    } catch let failure as CommandFailure {
        printError(failure.message)
        throw ExitCode(failure.exitCode)
    } catch let error as ValidationError {
        throw error
    } catch {
        printError("internal error: \(error)")
        throw ExitCode(Exit.internalError)
    }
}

/// Buffered standard output: printing millions of lines through `print` is slow.
final class Output {
    private var buffer: [UInt8] = []
    private let descriptor: Int32
    /// False once a write failed.
    private(set) var ok = true

    /// Standard output, or the file at `path` (created or truncated).
    init(path: String? = nil) {
        buffer.reserveCapacity(1 << 16)
        if let path {
            descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if descriptor < 0 { ok = false }
        } else {
            descriptor = 1
        }
    }

    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    func line(_ text: String) {
        write(text)
        write("\n")
    }

    func flush() {
        guard !buffer.isEmpty, descriptor >= 0 else { return }
        buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 {
                    ok = false
                    break
                }
                offset += written
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    deinit {
        flush()
        if descriptor > 2 { close(descriptor) }
    }
}

/// JSON helpers with a stable key order.
enum JSON {
    static func encode<T: Encodable>(_ value: T, pretty: Bool = false) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }

    static func string(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// The system a recorded run was made with, or an error naming the run when this build lacks it.
func recordedSystem(_ name: String, run: UInt64) throws -> SystemDefinition.Type {
    guard let system = SystemRegistry.named(name) else {
        throw CommandFailure(message: "run \(run) was recorded with system '\(name)', which this build does not have", exitCode: Exit.badData)
    }
    return system
}
