import ArgumentParser
import Foundation
import ProcessNodes
import Simulation
import Systems
import TraceStore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run chaos simulations: a system under a fault suite, one run per seed, each recorded.",
        discussion: """
        Exits 0 when every seed passed, 1 when any violated an invariant (or, with \
        --check-determinism, ran differently in a second process), 2 when none failed but \
        --max-events or --max-seconds stopped a run before its scenario ended (its final checks never ran: the \
        run is recorded with verdict 'stopped'), 64 on bad usage, 70 on an internal error. A \
        failing seed prints the commands that reproduce it.
        """)

    enum SuiteChoice: String, ExpressibleByArgument, CaseIterable {
        case none, nodes, network, resources, distributed, byzantine, all
    }

    @Option(help: "The system under test (\(SystemRegistry.all.map { $0.name }.joined(separator: ", "))). Default: every system the suite applies to, or the one owning --bug.")
    var system: String?
    @Option(help: "Switch on a planted bug (implies its system).") var bug: String?
    @Option(help: "The fault suite: none, nodes, network, resources, distributed, byzantine or all. Default: each system's own (distributed for most, byzantine for bft).")
    var suite: SuiteChoice?
    @Option(parsing: .unconditional, help: "Nodes in the cluster.") var nodes: Int = 5
    @Option(parsing: .unconditional, help: "Run this one seed.") var seed: UInt64?
    @Option(parsing: .unconditional, help: "Run this many seeds.") var seeds: Int?
    @Option(parsing: .unconditional, help: "The first of --seeds.") var firstSeed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Chance of a fault at each nemesis tick (0…1).") var failureRate: Double = 0.2
    @Option(parsing: .unconditional, help: "Virtual seconds of the safety phase (faults on).") var duration: Double = 10
    @Option(parsing: .unconditional, help: "Virtual seconds the system has to recover once every fault heals.") var liveness: Double = 5
    @Option(parsing: .unconditional, help: "Concurrent clients.") var clients: Int = 3
    @Flag(help: "Swarm mode: draw the fault mix and rates from each seed.") var swarm = false
    @Option(parsing: .unconditional, help: "Most nodes one fault may touch (default: a minority).") var blastRadius: Int?
    @Option(parsing: .unconditional, help: "Byzantine nodes in the byzantine suite (default: the most the system tolerates, f).") var byzantine: Int?
    @Option(parsing: .unconditional, help: "Stop a run after this many events (circuit breaker; such a run is not judged).") var maxEvents: UInt64 = 50_000_000
    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Stop a run after this many wall-clock seconds (circuit breaker, 0: none; such a run is not judged).",
        discussion: "For external nodes that send on their own timers, which a simulation cannot keep up with. A run it stops ends with the step under way; the trace records where, and 'replay' stops there too."))
    var maxSeconds: Double = 0
    @Option(help: ArgumentHelp("A system option, e.g. fanout=4 (repeatable).", valueName: "KEY=VALUE")) var option: [String] = []
    @Option(help: ArgumentHelp("Run every node as this external program speaking the Maelstrom protocol (JSON lines on stdin/stdout). Needs --workload.", valueName: "CMD"))
    var nodeCmd: String?
    @Option(help: ArgumentHelp("The clients' workload for --node-cmd nodes: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "NAME"))
    var workload: String?
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Run without recording a trace.") var noRecord = false
    @Option(parsing: .unconditional, help: "Run seeds in this many processes at once.") var jobs: Int = 1
    @Option(help: ArgumentHelp("Run only shard I of N of the seeds (1-based), for CI fan-out.", valueName: "I/N")) var shard: String?
    @Flag(help: "Run each seed again in a separate process and compare every event.") var checkDeterminism = false
    @Flag(help: "End a run at its first violation (default: run the whole scenario, so the trace shows the aftermath and the metrics cover the run; the first violation is the verdict).")
    var stopOnViolation = false
    @Option(help: ArgumentHelp("Write a JUnit XML report here.", valueName: "PATH")) var junit: String?
    /// For the workers of --jobs: record seed i (of the whole seed list) and pair j under run id
    /// base + i × pairs + j, ids their parent set aside.
    @Option(parsing: .unconditional, help: .hidden) var runIDBase: UInt64?
    @Flag(help: "Print {\"seeds\",\"passed\",\"failed\",\"runs\":[…]} as JSON.") var json = false

    func validate() throws {
        if seed != nil && seeds != nil { throw ValidationError("use --seed S or --seeds N, not both") }
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if nodes < 1 || nodes > 256 { throw ValidationError("--nodes must be between 1 and 256") }
        if !(0...1).contains(failureRate) { throw ValidationError("--failure-rate must be between 0 and 1") }
        if !(duration > 0 && duration <= 86_400) { throw ValidationError("--duration must be more than 0 and at most 86400 virtual seconds") }
        if !(liveness >= 0 && liveness <= 86_400) { throw ValidationError("--liveness must be between 0 and 86400 virtual seconds") }
        if clients < 0 || clients > 1_000 { throw ValidationError("--clients must be between 0 and 1000") }
        if jobs < 1 || jobs > 64 { throw ValidationError("--jobs must be between 1 and 64") }
        if let nodeCmd {
            if nodeCmd.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--node-cmd needs a command, e.g. --node-cmd 'python3 node.py'") }
            guard let workload else {
                throw ValidationError("--node-cmd needs --workload (\(Workload.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard Workload(rawValue: workload) != nil else {
                throw ValidationError("unknown workload '\(workload)'; workloads are: \(Workload.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if bug != nil { throw ValidationError("--bug plants a bug in a built-in system; it does not apply to --node-cmd nodes") }
            let options = try parsedOptions()
            if let poll = options["poll_ms"], !ExternalSystem.pollMillisecondsRange.contains(poll) {
                throw ValidationError("--option poll_ms must be between 0 (no polling) and \(ExternalSystem.pollMillisecondsRange.upperBound) virtual milliseconds")
            }
            if let quiet = options["quiet_us"], !ExternalSystem.quietMicrosecondsRange.contains(quiet) {
                throw ValidationError("--option quiet_us must be between 0 and \(ExternalSystem.quietMicrosecondsRange.upperBound) microseconds")
            }
            if let settle = options["settle_s"], !ExternalSystem.settleSecondsRange.contains(settle) {
                throw ValidationError("--option settle_s must be between \(ExternalSystem.settleSecondsRange.lowerBound) and \(ExternalSystem.settleSecondsRange.upperBound) seconds")
            }
            if let level = options["isolation"] {
                guard TransactionChecker.Level(rawValue: level) != nil else {
                    throw ValidationError("--option isolation must be \(TransactionChecker.Level.names)")
                }
                guard [Workload.txnRWRegister, .txnListAppend].map(\.rawValue).contains(workload) else {
                    throw ValidationError("--option isolation sets what the txn-rw-register and txn-list-append workloads are judged against; it does not apply to \(workload)")
                }
            }
            if let keys = options["keys"], [Workload.txnRWRegister, .txnListAppend].map(\.rawValue).contains(workload),
               !(1...Int(TransactionShape.maxKeys)).contains(keys) {
                throw ValidationError("--option keys must be between 1 and \(TransactionShape.maxKeys) for \(workload)")
            }
            if let system, system != ExternalSystem.name { throw ValidationError("--node-cmd runs external nodes; it does not combine with --system \(system)") }
            if let suite, suite != .all, !ExternalSystem.suites.contains(Suite(rawValue: suite.rawValue)!) {
                throw ValidationError("external nodes run the \(ExternalSystem.suites.map(\.rawValue).joined(separator: ", ")) suites, not \(suite.rawValue)")
            }
        } else if workload != nil {
            throw ValidationError("--workload drives external nodes; give the command with --node-cmd")
        } else if system == ExternalSystem.name {
            throw ValidationError("the external system runs the program given with --node-cmd")
        }
        if let system, SystemRegistry.named(system) == nil {
            throw ValidationError("unknown system '\(system)'; systems are: \(SystemRegistry.all.map { $0.name }.joined(separator: ", "))")
        }
        if let bug {
            guard let owner = SystemRegistry.owning(bug: bug) else {
                let all = SystemRegistry.all.flatMap { $0.bugs }
                throw ValidationError("unknown bug '\(bug)'; planted bugs are: \(all.joined(separator: ", "))")
            }
            if let system, system != owner.name { throw ValidationError("bug '\(bug)' belongs to system '\(owner.name)', not '\(system)'") }
        }
        _ = try parsedShard()
        let options = try parsedOptions()
        let pairs = matrix()
        let known = Set(pairs.flatMap { $0.0.optionNames })
        for key in options.keys.sorted() where !known.contains(key) {
            let names = pairs.map { $0.0.name }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            throw ValidationError("unknown --option '\(key)' for \(names.joined(separator: ", ")); "
                                  + (known.isEmpty ? "it takes no options" : "options are: \(known.sorted().joined(separator: ", "))"))
        }
        if let blastRadius, blastRadius < 1 || blastRadius > nodes {
            throw ValidationError("--blast-radius must be between 1 and --nodes (\(nodes))")
        }
        if let byzantine {
            if byzantine < 0 { throw ValidationError("--byzantine must be 0 or more") }
            // Blast-radius control: never more Byzantine nodes than the system is built to tolerate.
            for (system, suite) in pairs where suite == .byzantine {
                let tolerance = system.byzantineTolerance(nodes: nodes)
                if byzantine > tolerance {
                    throw ValidationError("\(system.name) with \(nodes) nodes tolerates at most \(tolerance) Byzantine node\(tolerance == 1 ? "" : "s") (f); "
                                          + "--byzantine \(byzantine) would break it by design, not find a bug (more nodes raise f)")
                }
            }
        }
        if maxEvents < 1 { throw ValidationError("--max-events must be at least 1") }
        if !(maxSeconds >= 0 && maxSeconds <= 31_536_000) { throw ValidationError("--max-seconds must be between 0 (no limit) and 31536000") }
        if maxSeconds > 0 && checkDeterminism {
            throw ValidationError("--max-seconds stops a run by the wall clock, so a second process would stop elsewhere; it does not combine with --check-determinism")
        }
        if let junit { try checkWritable(junit, option: "--junit") }
    }

    func parsedShard() throws -> (index: Int, count: Int)? {
        guard let shard else { return nil }
        let parts = shard.split(separator: "/")
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (1...count).contains(index) else {
            throw ValidationError("--shard must look like I/N with 1 ≤ I ≤ N, e.g. 2/4")
        }
        return (index, count)
    }

    func parsedOptions() throws -> [String: Int] {
        var options: [String: Int] = [:]
        for item in option {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int(parts[1]) else { throw ValidationError("--option must look like KEY=INTEGER, got '\(item)'") }
            options[String(parts[0])] = value
        }
        return options
    }

    /// The seeds this process runs, after sharding.
    /// Every seed of the command, before sharding.
    func allSeeds() -> [UInt64] {
        if let seed { [seed] } else { (0..<UInt64(seeds ?? 1)).map { firstSeed &+ $0 } }
    }

    func seedList() throws -> [UInt64] {
        let all = allSeeds()
        guard let (index, count) = try parsedShard() else { return all }
        return all.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }

    /// (system, suite) pairs to run for each seed.
    func matrix() -> [(SystemDefinition.Type, Suite)] {
        let systems: [SystemDefinition.Type]
        if nodeCmd != nil {
            systems = [ExternalSystem.self]
        } else if let bug, let owner = SystemRegistry.owning(bug: bug) {
            systems = [owner]
        } else if let system, let named = SystemRegistry.named(system) {
            systems = [named]
        } else {
            systems = SystemRegistry.all
        }
        guard let suite else { return systems.map { ($0, $0.defaultSuite) } }
        let suites: [Suite] = suite == .all ? [.nodes, .network, .resources, .distributed, .byzantine] : [Suite(rawValue: suite.rawValue)!]
        var pairs: [(SystemDefinition.Type, Suite)] = []
        for suite in suites {
            for system in systems where system.suites.contains(suite) { pairs.append((system, suite)) }
        }
        return pairs
    }

    func makeConfiguration(system: SystemDefinition.Type, suite: Suite, seed: UInt64) throws -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        configuration.system = system.name
        configuration.bug = bug
        configuration.nodes = nodes
        configuration.seed = seed
        configuration.durationNanoseconds = UInt64(duration * 1e9)
        configuration.livenessNanoseconds = UInt64(liveness * 1e9)
        configuration.clients = clients
        if let interval = system.clientIntervalNanoseconds { configuration.clientIntervalNanoseconds = interval }
        configuration.maxEvents = maxEvents
        configuration.stopOnViolation = stopOnViolation
        configuration.options = try parsedOptions()
        if let nodeCmd, let workload { configuration.external = ExternalNodes(command: nodeCmd, workload: workload) }
        configuration.nemesis.suite = suite
        configuration.nemesis.failureRate = Ratio(probability: failureRate)
        configuration.nemesis.swarm = swarm
        configuration.nemesis.blastRadius = blastRadius ?? 0
        if suite == .byzantine {
            configuration.nemesis.byzantineNodes = byzantine ?? system.byzantineTolerance(nodes: nodes)
        }
        return configuration
    }

    func run() throws {
        try reportingErrors {
            let pairs = matrix()
            if pairs.isEmpty {
                let names = system ?? bug ?? "any system"
                throw CommandFailure(message: "no system runs the '\(suite?.rawValue ?? "")' suite (\(names)); pick another --suite", exitCode: Exit.usage)
            }
            if let nodeCmd, let workload {
                do {
                    let options = try parsedOptions()
                    try ExternalSystem.preflight(ExternalNodes(command: nodeCmd, workload: workload), nodes: nodes,
                                                 quietMicroseconds: options["quiet_us"] ?? 200, settleSeconds: ExternalSystem.settleSeconds(options))
                } catch {
                    throw CommandFailure(message: "--node-cmd: \(error)", exitCode: Exit.usage)
                }
            }
            let runner = SeedRunner(command: self, pairs: pairs)
            let outcomes = jobs > 1 && seed == nil ? try runner.runInProcesses() : try runner.runHere(seeds: seedList())
            try runner.report(outcomes)
            // A budget-stopped run alone is not judged (2); any other verdict but pass fails (1).
            if outcomes.contains(where: { $0.verdict != "pass" && $0.verdict != "stopped" }) { throw ExitCode(Exit.violation) }
            if outcomes.contains(where: { $0.verdict == "stopped" }) { throw ExitCode(Exit.unknown) }
        }
    }
}
