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
    // 74, the store's file system refused a write, comes from `TraceStoreError.exitCode`.
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
///
/// To a file, it writes a temporary file beside it and puts it in place only in `finish()`: a
/// command that fails half way leaves no half-written file, and an existing one stays as it was.
final class Output {
    private var buffer: [UInt8] = []
    private let descriptor: Int32
    private let path: String?
    private let partial: String?
    private var finished = false
    /// The temporary file's slot in `Interrupts`: an interrupt removes it.
    private var interruptSlot: Int?
    /// False once a write failed.
    private(set) var ok = true
    /// Why the last write failed.
    private(set) var failure: String?

    /// Standard output (no path, or "-"), or the file at `path`.
    init(path: String? = nil) {
        buffer.reserveCapacity(1 << 16)
        if let path, path != "-" {
            if Output.isRegularFileOrNew(path) {
                self.path = path
                let directory = PathParts.split(path).directory
                let name = ".\(PathParts.split(path).name).partial-\(getpid())"
                let partial = directory.isEmpty ? name : directory == "/" ? "/" + name : directory + "/" + name
                self.partial = partial
                interruptSlot = Interrupts.removeOnInterrupt(partial)
                descriptor = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            } else {
                // A device, a pipe or a symbolic link (/dev/null, /dev/stdout, /dev/fd/63): written
                // to as it is, never replaced.
                self.path = nil
                partial = nil
                descriptor = open(path, O_WRONLY | O_TRUNC)
            }
            if descriptor < 0 {
                ok = false
                failure = String(cString: strerror(errno))
            }
        } else {
            self.path = nil
            partial = nil
            descriptor = 1
        }
    }

    /// A regular file (not a symbolic link), or nothing yet.
    static func isRegularFileOrNew(_ path: String) -> Bool {
        var status = stat()
        guard lstat(path, &status) == 0 else { return true }
        return status.st_mode & S_IFMT == S_IFREG
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
                    failure = String(cString: strerror(errno))
                    break
                }
                offset += written
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is left and, for a file, puts it in place. False (with `failure`) when any write
    /// failed: the file is then not created, or left as it was.
    func finish() -> Bool {
        flush()
        guard let path, let partial, !finished else { return ok }
        finished = true
        if fsync(descriptor) != 0 && ok { ok = false; failure = String(cString: strerror(errno)) }
        close(descriptor)
        if ok && rename(partial, path) != 0 {
            ok = false
            failure = String(cString: strerror(errno))
        }
        if !ok { unlink(partial) }
        Interrupts.forget(interruptSlot)
        return ok
    }

    deinit {
        if path == nil && descriptor > 2 {
            flush()
            close(descriptor)
        } else if path != nil {
            // Never finished (the command failed): nothing is put in place.
            if !finished && descriptor >= 0 {
                close(descriptor)
                if let partial { unlink(partial) }
            }
            Interrupts.forget(interruptSlot)
        } else {
            flush()
        }
    }
}

/// Refuses, before any work, an output path that cannot be written: a directory, or one whose
/// directory is missing or not writable. "-" (standard output) is fine.
func checkWritable(_ path: String, option: String) throws {
    guard path != "-" else { return }
    // A device, a pipe or a link to one: it must take writing itself.
    if !Output.isRegularFileOrNew(path) {
        guard access(path, W_OK) == 0 else { throw ValidationError("\(option) \(path) is not writable") }
        return
    }
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw ValidationError("\(option) \(path) is a directory; give a file path")
    }
    let directory = PathParts.split(path).directory
    let parent = directory.isEmpty ? "." : directory
    guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ValidationError("\(option) \(path): directory \(parent) does not exist; create it first")
    }
    guard access(parent, W_OK) == 0 else {
        throw ValidationError("\(option) \(path): directory \(parent) is not writable")
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
