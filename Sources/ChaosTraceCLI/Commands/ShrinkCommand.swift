import ArgumentParser
import Foundation
import ProcessNodes
import Replay
import Simulation
import Systems
import TraceStore

struct ShrinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shrink",
        abstract: "Minimize a failing run to the smallest run that shows the same violation.",
        discussion: """
        Re-executes the run again and again with parts left out (what lies outside the violation's \
        causal past, faults, crash points, client operations, quiet stretches of heartbeats, \
        message groups of one term or view, single deliveries, nodes), keeping every removal after \
        which the same violation (checker and kind) still occurs. The result is recorded as a new run linked to the original, whose \
        'chaostrace replay' reproduces the violation. --report writes a Markdown bug report with a \
        Mermaid sequence diagram.

        Exits 0 when a shrunk run was recorded (also when a budget or an interrupt ended the \
        shrink early: the best result so far is kept; a second interrupt stops at once), 65 when the run cannot be read or has no violation, 1 when \
        re-executing it no longer shows its violation (the code changed: see 'replay --tolerant').
        """)

    @Argument(help: ArgumentHelp("A failing run: its id, 'latest' or 'latest-failure'.", valueName: "run")) var runSpec: String
    @OptionGroup var storeOptions: StoreOptions
    @Option(parsing: .unconditional, help: "Give up after this many seconds and keep the best result so far.") var timeLimit: Double = 60
    @Option(parsing: .unconditional, help: "Give up after this many re-executions and keep the best result so far.") var maxReplays: Int = 5_000
    @Option(help: ArgumentHelp("Write a Markdown bug report here.", valueName: "PATH")) var report: String?
    @Option(help: ArgumentHelp("Record the shrunk run in this store instead of the run's own (e.g. a regression store).", valueName: "PATH")) var into: String?
    @Flag(help: "Print every accepted step of the searches, and what each search ended with, to stderr, one line each with the seconds since the start.") var verbose = false
    @Flag(help: "Print the result as JSON (run, original_run, violation, deliveries_before/after, deliveries_before_violation, external_before/after, replays, seconds).") var json = false

    func validate() throws {
        if !(timeLimit > 0) { throw ValidationError("--time-limit must be a positive number of seconds") }
        if maxReplays < 1 { throw ValidationError("--max-replays must be at least 1") }
        if let report { try checkWritable(report, option: "--report") }
    }

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: false, create: false)
            let info = try store.resolveRun(runSpec)
            guard info.status == .complete else {
                throw CommandFailure(message: "run \(info.id) in \(store.path) is \(info.status.rawValue): its recording has no verdict to shrink; record the seed again with 'chaostrace run'",
                                     exitCode: Exit.badData)
            }
            guard info.failed else {
                throw CommandFailure(message: "run \(info.id) in \(store.path) passed: there is nothing to shrink (pick a failing run, e.g. 'latest-failure')",
                                     exitCode: Exit.badData)
            }
            let replayer = try Replayer(store: store, run: info.id)
            let original = replayer.configuration
            do { try ExternalSystem.preflight(recorded: replayer.configuration) } catch {
                throw CommandFailure(message: "run \(info.id): \(error)", exitCode: Exit.usage)
            }
            let system = try recordedSystem(original.system, run: info.id)
            let minimumNodes = original.nemesis.byzantineNodes > 0 ? original.nodes : min(original.nodes, 3)
            let shrinker: Shrinker
            do {
                shrinker = try Shrinker(store: store, run: info.id, minimumNodes: minimumNodes) { system.init(configuration: $0) }
            } catch let error as ShrinkError {
                throw CommandFailure(message: "\(store.path): \(error)", exitCode: Exit.badData)
            }
            var options = ShrinkOptions()
            options.timeLimit = timeLimit
            options.maxReplays = maxReplays
            let terminal = isatty(STDERR_FILENO) == 1
            if verbose {
                let t0 = Date()
                options.progress = { line in
                    FileHandle.standardError.write(Data((String(format: "%6.2f ", Date().timeIntervalSince(t0)) + line + "\n").utf8))
                }
            } else if terminal {
                options.progress = { line in
                    FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
                }
            }
            let result: ShrinkResult
            do {
                // Ctrl-C (or SIGTERM) ends the search, and the best result so far is recorded.
                Interrupts.stopGracefully()
                result = try shrinker.shrink(options: options)
            } catch let error as ShrinkError {
                if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
                throw CommandFailure(message: "\(store.path): \(error)", exitCode: Exit.violation)
            }
            if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            let output = try into.map { try TraceStore(path: $0) } ?? store
            let newRun = try shrinker.record(result, into: output, toolVersion: ChaosTrace.version)
            let repro = "chaostrace replay \(newRun) --store \(output.path)"
            if let report {
                let markdown = try BugReport.markdown(store: output, run: newRun, result: result, repro: repro,
                                                      original: shrinker.originalConfiguration, originalStore: store.path)
                let file = Output(path: report)
                file.write(markdown)
                guard file.finish() else {
                    throw CommandFailure(message: "the shrunk run is recorded (\(repro)), but the bug report could not be written to \(report): "
                                         + "\(file.failure ?? "write failed"); write it again with a shrink of run \(newRun)", exitCode: Exit.usage)
                }
            }
            if json {
                struct Shape: Encodable {
                    var run: UInt64
                    var original_run: UInt64
                    var violation: String
                    var deliveries_before: Int
                    var deliveries_before_violation: Int
                    var deliveries_after: Int
                    var external_before: Int
                    var external_after: Int
                    var replays: Int
                    var seconds: Double
                    var nodes_before: Int
                    var nodes_after: Int
                    var budget_exhausted: Bool
                    var repro: String
                    var report: String?
                }
                print(JSON.encode(Shape(run: newRun, original_run: info.id, violation: result.violation.description,
                                        deliveries_before: result.deliveriesBefore,
                                        deliveries_before_violation: result.deliveriesBeforeViolation, deliveries_after: result.deliveriesAfter,
                                        external_before: result.externalBefore, external_after: result.externalAfter,
                                        replays: result.replays, seconds: (result.seconds * 1000).rounded() / 1000,
                                        nodes_before: original.nodes, nodes_after: result.configuration.nodes,
                                        budget_exhausted: result.budgetExhausted, repro: repro, report: report)))
                return
            }
            let removed = result.deliveriesBefore == 0 ? 0 : 100 * Double(result.deliveriesBefore - result.deliveriesAfter) / Double(result.deliveriesBefore)
            print("shrunk run \(info.id) into run \(newRun): \(result.violation)")
            let upTo = result.deliveriesBeforeViolation < result.deliveriesBefore ? "; \(result.deliveriesBeforeViolation) of them up to the violation" : ""
            print("  deliveries      \(result.deliveriesBefore) → \(result.deliveriesAfter) (\(String(format: "%.1f", removed)) % removed\(upTo))")
            print("  external events \(result.externalBefore) → \(result.externalAfter)")
            print("  nodes           \(original.nodes) → \(result.configuration.nodes)")
            print("  \(result.replays) replays in \(String(format: "%.2f", result.seconds)) s"
                  + (result.budgetExhausted ? (Interrupts.stopRequested ? " (interrupted: this is the best result so far)" : " (a budget ended it: this is the best result so far)") : ""))
            // Replays per stage, summed over passes and searches (first-seen order).
            var names: [String] = []
            var totals: [String: Int] = [:]
            var later = 0
            var searches = 1
            for stage in result.stages {
                var name = stage.name
                if name.hasPrefix("search "), let colon = name.firstIndex(of: ":") {
                    searches = max(searches, Int(name[name.index(name.startIndex, offsetBy: 7)..<colon]) ?? searches)
                    name = String(name[name.index(colon, offsetBy: 2)...])
                    later += stage.replays
                }
                if totals[name] == nil { names.append(name) }
                totals[name, default: 0] += stage.replays
            }
            print("  replays by stage: " + names.map { "\($0) \(totals[$0] ?? 0)" }.joined(separator: ", ")
                  + (later > 0 ? " (\(searches) searches; after the first: \(later))" : ""))
            print("reproduce: \(repro)")
            if let report { print("bug report: \(report)") }
        }
    }
}

/// A Markdown bug report of a shrunk run: the violation in a sentence, configuration and seed,
/// the minimal event list and a Mermaid sequence diagram.
enum BugReport {
    static func markdown(store: TraceStore, run: UInt64, result: ShrinkResult, repro: String,
                         original: SimulationConfiguration, originalStore: String) throws -> String {
        let info = try store.run(run)
        let events = try store.reader(run: run).events(0..<info.eventCount)
        let configuration = result.configuration
        let interesting = minimalEvents(events)
        var messages: [UInt64: Message] = [:]
        for numbered in events where numbered.event.kind == .send {
            messages[numbered.event.id] = Message.decode(numbered.event.payload)
        }
        let system = SystemRegistry.named(configuration.system)
        let label: (UInt64) -> String = { id in
            guard let message = messages[id] else { return "msg \(id)" }
            return EventFormatting.messageLabel(message, system: system)
        }
        var text = "# \(configuration.system): \(result.violation.checker) / \(result.violation.kind)\n\n"
        text += "**Violation.** \(sentence(result.violation.explanation)) "
        text += "Found by \(result.violation.checker) at \(EventFormatting.time(result.violation.time)) of virtual time.\n\n"
        text += "## Configuration\n\n"
        text += "| | |\n|---|---|\n"
        text += "| system | `\(configuration.system)` |\n"
        text += "| planted bug | \(configuration.bug.map { "`\($0)`" } ?? "none") |\n"
        text += "| seed | \(configuration.seed) |\n"
        text += "| nodes | \(configuration.nodes) |\n"
        text += "| clients | \(configuration.clients) |\n"
        if let isolated = configuration.interventions?.isolatedNodes, !isolated.isEmpty {
            text += "| cut off | " + isolated.map { "n\($0)" }.joined(separator: ", ")
                + " (every message to or from \(isolated.count == 1 ? "it" : "them") is lost until the liveness phase) |\n"
        }
        text += "| shrunk from | run \(result.originalRun) of `\(originalStore)`, recorded by `\(rerun(original))` |\n"
        text += "| shrunk run | \(run) |\n"
        text += "| deliveries | \(result.deliveriesBefore) → \(result.deliveriesAfter)"
            + (result.deliveriesBeforeViolation < result.deliveriesBefore ? " (\(result.deliveriesBeforeViolation) before the violation in the original)" : "") + " |\n"
        text += "| external events | \(result.externalBefore) → \(result.externalAfter) |\n"
        text += "| shrink | \(result.replays) replays, \(String(format: "%.1f", result.seconds)) s |\n\n"
        text += "Reproduce:\n\n```sh\n\(repro)\n```\n\n"
        text += "## Sequence\n\n```mermaid\n\(diagram(interesting, label: label, violation: result.violation))\n```\n\n"
        text += "## Events\n\n```\n"
        for numbered in interesting { text += EventFormatting.text(numbered) + "\n" }
        text += "```\n"
        return text
    }

    /// The `run` command that records a run with this configuration's seed again (its main options).
    static func rerun(_ configuration: SimulationConfiguration) -> String {
        var words = ["chaostrace", "run", "--system", configuration.system, "--suite", configuration.nemesis.suite.rawValue,
                     "--seed", String(configuration.seed)]
        if let bug = configuration.bug { words += ["--bug", bug] }
        if configuration.nodes != 5 { words += ["--nodes", String(configuration.nodes)] }
        if configuration.clients != 3 { words += ["--clients", String(configuration.clients)] }
        if configuration.durationNanoseconds != 10_000_000_000 { words += ["--duration", String(Double(configuration.durationNanoseconds) / 1e9)] }
        if configuration.livenessNanoseconds != 5_000_000_000 { words += ["--liveness", String(Double(configuration.livenessNanoseconds) / 1e9)] }
        let nemesis = configuration.nemesis
        if nemesis.failureRate != Ratio(probability: 0.2) {
            words += ["--failure-rate", String(Double(nemesis.failureRate.numerator) / Double(max(1, nemesis.failureRate.denominator)))]
        }
        if nemesis.swarm { words.append("--swarm") }
        if nemesis.blastRadius != 0 { words += ["--blast-radius", String(nemesis.blastRadius)] }
        if nemesis.suite == .byzantine, let system = SystemRegistry.named(configuration.system),
           nemesis.byzantineNodes != system.byzantineTolerance(nodes: configuration.nodes) {
            words += ["--byzantine", String(nemesis.byzantineNodes)]
        }
        if configuration.maxEvents != 50_000_000 { words += ["--max-events", String(configuration.maxEvents)] }
        for key in configuration.options.keys.sorted() { words += ["--option", "\(key)=\(configuration.options[key]!)"] }
        if configuration.stopOnViolation == true { words.append("--stop-on-violation") }
        if let external = configuration.external { words += ["--node-cmd", external.command, "--workload", external.workload] }
        return words.map(shellQuoted).joined(separator: " ")
    }

    static func sentence(_ text: String) -> String {
        guard let first = text.first else { return text }
        // A node's name (n2) or a checker's (external-node) keeps its case.
        let word = text.prefix { !$0.isWhitespace && $0 != ":" }
        let isName = word.contains { $0.isNumber || $0 == "-" || $0 == "/" || $0 == "." }
        let capitalized = isName ? text : first.uppercased() + text.dropFirst()
        return capitalized.hasSuffix(".") ? capitalized : capitalized + "."
    }

    /// What a reader needs: messages that arrived, messages lost to faults, faults, crashes and
    /// restarts, client operations, node notes and the violation. Scheduling decisions, timers,
    /// digests and the messages the shrinker removed are left out.
    static func minimalEvents(_ events: [NumberedEvent]) -> [NumberedEvent] {
        events.filter { numbered in
            let event = numbered.event
            switch event.kind {
            case .deliver, .crash, .restart, .pause, .resume, .partition, .heal, .networkFault, .clockFault, .diskFault,
                 .resourcePressure, .byzantine, .clientInvoke, .clientComplete, .violation, .send:
                return true
            case .drop:
                return EventFormatting.textPayload(event) != "removed"
            case .log:
                return !(EventFormatting.textPayload(event) ?? "").hasPrefix("nemesis:")
            default:
                return false
            }
        }.filter { numbered in
            // Sends appear as the arrow of their delivery; a send only stays when nothing else shows it.
            numbered.event.kind != .send
        }
    }

    /// Nodes as participants, delivered messages as arrows labelled with type and key (a term, a
    /// view), lost messages as crossed arrows, faults and client operations as notes.
    static func diagram(_ events: [NumberedEvent], label: (UInt64) -> String, violation: Violation? = nil) -> String {
        // Mermaid reads '#' and ';' as markup: keep them out of note text.
        // A long explanation is cut at a word, with an ellipsis (the report's text has it whole).
        let headline = violation.map { "\($0.checker)/\($0.kind): \($0.explanation)" }.map { text in
            let clean = text.replacingOccurrences(of: "#", with: "").replacingOccurrences(of: ";", with: ",")
            guard clean.count > 140 else { return clean }
            let cut = clean.prefix(140)
            return String(cut.lastIndex(of: " ").map { cut[..<$0] } ?? cut) + " …"
        } ?? ""
        var participants: [UInt32] = []
        func participant(_ node: UInt32) { if !participants.contains(node) { participants.append(node) } }
        var lines: [String] = []
        var clients = EventFormatting.ClientNotes()
        for numbered in events {
            let event = numbered.event
            let detail = EventFormatting.textPayload(event).map { " " + $0 } ?? ""
            switch event.kind {
            case .deliver:
                participant(event.peer); participant(event.node)
                lines.append("    n\(event.peer)->>n\(event.node): \(label(event.id))")
            case .drop:
                participant(event.node); participant(event.peer)
                lines.append("    n\(event.node)-xn\(event.peer): \(label(event.id)) lost\(detail)")
            case .crash, .restart, .pause, .resume:
                participant(event.node)
                lines.append("    Note over n\(event.node): \(event.kind.name) @\(EventFormatting.time(event.time))")
            case .partition, .heal, .networkFault, .clockFault, .diskFault, .resourcePressure, .byzantine:
                participant(event.node)
                lines.append("    Note over n\(event.node): \(event.kind.name)\(detail)")
            case .clientInvoke:
                participant(event.peer)
                lines.append(clients.invoke(event))
            case .clientComplete:
                lines.append(clients.complete(event, fallback: participants.first ?? 0))
            case .log:
                participant(event.node)
                lines.append("    Note over n\(event.node):\(detail)")
            case .violation:
                participant(event.node)
                let sorted = participants.sorted()
                let span = sorted.count > 1 ? "n\(sorted.first!),n\(sorted.last!)" : "n\(sorted.first ?? event.node)"
                lines.append("    Note over \(span): VIOLATION \(headline)")
            default:
                continue
            }
        }
        let header = ["sequenceDiagram"] + participants.sorted().map { "    participant n\($0)" }
        return (header + lines).joined(separator: "\n").replacingOccurrences(of: ";", with: ",")
    }
}
