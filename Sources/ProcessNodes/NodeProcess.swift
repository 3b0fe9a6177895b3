#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TraceStore

/// Why an external node process could not be used.
public enum NodeProcessError: Error, CustomStringConvertible, Equatable {
    /// The command could not be started at all.
    case spawnFailed(command: String, reason: String)
    /// The process ended (exit status or signal) when it should be running.
    case exited(command: String, status: String, stderr: String)
    /// The process kept running (or kept its input unread) past the wall-clock bound.
    case unresponsive(command: String, seconds: Double, stderr: String)
    /// The process wrote more than `NodeProcess.outputLimit` bytes in answer to one message.
    case flooding(command: String, bytes: Int, stderr: String)

    public var description: String {
        switch self {
        case .spawnFailed(let command, let reason):
            "could not start '\(command)': \(reason)"
        case .exited(let command, let status, let stderr):
            "'\(command)' \(status)" + NodeProcess.stderrSuffix(stderr)
        case .flooding(let command, let bytes, let stderr):
            "'\(command)' kept writing without settling: \(bytes) bytes in answer to one message, past the limit of \(NodeProcess.outputLimit >> 20) MiB or \(NodeProcess.outputLimit / 64) lines" + NodeProcess.stderrSuffix(stderr)
        case .unresponsive(let command, let seconds, let stderr):
            "'\(command)' did not settle within \(seconds) s (it kept running or left its input unread)" + NodeProcess.stderrSuffix(stderr)
        }
    }
}

/// One running external node: a child process whose stdin and stdout carry newline-delimited
/// JSON and whose stderr is kept (its last 4 KiB) for error messages.
///
/// Delivery is lock-step: `exchange` writes one line and then waits until the process is
/// *quiescent* — its input consumed, every thread asleep (on Linux, read from
/// `/proc/PID/task/*/stat`), and no output for two consecutive checks — and returns every line it
/// wrote meanwhile. A node that is a deterministic function of its input therefore produces the
/// same lines in every run. The wall clock only bounds how long a misbehaving process is waited
/// for; it never decides what a well-behaved one said.
public final class NodeProcess {
    public let command: String
    public private(set) var pid: pid_t = 0
    private var stdinFD: Int32 = -1
    private var stdoutFD: Int32 = -1
    private var stderrFD: Int32 = -1
    private var pending: [UInt8] = []
    private var stderrTail: [UInt8] = []
    private var stderrActivity = false
    private var exitStatus: String?
    /// Most bytes a process may write in answer to one message, and a sixty-fourth of it in lines
    /// (a runaway loop printing forever is stopped here rather than filling memory).
    public static let outputLimit = 64 << 20

    /// How long to wait for a process to settle before calling it unresponsive.
    public var settleLimitSeconds: Double = 10
    /// How long a process must stay quiescent (input read, threads asleep, no output) to count as
    /// done with a message.
    public var quietMicroseconds: Int = 200

    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
        LiveGroups.installHandlers()
        return ()
    }()

    /// Starts `command`: run directly when it is plain words, else by `/bin/sh -c`.
    public init(command: String) throws {
        self.command = command
        _ = NodeProcess.ignoreSIGPIPE
        let arguments = NodeProcess.arguments(for: command)
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard pipe(&input) == 0, pipe(&output) == 0, pipe(&errors) == 0 else {
            throw NodeProcessError.spawnFailed(command: command, reason: String(cString: strerror(errno)))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        for fd in [input[0], input[1], output[0], output[1], errors[0], errors[1]] {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        // Nothing else of this process (the trace store, other nodes' pipes) reaches the node.
        NodeProcess.closeOnExecAll()
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a kill reaches whatever it started; default signal handling.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        let cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawnp(&child, arguments[0], &actions, &attributes, cArguments, environ)
        close(input[0]); close(output[1]); close(errors[1])
        guard status == 0 else {
            close(input[1]); close(output[0]); close(errors[0])
            throw NodeProcessError.spawnFailed(command: command, reason: String(cString: strerror(status)))
        }
        pid = child
        LiveGroups.add(child)
        stdinFD = input[1]
        stdoutFD = output[0]
        stderrFD = errors[0]
        for fd in [stdinFD, stdoutFD, stderrFD] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit { terminate() }

    /// Marks every open descriptor above stderr close-on-exec (the store's, other nodes' pipes),
    /// so that a node process inherits only its own stdin, stdout and stderr.
    static func closeOnExecAll() {
        #if os(Linux)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        #endif
    }

    /// Kills the process (and its group) and reaps it.
    public func terminate() {
        if pid > 0 {
            // The whole group, also when the process itself has exited: what it started goes too.
            kill(-pid, SIGKILL)
            LiveGroups.remove(pid)
            if exitStatus == nil {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
            pid = 0
        }
        for fd in [stdinFD, stdoutFD, stderrFD] where fd >= 0 { close(fd) }
        stdinFD = -1; stdoutFD = -1; stderrFD = -1
    }

    /// What the process wrote to stdout after its last newline.
    public var unfinishedLine: [UInt8] { pending }

    /// The length of an unfinished line already waited for in vain (`exchange`).
    private var abandonedPartial: Int?

    /// The lines an exchange that timed out had read before it gave up.
    public private(set) var linesBeforeTimeout: [[UInt8]] = []

    /// The last lines the process wrote to stderr.
    public var stderr: String { String(decoding: stderrTail, as: UTF8.self) }

    /// Writes `line` (a newline is added) and returns every line the process wrote until it settled.
    /// With `answerExpected` (the `init` handshake, which every node answers), it is not settled
    /// before it has written a line: a node still starting up behind a pipeline or a wrapper can
    /// look quiet while the process that will answer waits for its turn.
    public func exchange(_ line: [UInt8]?, answerExpected: Bool = false) throws -> [[UInt8]] {
        exchanges += 1
        var lines: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(settleLimitSeconds)
        if var bytes = line {
            bytes.append(0x0A)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
                if written > 0 { offset += written; continue }
                if written < 0 && errno != EAGAIN && errno != EINTR {
                    try checkExited()
                    throw NodeProcessError.exited(command: command, status: "closed its input", stderr: stderr)
                }
                // Its input is full: take what it wrote meanwhile, then try again.
                try drain(into: &lines, waitMilliseconds: 1)
                if Date() > deadline { throw timedOut(lines) }
            }
        }
        // When the process was first seen quiescent with nothing new on stdout (nil: not yet).
        var quietSince: Date?
        var partialSince: Date?
        var outputBytes = 0
        while true {
            stderrActivity = false
            let got = try drain(into: &lines, waitMilliseconds: 0)
            if got > 0 || stderrActivity {
                quietSince = nil
                if got > 0 { partialSince = nil }
                outputBytes += got
                if outputBytes > NodeProcess.outputLimit || lines.count > NodeProcess.outputLimit / 64 {
                    throw NodeProcessError.flooding(command: command, bytes: outputBytes, stderr: stderr)
                }
                if Date() > deadline { throw timedOut(lines) }
                continue
            }
            try checkExited()
            // A line begun but not ended: the node is most likely in the middle of writing it
            // (a write split in two, a flush between), so wait for its end, up to 50 ms.
            // One that stays as it is past that (a prompt without a newline) is not waited for again.
            var midLine = false
            if !pending.isEmpty && pending.count != abandonedPartial {
                if partialSince == nil { partialSince = Date() }
                midLine = Date().timeIntervalSince(partialSince!) < 0.05
                if !midLine { abandonedPartial = pending.count }
            } else {
                partialSince = nil
            }
            if isQuiescent() && (!answerExpected || !lines.isEmpty) && !midLine {
                // Quiet for the whole window: a runtime that hands work to another thread (a
                // scheduler, an event loop) wakes it before the first one sleeps, mostly at once.
                let now = Date()
                if let since = quietSince {
                    if now.timeIntervalSince(since) * 1_000_000 >= Double(quietMicroseconds) { return lines }
                } else {
                    quietSince = now
                }
                usleep(UInt32(max(20, min(quietMicroseconds / 2, 1_000))))
            } else {
                quietSince = nil
                usleep(50)
            }
            if Date() > deadline { throw timedOut(lines) }
        }
    }

    /// The error of an exchange that ran out of time, keeping what it had read.
    private func timedOut(_ lines: [[UInt8]]) -> NodeProcessError {
        linesBeforeTimeout = lines
        return NodeProcessError.unresponsive(command: command, seconds: settleLimitSeconds, stderr: stderr)
    }

    /// Reads what is available on stdout (and stderr); returns how many bytes stdout gave.
    @discardableResult
    private func drain(into lines: inout [[UInt8]], waitMilliseconds: Int32) throws -> Int {
        var fds = [pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&fds, 2, waitMilliseconds)
        guard ready > 0 else { return 0 }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var gotOutput = 0
        if fds[1].revents != 0 {
            let count = read(stderrFD, &buffer, buffer.count)
            if count > 0 {
                stderrTail.append(contentsOf: buffer[0..<count])
                if stderrTail.count > 4096 { stderrTail.removeFirst(stderrTail.count - 4096) }
                // Writing to stderr is activity too: a node blocked on a full stderr pipe is not done.
                stderrActivity = true
            }
        }
        if fds[0].revents != 0 {
            let count = read(stdoutFD, &buffer, buffer.count)
            if count > 0 {
                gotOutput = count
                // Only the bytes just read can hold a new line's end: a long line is assembled in
                // time proportional to its length, not to its square.
                var scan = pending.count
                pending.append(contentsOf: buffer[0..<count])
                var start = 0
                while let newline = pending[scan...].firstIndex(of: 0x0A) {
                    let line = pending[start..<newline]
                    start = newline + 1
                    scan = start
                    if !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { lines.append(Array(line)) }
                }
                if start > 0 { pending.removeFirst(start) }
            } else if count == 0 && fds[1].revents == 0 {
                // End of its output: it is exiting (or closed stdout, which is as bad).
                usleep(1000)
                try checkExited()
                throw NodeProcessError.exited(command: command, status: "closed its standard output", stderr: stderr)
            }
        }
        return gotOutput
    }

    /// Throws when the process has ended.
    private func checkExited() throws {
        if let exitStatus { throw NodeProcessError.exited(command: command, status: exitStatus, stderr: stderr) }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return }
        // Keep the rest of what it said on stderr.
        drainStderr()
        let code = (status >> 8) & 0xFF, signal = status & 0x7F
        exitStatus = signal == 0 ? "exited with status \(code)" : "was killed by signal \(signal)"
        throw NodeProcessError.exited(command: command, status: exitStatus!, stderr: stderr)
    }

    private func drainStderr() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(stderrFD, &buffer, buffer.count)
            guard count > 0 else { return }
            stderrTail.append(contentsOf: buffer[0..<count])
            if stderrTail.count > 4096 { stderrTail.removeFirst(stderrTail.count - 4096) }
        }
    }

    /// The processes of the node's group (itself and what it started: a wrapper script's
    /// interpreter, a pipeline), found by scanning `/proc` now and then.
    private var groupMembers: [pid_t] = []
    private var exchanges = 0
    private var scannedAt = -1

    #if os(Linux)
    private func scanGroup() {
        var members: [pid_t] = [pid]
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") {
            for entry in entries {
                guard let candidate = pid_t(entry), candidate != pid,
                      let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 2, pid_t(fields[2]) == pid { members.append(candidate) }
            }
        }
        groupMembers = members.sorted()
    }
    #endif

    /// Input consumed and every thread of every process of the node's group asleep (Linux:
    /// `/proc/PID/task/*/stat`; the group is scanned at every look through the first exchanges,
    /// then at every 64th);
    /// elsewhere only the input check, and the quiet window in `exchange` stands for the rest.
    private func isQuiescent() -> Bool {
        var unread: Int32 = 0
        if ioctl(stdinFD, UInt(FIONREAD), &unread) == 0 && unread > 0 { return false }
        #if os(Linux)
        // Through the first exchanges at every look (a wrapper or a pipeline is still starting
        // the processes it runs, and a process not yet seen cannot count as busy), then every
        // 64th exchange.
        if groupMembers.isEmpty || exchanges <= 8 || (exchanges % 64 == 0 && scannedAt != exchanges) {
            scanGroup()
            scannedAt = exchanges
        }
        for member in groupMembers {
            guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(member)/task") else { continue }
            for task in tasks {
                guard let stat = try? String(contentsOfFile: "/proc/\(member)/task/\(task)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")"),
                      let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first else { continue }
                // R running, D in uninterruptible I/O: still working. S, T, t, Z, I, X: not.
                if state == "R" || state == "D" { return false }
            }
        }
        #endif
        return true
    }

    static func arguments(for command: String) -> [String] {
        let special = CharacterSet(charactersIn: "|&;<>()$`\\\"'*?[#~=%{}\n")
        let words = command.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if !words.isEmpty && command.rangeOfCharacter(from: special) == nil { return words }
        return ["/bin/sh", "-c", command]
    }

    static func stderrSuffix(_ stderr: String) -> String {
        let trimmed = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return "" }
        let lines = trimmed.split(separator: "\n", omittingEmptySubsequences: false).suffix(8)
        return "; its stderr ended with:\n    " + lines.joined(separator: "\n    ")
    }
}

/// The process groups of the node processes alive, for a signal handler: when ChaosTrace is
/// interrupted (Ctrl-C, SIGTERM from CI, SIGHUP) it kills them before it dies, so no node is left
/// running on its own. A fixed table, read without locks or allocation in the handler.
enum LiveGroups {
    private static let capacity = 4_096
    nonisolated(unsafe) private static let slots: UnsafeMutablePointer<pid_t> = {
        let slots = UnsafeMutablePointer<pid_t>.allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        return slots
    }()
    private static let lock = NSLock()

    static func add(_ group: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        for index in 0..<capacity where slots[index] == 0 {
            slots[index] = group
            return
        }
    }

    static func remove(_ group: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        for index in 0..<capacity where slots[index] == group { slots[index] = 0 }
    }

    static func installHandlers() {
        _ = slots
        // On an interrupt, before the process dies of it (`Interrupts`).
        Interrupts.setHook { LiveGroups.killAll() }
    }

    private static func killAll() {
        for index in 0..<capacity where slots[index] > 0 { kill(-slots[index], SIGKILL) }
    }
}
