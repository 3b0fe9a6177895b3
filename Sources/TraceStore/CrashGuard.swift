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
/// the kernel then stops the process with SIGBUS or SIGSEGV. Once `install()` has run and a store
/// is open, such a signal prints which store it was reading and what to do, and the process exits
/// with 65 (bad input data), not with a crash report. Reads never change a store, and LMDB's
/// writes are transactions, so nothing committed is lost by ending there.
public enum CrashGuard {
    /// The message for the most recently opened store, ready to be written from a signal handler
    /// (no allocation there).
    nonisolated(unsafe) private static var message: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var messageLength = 0
    nonisolated(unsafe) private static var installed = false

    /// Handles SIGBUS and SIGSEGV for the rest of the process (the command line calls it once).
    public static func install() {
        guard !installed else { return }
        installed = true
        var action = sigaction()
        #if canImport(Glibc)
        action.__sigaction_handler.sa_handler = { signal in CrashGuard.fatal(signal) }
        #else
        action.__sigaction_u.__sa_handler = { signal in CrashGuard.fatal(signal) }
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGBUS, &action, nil)
        sigaction(SIGSEGV, &action, nil)
    }

    /// Called when a store is opened: a fault from now on is blamed on this file.
    static func opened(_ path: String) {
        let text = "chaostrace: error: \(path) is damaged inside (a page of the store points outside the file "
            + "or at garbage), and reading it stopped. Nothing was changed. Restore the file from a copy; "
            + "'chaostrace verify --store \(path)' names the damaged runs when it can reach them.\n"
        let bytes = Array(text.utf8CString)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        buffer.initialize(from: bytes, count: bytes.count)
        // The previous message is kept (never freed): a handler may be reading it right now.
        message = buffer
        messageLength = bytes.count - 1
    }

    private static func fatal(_ signal: Int32) {
        if let message {
            _ = write(2, message, messageLength)
            _exit(65)
        }
        // No store was open: not ours to explain. Die of the signal as usual.
        var action = sigaction()
        sigemptyset(&action.sa_mask)
        sigaction(signal, &action, nil)
        raise(signal)
    }
}
