import ArgumentParser
import Foundation
import Simulation
import Systems
import TraceStore

/// The result of one seed of one system under one suite.
struct RunOutcome: Codable {
    var run: UInt64?
    var seed: UInt64
    var system: String
    var suite: String
    /// "pass", "fail", or "nondeterministic" (with --check-determinism).
    var verdict: String
    var violation: Violation?
    var events: UInt64
    var digest: String
    var stopReason: String?
    var determinism: DeterminismReport?
    /// What a check could not decide on a passing run.
    var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case run, seed, system, suite, verdict, violation, events, digest, stopReason = "stop_reason", determinism, warnings
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(run, forKey: .run)  // null when not recorded
        try container.encode(seed, forKey: .seed)
        try container.encode(system, forKey: .system)
        try container.encode(suite, forKey: .suite)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(violation, forKey: .violation)  // null when none
        try container.encode(events, forKey: .events)
        try container.encode(digest, forKey: .digest)
        try container.encodeIfPresent(stopReason, forKey: .stopReason)
        try container.encodeIfPresent(determinism, forKey: .determinism)
        try container.encodeIfPresent(warnings, forKey: .warnings)
    }
}

/// Where two executions of the same seed first differ.
struct DeterminismReport: Codable {
    var identical: Bool
    var firstDifference: UInt64?
    var here: String?
    var there: String?
}

struct RunSummary: Codable {
    var seeds: Int
    var passed: Int
    var failed: Int
    /// Runs the event budget ended before their scenario: not judged.
    var stopped: Int
    var runs: [RunOutcome]
}

/// Runs the seeds of a `run` command, here or in child processes, and reports them.
struct SeedRunner {
    let command: RunCommand
    let pairs: [(SystemDefinition.Type, Suite)]
    let progress = isatty(STDERR_FILENO) == 1

    func runHere(seeds: [UInt64]) throws -> [RunOutcome] {
        let store: TraceStore? = command.noRecord ? nil : try TraceStore(path: command.storeOptions.store)
        var outcomes: [RunOutcome] = []
        let total = seeds.count * pairs.count
        // Workers of `--jobs` record under ids their parent set aside: seed by seed, in the order
        // of the whole (unsharded) seed list, whichever worker finishes first.
        let allSeeds = command.runIDBase == nil ? [] : command.allSeeds()
        for seed in seeds {
            for (pairIndex, (system, suite)) in pairs.enumerated() {
                let configuration = try command.makeConfiguration(system: system, suite: suite, seed: seed)
                var id: UInt64?
                if let base = command.runIDBase, let seedIndex = allSeeds.firstIndex(of: seed) {
                    id = base + UInt64(seedIndex * pairs.count + pairIndex)
                }
                var outcome = try runOne(system: system, configuration: configuration, store: store, id: id)
                if command.checkDeterminism {
                    let report = try checkDeterminism(system: system, suite: suite, configuration: configuration, outcome: outcome, store: store)
                    outcome.determinism = report
                    if !report.identical { outcome.verdict = "nondeterministic" }
                }
                outcomes.append(outcome)
                if progress && !command.json {
                    let failed = outcomes.filter { $0.verdict != "pass" && $0.verdict != "stopped" }.count
                    FileHandle.standardError.write(Data("\r\u{1B}[K[\(outcomes.count)/\(total)] \(system.name)/\(suite.rawValue) seed \(seed): \(outcome.verdict) (\(outcome.events) events) — \(failed) failed so far".utf8))
                }
            }
        }
        if progress && !command.json { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        return outcomes
    }

    func runOne(system: SystemDefinition.Type, configuration: SimulationConfiguration, store: TraceStore?, id: UInt64? = nil) throws -> RunOutcome {
        let recorder: RunRecorder?
        if let store {
            let json = String(decoding: try JSONCoding.encoder.encode(configuration), as: UTF8.self)
            recorder = try store.beginRun(seed: configuration.seed, configuration: json, toolVersion: ChaosTrace.version, id: id)
        } else {
            recorder = nil
        }
        let simulator = Simulator(configuration: configuration, system: system.init(configuration: configuration), recorder: recorder)
        if command.maxSeconds > 0 {
            let deadline = Date().addingTimeInterval(command.maxSeconds)
            let limit = command.maxSeconds
            simulator.wallTimeLimit = ("wall-time budget of \(limit == limit.rounded() ? String(Int(limit)) : String(limit)) s reached", { Date() >= deadline })
        }
        let result = simulator.run()
        if let failure = simulator.recordingFailure as? TraceStoreError {
            throw CommandFailure(message: failure.description, exitCode: failure.exitCode)
        }
        if let reason = result.stopReason, reason.hasPrefix("recording failed") {
            throw CommandFailure(message: "\(command.storeOptions.store): \(reason)", exitCode: Exit.internalError)
        }
        return RunOutcome(run: recorder?.runID, seed: configuration.seed, system: system.name,
                          suite: configuration.nemesis.suite.rawValue, verdict: result.verdict.rawValue,
                          violation: result.violation, events: result.events, digest: String(result.digest, radix: 16),
                          stopReason: result.stopReason, warnings: result.warnings.isEmpty ? nil : result.warnings)
    }

    // MARK: - Determinism

    /// Runs the seed again in a separate process, recording into a scratch store, and compares.
    func checkDeterminism(system: SystemDefinition.Type, suite: Suite, configuration: SimulationConfiguration,
                          outcome: RunOutcome, store: TraceStore?) throws -> DeterminismReport {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-determinism-\(getpid())-\(configuration.seed)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let otherPath = directory.appendingPathComponent("other.trace").path
        var arguments = ["run", "--system", system.name, "--suite", suite.rawValue, "--seed", String(configuration.seed),
                         "--store", otherPath, "--json"]
        arguments += command.sharedArguments()
        let child = try ChildProcess.run(arguments)
        guard child.status == Exit.success || child.status == Exit.violation || child.status == Exit.unknown,
              let summary = try? JSONDecoder().decode(RunSummaryShape.self, from: Data(child.stdout.utf8)),
              let other = summary.runs.first else {
            throw CommandFailure(message: "the second process for seed \(configuration.seed) failed (exit \(child.status)): \(child.stderr.prefix(500))", exitCode: Exit.internalError)
        }
        if other.digest == outcome.digest && other.events == outcome.events {
            return DeterminismReport(identical: true)
        }
        // Find the first differing event: our recording (or a scratch one) against theirs.
        var ourStore = store
        var ourRun = outcome.run
        if ourStore == nil || ourRun == nil {
            let scratch = try TraceStore(path: directory.appendingPathComponent("here.trace").path)
            let recorded = try runOne(system: system, configuration: configuration, store: scratch)
            ourStore = scratch
            ourRun = recorded.run
        }
        let otherStore = try TraceStore(path: otherPath, options: { var o = TraceStore.Options(); o.readOnly = true; return o }())
        let difference = try firstDifference(ourStore!.reader(run: ourRun!), try otherStore.reader(run: other.run ?? 1))
        return DeterminismReport(identical: false, firstDifference: difference.number,
                                 here: difference.here.map(EventFormatting.text), there: difference.there.map(EventFormatting.text))
    }

    func firstDifference(_ a: RunReader, _ b: RunReader) throws -> (number: UInt64, here: NumberedEvent?, there: NumberedEvent?) {
        var number: UInt64 = 0
        let batch: UInt64 = 4_096
        while true {
            let left = try a.events(number..<number + batch)
            let right = try b.events(number..<number + batch)
            for index in 0..<max(left.count, right.count) {
                let l = index < left.count ? left[index] : nil
                let r = index < right.count ? right[index] : nil
                if l?.event != r?.event { return (number + UInt64(index), l, r) }
            }
            if left.count < Int(batch) && right.count < Int(batch) { return (number + UInt64(left.count), nil, nil) }
            number += batch
        }
    }

    // MARK: - Several processes

    func runInProcesses() throws -> [RunOutcome] {
        // The workers share one store: create it here first, so that no worker opens it while
        // another is still setting it up.
        var arguments = ["run", "--json", "--store", command.storeOptions.store, "--seeds", String(command.seeds ?? 1),
                         "--first-seed", String(command.firstSeed)]
        if !command.noRecord {
            // Run ids in seed order, whichever worker gets there first.
            let store = try command.storeOptions.open(readOnly: false)
            let base = try store.reserveRunIDs(command.allSeeds().count * pairs.count)
            arguments += ["--run-id-base", String(base)]
        }
        if let suite = command.suite { arguments += ["--suite", suite.rawValue] }
        if let system = command.system { arguments += ["--system", system] }
        if command.noRecord { arguments.append("--no-record") }
        if command.checkDeterminism { arguments.append("--check-determinism") }
        arguments += command.sharedArguments()
        let outer = try command.parsedShard()
        let jobs = command.jobs
        var children: [ChildProcess] = []
        for job in 1...jobs {
            // Shard i of N inside an outer shard: combine into one shard of N × jobs.
            let shard = outer.map { "\(($0.index - 1) * jobs + job)/\($0.count * jobs)" } ?? "\(job)/\(jobs)"
            children.append(try ChildProcess.start(arguments + ["--shard", shard]))
        }
        var outcomes: [RunOutcome] = []
        for child in children {
            let result = child.wait()
            guard result.status == Exit.success || result.status == Exit.violation || result.status == Exit.unknown,
                  let summary = try? JSONDecoder().decode(RunSummaryShape.self, from: Data(result.stdout.utf8)) else {
                let how = result.status > 128 ? "was killed by signal \(result.status - 128)" : "failed (exit \(result.status))"
                throw CommandFailure(message: "a worker process \(how): \(result.stderr.prefix(500))", exitCode: Exit.internalError)
            }
            outcomes += summary.runs
        }
        return outcomes.sorted { ($0.seed, $0.system, $0.suite) < ($1.seed, $1.system, $1.suite) }
    }

    // MARK: - Reporting

    func report(_ outcomes: [RunOutcome]) throws {
        let passed = outcomes.filter { $0.verdict == "pass" }.count
        let stopped = outcomes.filter { $0.verdict == "stopped" }.count
        let seeds = Set(outcomes.map(\.seed)).count
        if command.json {
            print(JSON.encode(RunSummary(seeds: seeds, passed: passed, failed: outcomes.count - passed - stopped, stopped: stopped, runs: outcomes)))
        } else {
            var rows = [["SEED", "SYSTEM", "SUITE", "VERDICT", "EVENTS", "RUN", "VIOLATION"]]
            let shown = outcomes.count > 40 ? outcomes.filter { $0.verdict != "pass" } : outcomes
            for outcome in shown {
                rows.append([String(outcome.seed), outcome.system, outcome.suite, outcome.verdict, String(outcome.events),
                             outcome.run.map(String.init) ?? "-", outcome.violation?.description ?? outcome.stopReason ?? ""])
            }
            if shown.count < outcomes.count { print("(\(outcomes.count - shown.count) passing runs not listed)") }
            if shown.count > 0 { print(Table.render(rows)) }
            print("\(outcomes.count) run\(outcomes.count == 1 ? "" : "s") over \(seeds) seed\(seeds == 1 ? "" : "s"): \(passed) passed, \(outcomes.count - passed - stopped) failed"
                  + (stopped > 0 ? ", \(stopped) stopped by a budget (not judged)" : ""))
            if !command.noRecord { print("trace store: \(command.storeOptions.store)") }
        }
        for outcome in outcomes where outcome.verdict == "pass" {
            for warning in outcome.warnings ?? [] {
                let text = "seed \(outcome.seed) (\(outcome.system)/\(outcome.suite)) passed, but \(warning)\n"
                if command.json { FileHandle.standardError.write(Data(text.utf8)) } else { print(text, terminator: "") }
            }
        }
        for outcome in outcomes where outcome.verdict != "pass" {
            var lines: [String] = []
            if let determinism = outcome.determinism, !determinism.identical {
                lines.append("seed \(outcome.seed) (\(outcome.system)/\(outcome.suite)) is NOT deterministic: first differing event #\(determinism.firstDifference ?? 0)")
                lines.append("  this process:  \(determinism.here ?? "(no event)")")
                lines.append("  other process: \(determinism.there ?? "(no event)")")
            } else if outcome.verdict == "stopped" {
                lines.append("seed \(outcome.seed) (\(outcome.system)/\(outcome.suite)) was not judged: \(outcome.stopReason ?? "event budget reached") "
                             + "before its scenario ended, so its final checks never ran; raise \(outcome.stopReason?.hasPrefix("wall") == true ? "--max-seconds" : "--max-events")")
            } else {
                lines.append("seed \(outcome.seed) (\(outcome.system)/\(outcome.suite)) failed: \(outcome.violation?.description ?? outcome.stopReason ?? outcome.verdict)")
            }
            var rerun = "chaostrace run --system \(outcome.system) --suite \(outcome.suite) --seed \(outcome.seed)"
            let shared = command.sharedArguments().map(shellQuoted).joined(separator: " ")
            if !shared.isEmpty { rerun += " " + shared }
            if command.storeOptions.store != StoreOptions.defaultPath { rerun += " --store " + shellQuoted(command.storeOptions.store) }
            if let run = outcome.run { lines.append("  look:   chaostrace show \(run) --store \(command.storeOptions.store) --kind violation,crash,partition,heal") }
            lines.append("  rerun:  \(rerun)")
            let text = lines.joined(separator: "\n") + "\n"
            if command.json { FileHandle.standardError.write(Data(text.utf8)) } else { print(text, terminator: "") }
        }
        if let path = command.junit { try JUnit.write(outcomes, to: path) }
    }
}

/// Decoding side of `RunSummary`, tolerant of what it does not need.
struct RunSummaryShape: Decodable {
    var runs: [RunOutcome]
}

extension RunCommand {
    /// The options that shape a run, as command-line arguments (for child processes and repro lines).
    func sharedArguments() -> [String] {
        var arguments: [String] = []
        if let bug { arguments += ["--bug", bug] }
        if nodes != 5 { arguments += ["--nodes", String(nodes)] }
        if failureRate != 0.2 { arguments += ["--failure-rate", String(failureRate)] }
        if duration != 10 { arguments += ["--duration", String(duration)] }
        if liveness != 5 { arguments += ["--liveness", String(liveness)] }
        if clients != 3 { arguments += ["--clients", String(clients)] }
        if swarm { arguments.append("--swarm") }
        if let blastRadius { arguments += ["--blast-radius", String(blastRadius)] }
        if let byzantine { arguments += ["--byzantine", String(byzantine)] }
        if maxEvents != 50_000_000 { arguments += ["--max-events", String(maxEvents)] }
        if maxSeconds != 0 { arguments += ["--max-seconds", String(maxSeconds)] }
        for item in option { arguments += ["--option", item] }
        if stopOnViolation { arguments.append("--stop-on-violation") }
        if let nodeCmd { arguments += ["--node-cmd", nodeCmd] }
        if let workload { arguments += ["--workload", workload] }
        return arguments
    }
}

/// A child `chaostrace` process with its output captured.
final class ChildProcess {
    let process = Process()
    private let outFile: URL
    private let errFile: URL

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// The output files' slots in `Interrupts`: an interrupt removes them.
    private var fileSlots: [Int?] = []

    private init() {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-child-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        outFile = base.appendingPathExtension("out")
        errFile = base.appendingPathExtension("err")
        fileSlots = [Interrupts.removeOnInterrupt(outFile.path), Interrupts.removeOnInterrupt(errFile.path)]
    }

    static func start(_ arguments: [String]) throws -> ChildProcess {
        let child = ChildProcess()
        FileManager.default.createFile(atPath: child.outFile.path, contents: nil)
        FileManager.default.createFile(atPath: child.errFile.path, contents: nil)
        child.process.executableURL = URL(fileURLWithPath: CommandLine.executablePath)
        child.process.arguments = arguments
        child.process.standardOutput = try FileHandle(forWritingTo: child.outFile)
        child.process.standardError = try FileHandle(forWritingTo: child.errFile)
        child.process.standardInput = FileHandle.nullDevice
        try child.process.run()
        // Ctrl-C or a CI's SIGTERM reaches the workers too: none goes on recording alone.
        Interrupts.passOnInterrupt(to: child.process.processIdentifier)
        return child
    }

    static func run(_ arguments: [String]) throws -> Result { try start(arguments).wait() }

    func wait() -> Result {
        process.waitUntilExit()
        Interrupts.forgetChild(process.processIdentifier)
        let out = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: outFile)
        try? FileManager.default.removeItem(at: errFile)
        fileSlots.forEach(Interrupts.forget)
        // A worker ended by a signal is named by it (Foundation gives the signal's number as the status).
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return Result(status: status, stdout: out, stderr: err)
    }
}

extension CommandLine {
    /// This executable's path, resolved so that child processes run the same binary.
    static var executablePath: String {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
        return arguments[0]
    }
}

enum JUnit {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func write(_ outcomes: [RunOutcome], to path: String) throws {
        // A run a budget stopped was not judged: skipped, not failed.
        let failures = outcomes.filter { $0.verdict != "pass" && $0.verdict != "stopped" }.count
        let skippedCount = outcomes.count - failures - outcomes.filter { $0.verdict == "pass" }.count
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"chaostrace\" tests=\"\(outcomes.count)\" failures=\"\(failures)\" skipped=\"\(skippedCount)\">\n"
        xml += "  <testsuite name=\"chaostrace run\" tests=\"\(outcomes.count)\" failures=\"\(failures)\" skipped=\"\(skippedCount)\">\n"
        for outcome in outcomes {
            let name = "\(outcome.system)/\(outcome.suite)/seed-\(outcome.seed)"
            xml += "    <testcase classname=\"\(escape(outcome.system)).\(escape(outcome.suite))\" name=\"\(escape(name))\">\n"
            if outcome.verdict == "stopped" {
                xml += "      <skipped message=\"\(escape("not judged: " + (outcome.stopReason ?? "a budget ended it")))\"/>\n"
            } else if outcome.verdict != "pass" {
                let message = outcome.violation?.description ?? outcome.determinism.map { "nondeterministic at event \($0.firstDifference ?? 0)" }
                    ?? outcome.stopReason.map { "not judged: \($0)" } ?? outcome.verdict
                xml += "      <failure message=\"\(escape(message))\">run \(outcome.run.map(String.init) ?? "-"), \(outcome.events) events</failure>\n"
            }
            xml += "    </testcase>\n"
        }
        xml += "  </testsuite>\n</testsuites>\n"
        let file = Output(path: path)
        file.write(xml)
        guard file.finish() else {
            throw CommandFailure(message: "cannot write the JUnit report to \(path): \(file.failure ?? "write failed") (every run is recorded)", exitCode: Exit.usage)
        }
    }
}

/// `word` as one shell word.
func shellQuoted(_ word: String) -> String {
    let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
    if plain && !word.isEmpty { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
