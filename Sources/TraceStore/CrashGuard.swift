import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The last line of defence against a damaged store file.
///
/// LMDB maps a store into memory and follows its page numbers without checksums. `checkHeader`
/// turns away files that are not stores or are cut short, and every chunk carries a checksum, but
/// a damaged B-tree page inside a whole file can still send LMDB to an address outside the map:
/// the kernel then stops the process with SIGBUS or SIGSEGV. Once `install()` has run, such a
/// signal raised while a store's map is being accessed (inside one of `LMDBEnvironment`'s
/// transactions) prints which store it was and what to do, and the process exits with 65 (bad
/// input data), not with a crash report. LMDB's writes are transactions, so nothing committed is
/// lost by ending there.
public enum CrashGuard {
    /// The message of the store whose map is being read or written right now (nil: none); each
    /// message is made when its store opens, so the handler only reads memory.
    nonisolated(unsafe) private static var active: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var installed = false

    /// Handles SIGBUS and SIGSEGV for the rest of the process (the command line calls it once).
    /// A fault while no store is being accessed is left to the default action (a crash report).
    public static func install() {
        guard !installed else { return }
        installed = true
        Signals.handle([SIGBUS, SIGSEGV]) { signal in CrashGuard.fatal(signal) }
    }

    /// The message for a fault while `path` is accessed (kept for the life of the process).
    static func message(for path: String, hint: String? = nil) -> UnsafeMutablePointer<CChar> {
        let text = "chaostrace: error: \(path) is damaged inside (a page of the store points outside the file "
            + "or at garbage), or the disk it is on is full, and using it stopped; what was committed before stays as it was. "
            + (hint.map { $0 + " " } ?? "") + "If the disk is full, free some space and go on; otherwise restore the file "
            + "from a copy; 'chaostrace verify --store \(path)' names the damaged runs when it can reach them.\n"
        let bytes = Array(text.utf8CString)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        buffer.initialize(from: bytes, count: bytes.count)
        return buffer
    }

    /// Marks the store whose message names the faults from now on; returns the one before.
    @inline(__always)
    static func enter(_ message: UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<CChar>? {
        let previous = active
        active = message
        return previous
    }

    @inline(__always)
    static func leave(_ previous: UnsafeMutablePointer<CChar>?) {
        active = previous
    }

    private static func fatal(_ signal: Int32) {
        if let message = active {
            _ = write(2, message, strlen(message))
            _exit(65)
        }
        // Not inside a store: not ours to explain. Die of the signal as usual.
        Signals.dieOf(signal)
    }
}

/// Process-wide signal handlers, for the few places that need one (`CrashGuard`, and the node
/// processes' cleanup on an interrupt).
public enum Signals {
    /// Sets `handler` for `signals`. With `keepingIgnored`, a signal whoever started this process
    /// ignores (nohup, a background job) stays ignored.
    public static func handle(_ signals: [Int32], keepingIgnored: Bool = false, _ handler: @escaping @convention(c) (Int32) -> Void) {
        for signal in signals {
            if keepingIgnored {
                var old = sigaction()
                sigaction(signal, nil, &old)
                #if canImport(Glibc)
                if unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
                #endif
            }
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = handler
            #else
            action.__sigaction_u.__sa_handler = handler
            #endif
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(signal, &action, nil)
        }
    }

    /// From a handler: ends the process by `signal`, as it would have without the handler.
    public static func dieOf(_ signal: Int32) {
        var action = sigaction()
        sigemptyset(&action.sa_mask)
        sigaction(signal, &action, nil)
        raise(signal)
    }
}

/// What an interrupt (Ctrl-C, SIGTERM from CI, SIGHUP) must undo before the process dies of it:
/// half-written output files are removed, and a hook runs first (the node processes are killed).
/// A signal whoever started this process ignores (nohup) stays ignored. Fixed tables, read
/// without locks or allocation in the handler.
public enum Interrupts {
    private static let capacity = 256
    nonisolated(unsafe) private static let paths: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let paths = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
        paths.initialize(repeating: nil, count: capacity)
        return paths
    }()
    nonisolated(unsafe) private static var hook: (@convention(c) () -> Void)?
    nonisolated(unsafe) private static var installed = false
    private static let lock = NSLock()

    /// Handles interrupts from now on (each command does, from its start).
    public static func activate() {
        lock.lock()
        defer { lock.unlock() }
        install()
    }

    /// The message of each signal handled, made before any arrives (a handler must not allocate).
    nonisolated(unsafe) private static let notes: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let notes = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 65)
        notes.initialize(repeating: nil, count: 65)
        return notes
    }()

    private static func install() {
        guard !installed else { return }
        installed = true
        // Every table the handler reads exists before it can run (a lazy one would allocate in it).
        _ = (paths, children, notes)
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            notes[Int(signal)] = strdup("\nchaostrace: interrupted (signal \(signal)); what was committed to the store is kept\n")
        }
        _ = paths
        Signals.handle([SIGINT, SIGTERM, SIGHUP], keepingIgnored: true) { received in Interrupts.interrupted(received) }
    }

    /// Runs `hook` when the process is interrupted, before it dies.
    public static func setHook(_ hook: @escaping @convention(c) () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        install()
        self.hook = hook
    }

    /// Removes `path` if the process is interrupted, until `forget` is called with the slot
    /// returned (nil: the table is full, and the file stays behind on an interrupt).
    public static func removeOnInterrupt(_ path: String) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        install()
        for slot in 0..<capacity where paths[slot] == nil {
            paths[slot] = strdup(path)
            return slot
        }
        return nil
    }

    /// The file of `slot` is finished (or gone): an interrupt leaves it alone. Its name is not
    /// freed, so that a handler running at this moment never reads freed memory.
    public static func forget(_ slot: Int?) {
        guard let slot else { return }
        lock.lock()
        defer { lock.unlock() }
        paths[slot] = nil
    }

    nonisolated(unsafe) private static let children: UnsafeMutablePointer<pid_t> = {
        let children = UnsafeMutablePointer<pid_t>.allocate(capacity: capacity)
        children.initialize(repeating: 0, count: capacity)
        return children
    }()

    /// Passes an interrupt on to the child process `pid` (a worker of `run --jobs`), until
    /// `forgetChild` is called: it stops, cleans up after itself and records nothing more.
    public static func passOnInterrupt(to pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        install()
        _ = children
        for slot in 0..<capacity where children[slot] == 0 {
            children[slot] = pid
            return
        }
    }

    public static func forgetChild(_ pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        for slot in 0..<capacity where children[slot] == pid { children[slot] = 0 }
    }

    nonisolated(unsafe) private static var graceful = false
    /// Set by the first interrupt while `stopGracefully` is on: the work in hand should end soon,
    /// with what it has (a shrink keeps its best result). A second interrupt ends the process.
    nonisolated(unsafe) public private(set) static var stopRequested = false

    /// Makes the first interrupt a request (`stopRequested`), not the end of the process.
    public static func stopGracefully() {
        lock.lock()
        defer { lock.unlock() }
        install()
        graceful = true
    }

    private static func interrupted(_ received: Int32) {
        if graceful && !stopRequested {
            stopRequested = true
            let note = "\nchaostrace: interrupted: finishing with the best result so far (interrupt again to stop at once)\n"
            _ = note.withCString { write(2, $0, strlen($0)) }
            return
        }
        if received > 0 && received < 65, let note = notes[Int(received)] { write(2, note, strlen(note)) }
        for slot in 0..<capacity where children[slot] > 0 { kill(children[slot], received) }
        // Give the workers up to 2 s to clean up and end, so none is still at work once this
        // process is gone.
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        for _ in 0..<100 {
            var running = false
            for slot in 0..<capacity where children[slot] > 0 {
                if waitpid(children[slot], nil, WNOHANG) == 0 { running = true } else { children[slot] = 0 }
            }
            if !running { break }
            nanosleep(&pause, nil)
        }
        hook?()
        for slot in 0..<capacity { if let path = paths[slot] { unlink(path) } }
        Signals.dieOf(received)
    }
}
