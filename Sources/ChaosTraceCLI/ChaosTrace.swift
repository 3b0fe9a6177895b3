import ArgumentParser
import Foundation
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
    /// An interrupt says so, cleans up after itself and ends with 128 + the signal's number.
    static func main() {
        CrashGuard.install()
        Interrupts.activate()
        let arguments = Array(CommandLine.arguments.dropFirst())
        // 'help NAME' for a command that does not exist is bad usage, not the general help.
        if arguments.count >= 2, arguments[0] == "help", !arguments[1].hasPrefix("-"),
           !configuration.subcommands.contains(where: { $0.configuration.commandName == arguments[1] }) {
            let names = configuration.subcommands.compactMap { $0.configuration.commandName }.filter { $0 != "record-synthetic" }
            FileHandle.standardError.write(Data("chaostrace: error: no command '\(arguments[1])'; commands are: \(names.joined(separator: ", "))\n".utf8))
            Foundation.exit(Exit.usage)
        }
        main(arguments)
    }
}
