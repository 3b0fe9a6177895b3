import ArgumentParser
import Foundation
import ProcessNodes
import Replay
import Simulation
import Systems
import TraceStore

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-execute a recorded run from its recorded decisions and compare every event.",
        discussion: """
        Exits 0 when the replay is identical, 3 when it diverged (the first divergent event is shown \
        with both versions and context), 65 when the run cannot be read.

        With --tolerant the run is replayed against the current code, matching recorded decisions to \
        the new execution (messages by fingerprint); add --no-bug to switch its planted bug off and \
        ask "is this bug fixed?": it exits 0 when the violation is gone and 1 when it still occurs.
        """)

    @Argument(help: ArgumentHelp("A run id, 'latest' or 'latest-failure'.", valueName: "run")) var runSpec: String
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Keep going past divergences, matching recorded decisions by fingerprint.") var tolerant = false
    @Option(parsing: .unconditional, help: "Stop after event N (to step through a failure).") var until: UInt64?
    @Flag(help: "Replay with the run's planted bug switched off.") var noBug = false
    @Option(help: "Replay with this planted bug switched on instead.") var bug: String?
    @Flag(help: "Print the report as JSON (run, identical, events, violation_reproduced, first_divergence).") var json = false

    func validate() throws {
        if noBug && bug != nil { throw ValidationError("use --no-bug or --bug NAME, not both") }
    }

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let info = try store.resolveRun(runSpec)
            let replayer = try Replayer(store: store, run: info.id)
            var configuration = replayer.configuration
            do { try ExternalSystem.preflight(recorded: replayer.configuration) } catch {
                throw CommandFailure(message: "run \(info.id): \(error)", exitCode: Exit.usage)
            }
            if noBug { configuration.bug = nil }
            if let bug { configuration.bug = bug }
            let system = try recordedSystem(configuration.system, run: info.id)
            if let bug, !system.bugs.contains(bug) {
                let owner = SystemRegistry.owning(bug: bug).map { "it belongs to system '\($0.name)'" } ?? "no system has it"
                throw CommandFailure(message: "run \(info.id) is a run of system '\(system.name)', and --bug \(bug) is not one of its planted bugs (\(owner)); "
                                     + "its bugs are: \(system.bugs.isEmpty ? "none" : system.bugs.joined(separator: ", "))", exitCode: Exit.usage)
            }
            if configuration.bug != replayer.configuration.bug && !tolerant {
                throw CommandFailure(message: "changing the planted bug changes the code: add --tolerant", exitCode: Exit.usage)
            }
            // A run whose writer died ends where its last chunk was committed: replay it up to
            // there (what follows was never recorded, so it cannot diverge).
            var stop = until
            if let until, until >= info.eventCount {
                FileHandle.standardError.write(Data("note: --until \(until) is past run \(info.id)'s last event (#\(info.eventCount &- 1)); replaying it whole\n".utf8))
                stop = nil
            }
            if info.status != .complete && !tolerant && info.eventCount > 0 {
                stop = min(until ?? UInt64.max, info.eventCount - 1)
                FileHandle.standardError.write(Data("note: run \(info.id) is \(info.status.rawValue) (its writer stopped after event #\(info.eventCount - 1)); replaying up to there\n".utf8))
            }
            let report = try replayer.replay(makeSystem: { system.init(configuration: $0) }, configuration: configuration,
                                             mode: tolerant ? .tolerant : .strict, until: stop)
            output(report, info: info)
            if tolerant {
                if report.violation != nil { throw ExitCode(Exit.violation) }
            } else if !report.identical {
                throw ExitCode(Exit.diverged)
            }
        }
    }

    func output(_ report: ReplayReport, info: RunInfo) {
        if json {
            struct Shape: Encodable {
                var run: UInt64
                var identical: Bool
                var events: UInt64
                var violation_reproduced: Bool
                var first_divergence: Divergence?
                var violation: Violation?
                var recorded_violation: Violation?
                var tolerant: Tolerance?
                var stopped_at: UInt64?

                enum CodingKeys: String, CodingKey {
                    case run, identical, events, violation_reproduced, first_divergence, violation, recorded_violation, tolerant, stopped_at
                }

                func encode(to encoder: Encoder) throws {
                    var container = encoder.container(keyedBy: CodingKeys.self)
                    try container.encode(run, forKey: .run)
                    try container.encode(identical, forKey: .identical)
                    try container.encode(events, forKey: .events)
                    try container.encode(violation_reproduced, forKey: .violation_reproduced)
                    try container.encode(first_divergence, forKey: .first_divergence)  // null when identical
                    try container.encode(violation, forKey: .violation)
                    try container.encode(recorded_violation, forKey: .recorded_violation)
                    try container.encodeIfPresent(tolerant, forKey: .tolerant)
                    try container.encodeIfPresent(stopped_at, forKey: .stopped_at)
                }
            }
            struct Tolerance: Encodable { var matched: Int; var missing: Int; var new: Int }
            print(JSON.encode(Shape(run: report.run, identical: report.identical, events: report.events,
                                    violation_reproduced: report.violationReproduced, first_divergence: report.firstDivergence,
                                    violation: report.violation, recorded_violation: report.recordedViolation,
                                    tolerant: tolerant ? Tolerance(matched: report.matched, missing: report.missing, new: report.new) : nil,
                                    stopped_at: report.stoppedAt)))
            return
        }
        if tolerant {
            print("tolerant replay of run \(report.run): \(report.events) events (recorded \(report.recordedEvents)); decisions: \(report.matched) matched, \(report.missing) missing, \(report.new) new")
            if let violation = report.violation, let recorded = report.recordedViolation,
               (violation.checker, violation.kind) != (recorded.checker, recorded.kind) {
                print("the recorded violation is gone: \(recorded)")
                print("a different violation occurs: \(violation)")
            } else if let violation = report.violation {
                print("violation still occurs: \(violation)")
            } else if let recorded = report.recordedViolation {
                print("the recorded violation is gone: \(recorded)")
            } else {
                print("no violation")
            }
            return
        }
        if let divergence = report.firstDivergence {
            print("run \(report.run) DIVERGED at event #\(divergence.event)")
            print("  recorded: \(divergence.recorded ?? "(none)")")
            print("  replayed: \(divergence.replayed ?? "(none)")")
            if !divergence.replayedContext.isEmpty {
                print("  replayed before it:")
                for line in divergence.replayedContext { print("    \(line)") }
            }
            if !divergence.recordedContext.isEmpty {
                print("  recording around it:")
                for line in divergence.recordedContext { print("    \(line)") }
            }
            return
        }
        if let stopped = report.stoppedAt {
            print("run \(report.run): identical up to event #\(stopped) (of \(report.recordedEvents)); look at it with: chaostrace show \(report.run) --store \(storeOptions.store) --from \(stopped > 10 ? stopped - 10 : 0) --to \(stopped)")
            return
        }
        print("run \(report.run): identical, \(report.events) events")
        if let violation = report.violation {
            print("violation reproduced: \(violation)")
        }
    }
}
