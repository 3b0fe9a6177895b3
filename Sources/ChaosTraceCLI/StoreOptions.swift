import Foundation
import ArgumentParser
import TraceStore

/// The `--store` option shared by every command that reads or writes a trace store.
struct StoreOptions: ParsableArguments {
    static let defaultPath = "traces/runs.trace"

    @Option(name: .long, help: ArgumentHelp("The trace store file.", valueName: "PATH"))
    var store: String = StoreOptions.defaultPath

    /// Opens the store, creating it only when `create` (a command that reads runs, even one that
    /// then adds a run, never leaves an empty store behind a mistyped path).
    func open(readOnly: Bool, create: Bool = true) throws -> TraceStore {
        if !create && !FileManager.default.fileExists(atPath: store) { throw TraceStoreError.storeMissing(path: store) }
        var options = TraceStore.Options()
        options.readOnly = readOnly
        return try TraceStore(path: store, options: options)
    }
}
