import ArgumentParser
import TraceStore

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every chunk of every run: checksums, event counts, indexes.",
        discussion: "Exits 0 when the store is sound, 65 when anything is damaged (each problem names its run and chunk).")

    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let report = try store.verify()
            if json {
                struct Shape: Encodable {
                    var store: String; var ok: Bool; var runs: Int; var chunks: Int; var events: UInt64
                    var incomplete_runs: [UInt64]; var problems: [VerifyProblem]
                }
                print(JSON.encode(Shape(store: report.path, ok: report.ok, runs: report.runs, chunks: report.chunks,
                                        events: report.events, incomplete_runs: report.incompleteRuns, problems: report.problems)))
            } else {
                print("\(report.path): \(report.runs) runs, \(report.chunks) chunks, \(report.events) events checked")
                if !report.incompleteRuns.isEmpty {
                    print("incomplete runs (writer died; readable to their last chunk): \(report.incompleteRuns.map(String.init).joined(separator: ", "))")
                }
                for problem in report.problems { print("DAMAGED \(problem)") }
                print(report.ok ? "ok" : "\(report.problems.count) problem(s) found")
            }
            if !report.ok {
                if !json {
                    printError("\(report.path) is damaged; events before a damaged chunk are still readable with chaostrace show")
                }
                throw ExitCode(Exit.badData)
            }
        }
    }
}
