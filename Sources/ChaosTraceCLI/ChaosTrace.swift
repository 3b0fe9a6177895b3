import ArgumentParser
import TraceStore

@main
struct ChaosTrace: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "chaostrace",
        abstract: "Chaos testing of distributed systems by deterministic simulation: record, replay, shrink.",
        discussion: """
        Exit codes: 0 success; 1 an invariant was violated; 2 'check' ran out of search budget \
        (unknown); 3 replay diverged; 64 bad usage; 65 bad input data (corrupt trace, bad history); \
        70 internal error.
        """,
        version: version,
        subcommands: [
            RunCommand.self,
            ReplayCommand.self,
            ShrinkCommand.self,
            LsCommand.self,
            MergeCommand.self,
            ExportCommand.self,
            DiffCommand.self,
            ShowCommand.self,
            VerifyCommand.self,
            BenchCommand.self,
            StatsCommand.self,
            CheckCommand.self,
            RecordSyntheticCommand.self,
        ]
    )

    /// A damaged store that makes LMDB fault ends with a message and exit code 65, not a crash.
    static func main() {
        CrashGuard.install()
        main(Array(CommandLine.arguments.dropFirst()))
    }
}
