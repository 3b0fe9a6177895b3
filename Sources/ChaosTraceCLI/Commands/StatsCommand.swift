import ArgumentParser
import Foundation
import Histogram
import Simulation
import Systems
import TraceStore

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Resilience metrics of a run, in virtual time: MTTR, MTBF, availability, consistency, latency under faults.",
        discussion: """
        MTTR is the mean time from a fault's start to the first successful client operation after it \
        healed; MTBF is the safety phase divided by the faults injected; availability is the share of \
        client operations that succeeded and the share of 100 ms windows with at least one success. \
        Latency percentiles under faults are compared with a fault-free run of the same seed \
        (re-simulated in this process, not recorded).
        """)

    @Argument(help: ArgumentHelp("A run id, 'latest' or 'latest-failure'.", valueName: "run")) var runSpec: String
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Skip the fault-free baseline run.") var noBaseline = false
    @Flag(help: "Print the metrics as JSON.") var json = false

    struct Metrics: Encodable {
        var run: UInt64
        var verdict: String?
        var summary: String?
        var faults: Int
        var mttr_ms: Double?
        var mtbf_ms: Double?
        var operations: Int
        var operations_ok: Int
        var operations_failed: Int
        var operations_unknown: Int
        var availability: Double?
        var service_windows: Double?
        var latency_ms: Latency?
        var baseline_latency_ms: Latency?

        enum CodingKeys: String, CodingKey {
            case run, verdict, summary, faults, mttr_ms, mtbf_ms, operations, operations_ok, operations_failed, operations_unknown
            case availability, service_windows, latency_ms, baseline_latency_ms
        }

        /// Every key always there (`null` when there is no value), so that scripts see one shape.
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(run, forKey: .run)
            try container.encode(verdict, forKey: .verdict)
            try container.encode(summary, forKey: .summary)
            try container.encode(faults, forKey: .faults)
            try container.encode(mttr_ms, forKey: .mttr_ms)
            try container.encode(mtbf_ms, forKey: .mtbf_ms)
            try container.encode(operations, forKey: .operations)
            try container.encode(operations_ok, forKey: .operations_ok)
            try container.encode(operations_failed, forKey: .operations_failed)
            try container.encode(operations_unknown, forKey: .operations_unknown)
            try container.encode(availability, forKey: .availability)
            try container.encode(service_windows, forKey: .service_windows)
            try container.encode(latency_ms, forKey: .latency_ms)
            try container.encode(baseline_latency_ms, forKey: .baseline_latency_ms)
        }
    }

    struct Latency: Encodable {
        var p50: Double
        var p99: Double
        var p999: Double
        var max: Double
        var count: Int
    }

    static func latency(_ samples: [UInt64]) -> Latency? {
        guard !samples.isEmpty else { return nil }
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        for sample in samples { _ = histogram.record(max(1, min(sample / 1_000, 3_600_000_000))) }
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1_000 }
        return Latency(p50: ms(50), p99: ms(99), p999: ms(99.9), max: Double(histogram.max) / 1_000, count: samples.count)
    }

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let info = try store.resolveRun(runSpec)
            let reader = try store.reader(run: info.id)
            var configuration: SimulationConfiguration?
            var faultStarts: [(start: UInt64, key: String)] = []
            // Per fault key, the times it ended (a node crashes and restarts many times).
            var faultEnds: [String: [UInt64]] = [:]
            var invoked: [UInt64: UInt64] = [:]
            var latencies: [UInt64] = []
            var okTimes: [UInt64] = []
            var outcomes = [0, 0, 0]
            var firstInvoke: UInt64?
            var lastInvoke: UInt64 = 0
            try reader.forEach { _, event in
                let text = String(decoding: event.payload, as: UTF8.self)
                switch event.kind {
                case .runStart:
                    configuration = try? JSONDecoder().decode(SimulationConfiguration.self, from: Data(event.payload))
                case .crash: faultStarts.append((event.time, "node-\(event.node)"))
                case .pause: faultStarts.append((event.time, "pause-\(event.node)"))
                case .restart: faultEnds["node-\(event.node)", default: []].append(event.time)
                case .resume: faultEnds["pause-\(event.node)", default: []].append(event.time)
                case .partition, .networkFault:
                    faultStarts.append((event.time, "fault-\(event.id)"))
                case .heal:
                    faultEnds["fault-\(event.id)", default: []].append(event.time)
                case .clockFault, .diskFault, .resourcePressure, .byzantine:
                    guard event.peer == 0, event.id > 0 else { break }  // nemesis faults, not individual disk errors
                    if text.hasSuffix("healed") {
                        faultEnds["fault-\(event.id)", default: []].append(event.time)
                    } else if !faultStarts.contains(where: { $0.key == "fault-\(event.id)" }) {
                        faultStarts.append((event.time, "fault-\(event.id)"))
                    }
                case .clientInvoke:
                    invoked[event.id] = event.time
                    firstInvoke = firstInvoke ?? event.time
                    lastInvoke = event.time
                case .clientComplete:
                    let outcome = Int(event.peer)
                    if (1...3).contains(outcome) { outcomes[outcome - 1] += 1 }
                    if outcome == 1, let start = invoked[event.id] {
                        latencies.append(event.time - start)
                        okTimes.append(event.time)
                    }
                default: break
                }
                return true
            }
            // MTTR: fault start → first success after it healed (its own end: the first end of
            // the same fault after its start; none: it never healed, and counts from its start).
            var repairs: [Double] = []
            for fault in faultStarts {
                let healed = faultEnds[fault.key]?.first(where: { $0 >= fault.start }) ?? fault.start
                if let recovered = okTimes.first(where: { $0 >= healed }) { repairs.append(Double(recovered - fault.start) / 1e6) }
            }
            let total = outcomes.reduce(0, +)
            var windows: Double?
            // From the first request to the last (or the last success, when later): a stretch at
            // the end where requests go unanswered counts as unserved.
            if let first = firstInvoke, let last = [okTimes.last ?? 0, lastInvoke].max(), last > first {
                let width: UInt64 = 100_000_000
                let count = Int((last - first) / width) + 1
                var served = [Bool](repeating: false, count: count)
                for time in okTimes where time >= first { served[min(count - 1, Int((time - first) / width))] = true }
                windows = Double(served.filter { $0 }.count) / Double(count)
            }
            let safety = configuration.map { Double($0.durationNanoseconds) / 1e6 }
            var metrics = Metrics(run: info.id, verdict: info.verdict, summary: info.summary, faults: faultStarts.count,
                                  mttr_ms: repairs.isEmpty ? nil : repairs.reduce(0, +) / Double(repairs.count),
                                  mtbf_ms: faultStarts.isEmpty ? nil : safety.map { $0 / Double(faultStarts.count) },
                                  operations: total, operations_ok: outcomes[0], operations_failed: outcomes[1], operations_unknown: outcomes[2],
                                  availability: total == 0 ? nil : Double(outcomes[0]) / Double(total), service_windows: windows,
                                  latency_ms: Self.latency(latencies), baseline_latency_ms: nil)
            if !noBaseline, var baseline = configuration, let system = SystemRegistry.named(baseline.system) {
                baseline.nemesis.suite = .none
                baseline.nemesis.swarm = false
                let simulator = Simulator(configuration: baseline, system: system.init(configuration: baseline), recorder: nil)
                _ = simulator.run()
                let samples = simulator.history.compactMap { entry -> UInt64? in
                    guard entry.reply?.outcome == .ok, let done = entry.completedAt else { return nil }
                    return done - entry.invokedAt
                }
                metrics.baseline_latency_ms = Self.latency(samples)
            }
            if json {
                print(JSON.encode(metrics))
                return
            }
            func ms(_ value: Double?) -> String { value.map { String(format: "%.1f ms", $0) } ?? "-" }
            func percent(_ value: Double?) -> String { value.map { String(format: "%.1f %%", $0 * 100) } ?? "-" }
            print("run \(info.id): \(info.verdict ?? info.status.rawValue)\(info.summary.map { " — \($0)" } ?? "")")
            print("faults \(metrics.faults)   MTTR \(ms(metrics.mttr_ms))   MTBF \(ms(metrics.mtbf_ms))")
            print("operations \(total): \(outcomes[0]) ok, \(outcomes[1]) failed, \(outcomes[2]) unknown   availability \(percent(metrics.availability))   served windows \(percent(windows))")
            var rows = [["LATENCY", "p50", "p99", "p99.9", "max", "ops"]]
            for (name, latency) in [("under faults", metrics.latency_ms), ("fault-free", metrics.baseline_latency_ms)] {
                guard let latency else { continue }
                rows.append([name, ms(latency.p50), ms(latency.p99), ms(latency.p999), ms(latency.max), String(latency.count)])
            }
            if rows.count > 1 { print(Table.render(rows)) }
        }
    }
}
