import ArgumentParser
import TraceStore

/// The `--store` option shared by every command that reads or writes a trace store.
struct StoreOptions: ParsableArguments {
    static let defaultPath = "traces/runs.trace"

    @Option(name: .long, help: ArgumentHelp("The trace store file.", valueName: "PATH"))
    var store: String = StoreOptions.defaultPath

    func open(readOnly: Bool) throws -> TraceStore {
        var options = TraceStore.Options()
        options.readOnly = readOnly
        return try TraceStore(path: store, options: options)
    }
}
