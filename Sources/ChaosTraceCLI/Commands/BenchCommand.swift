import ArgumentParser
import Foundation
import Checkers
import Replay
import Simulation
import Systems
import TraceStore

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the trace store and simulator against the performance targets.",
        discussion: """
        Every figure is measured in this one run, on a temporary store that is deleted afterwards. \
        Build with -c release for meaningful numbers.
        """)

    @Option(parsing: .unconditional, help: "Events in the synthetic run.") var events: Int = 2_000_000
    @Option(parsing: .unconditional, help: "Random seeks to time.") var seeks: Int = 2_000
    @Option(parsing: .unconditional, help: "Raw chunk size in bytes.") var chunkSize: Int = TraceStore.Options().chunkSize
    @Option(help: "zstd level of the trace chunks.") var level: Int32 = TraceStore.Options().compressionLevel
    @Option(parsing: .unconditional, help: "Virtual seconds of each simulator run.") var simSeconds: Double = 2
    @Option(parsing: .unconditional, help: "Recording-on/off pairs of simulator runs (each the best of three of both); the figures are their medians.") var simPairs: Int = 9
    @Flag(help: "Print the figures as one JSON object.") var json = false

    func validate() throws {
        if events < 1_000 { throw ValidationError("--events must be at least 1000") }
        if seeks < 1 { throw ValidationError("--seeks must be at least 1") }
        if !(simSeconds > 0 && simSeconds <= 3_600) { throw ValidationError("--sim-seconds must be between 0 and 3600") }
        if simPairs < 1 || simPairs > 50 { throw ValidationError("--sim-pairs must be between 1 and 50") }
    }

    func run() throws {
        try reportingErrors {
            var figures = BenchFigures()
            try StoreBench(events: events, seeks: seeks, chunkSize: chunkSize, level: level).measure(into: &figures)
            try SimulatorBench(virtualSeconds: simSeconds, pairs: simPairs).measure(into: &figures)
            try LinearizabilityBench().measure(into: &figures)
            if json {
                print(figures.json())
            } else {
                print(figures.table())
            }
        }
    }
}

/// Named figures in the order they were measured, with the target each is judged by.
struct BenchFigures {
    struct Figure { var key: String; var value: Double; var unit: String; var target: String }
    private(set) var figures: [Figure] = []

    mutating func add(_ key: String, _ value: Double, unit: String, target: String = "") {
        figures.append(Figure(key: key, value: value, unit: unit, target: target))
    }

    func json() -> String {
        "{" + figures.map { "\"\($0.key)\":\(Self.number($0.value))" }.joined(separator: ",") + "}"
    }

    static func number(_ value: Double) -> String {
        if value.isNaN || value.isInfinite { return "null" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.6g", value)
    }

    func table() -> String {
        Table.render([["FIGURE", "VALUE", "UNIT", "TARGET"]] + figures.map {
            [$0.key, Self.human($0.value), $0.unit, $0.target]
        })
    }

    static func human(_ value: Double) -> String {
        if value >= 1_000_000 { return String(format: "%.2f M", value / 1_000_000) }
        if value >= 10_000 { return String(format: "%.1f k", value / 1_000) }
        return String(format: "%.4g", value)
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

/// Write, size, decode and seek figures of the trace store on a synthetic stream.
struct StoreBench {
    var events: Int
    var seeks: Int
    var chunkSize: Int
    var level: Int32

    func measure(into figures: inout BenchFigures) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bench.trace").path

        var stream = SyntheticTrace(seed: 42)
        var generated: [Event] = []
        generated.reserveCapacity(events)
        for _ in 0..<events { generated.append(stream.next()!) }

        var options = TraceStore.Options()
        options.chunkSize = chunkSize
        options.compressionLevel = level
        let store = try TraceStore(path: path, options: options)
        let clock = ContinuousClock()
        let recorder = try store.beginRun(seed: 42, configuration: "{\"bench\":true}", toolVersion: ChaosTrace.version)
        let writeTime = try clock.measure {
            for event in generated { try recorder.append(event) }
            try recorder.finish(verdict: "pass", virtualEndTime: generated.last!.time)
        }
        let info = try store.run(recorder.runID)
        figures.add("store_write_events_per_s", Double(events) / seconds(writeTime), unit: "events/s")
        let traceBytesPerEvent = Double(info.storedBytes) / Double(events)
        figures.add("trace_bytes_per_event", traceBytesPerEvent, unit: "bytes", target: "≤ 4")
        figures.add("store_file_bytes_per_event", Double(try store.usedBytes()) / Double(events), unit: "bytes")

        // The baseline a user would otherwise pick: the same events as JSON lines, zstd level 3.
        var jsonl: [UInt8] = []
        jsonl.reserveCapacity(events * 96)
        for (number, event) in generated.enumerated() { JSONLines.append(event, number: number, to: &jsonl) }
        let compressed = try ZstdCompressor(level: 3).compress(jsonl)
        let jsonlBytesPerEvent = Double(compressed.count) / Double(events)
        figures.add("jsonl_bytes_per_event", Double(jsonl.count) / Double(events), unit: "bytes")
        figures.add("jsonl_zstd_bytes_per_event", jsonlBytesPerEvent, unit: "bytes")
        figures.add("jsonl_zstd_size_ratio", jsonlBytesPerEvent / traceBytesPerEvent, unit: "×", target: "≥ 5")

        // Streaming decode of the stored run.
        let reader = try store.reader(run: info.id)
        // The fastest of five passes: noise on a shared machine only ever adds time.
        var checksum: UInt64 = 0
        var bestDecode = Double.infinity
        for _ in 0..<5 {
            var decoded = 0
            let decodeTime = try clock.measure {
                try reader.forEach { _, event in
                    checksum &+= event.time &+ event.id &+ UInt64(event.node) &+ UInt64(event.payload.count)
                    decoded += 1
                    return true
                }
            }
            precondition(decoded == events, "decoded \(decoded) of \(events) events")
            bestDecode = min(bestDecode, seconds(decodeTime))
        }
        figures.add("decode_events_per_s", Double(events) / bestDecode, unit: "events/s", target: "≥ 20 M")

        // Random seeks by event number, each touching one chunk.
        var state: UInt64 = 7
        var latencies: [Double] = []
        latencies.reserveCapacity(seeks)
        for _ in 0..<seeks {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let target = (state >> 11) % UInt64(events)
            var found: Event?
            let elapsed = try clock.measure { found = try reader.event(at: target) }
            precondition(found == generated[Int(target)], "seek to \(target) returned the wrong event")
            latencies.append(seconds(elapsed) * 1_000)
        }
        latencies.sort()
        figures.add("seek_ms_p50", latencies[latencies.count / 2], unit: "ms")
        figures.add("seek_ms_p99", latencies[min(latencies.count - 1, latencies.count * 99 / 100)], unit: "ms", target: "≤ 2")
        figures.add("bench_events", Double(events), unit: "events")
        if checksum == 0 { print("") }  // keeps the decode loop's work observable
    }
}

/// The JSON-lines form of events used as the size baseline.
enum JSONLines {
    static let hexDigits = Array("0123456789abcdef".utf8)

    static func append(_ event: Event, number: Int, to bytes: inout [UInt8]) {
        func put(_ text: String) { bytes.append(contentsOf: text.utf8) }
        put("{\"n\":\(number),\"t\":\(event.time),\"kind\":\"\(event.kind.name)\",\"node\":\(event.node),\"peer\":\(event.peer),\"id\":\(event.id),\"payload\":\"")
        for byte in event.payload {
            bytes.append(hexDigits[Int(byte >> 4)])
            bytes.append(hexDigits[Int(byte & 15)])
        }
        put("\"}\n")
    }
}

/// Simulator speed with trivial nodes (echo, heavy gossip), recording on and off, same seed and
/// workload, measured pair by pair in one process.
struct SimulatorBench {
    var virtualSeconds: Double
    var pairs: Int

    func configuration() -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        configuration.system = EchoSystem.name
        configuration.seed = 7
        configuration.nodes = 5
        configuration.durationNanoseconds = UInt64(virtualSeconds * 1e9)
        configuration.livenessNanoseconds = 100_000_000
        configuration.clients = 3
        // 320 gossip chains that never end and no new ones: a steady load.
        configuration.options = ["fanout": 64, "hops": 0, "heartbeat_ms": 1_000_000]
        configuration.nemesis.suite = .none
        return configuration
    }

    func measure(into figures: inout BenchFigures) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-simbench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try TraceStore(path: directory.appendingPathComponent("sim.trace").path)
        let configuration = configuration()
        let clock = ContinuousClock()
        var recordingRates: [Double] = []
        var plainRates: [Double] = []
        var ratios: [Double] = []
        var events: UInt64 = 0
        var storedBytes: UInt64 = 0
        var digests: Set<UInt64> = []
        for _ in 0..<pairs {
            // Each pair runs both modes three times, interleaved, and keeps the fastest of each:
            // noise on a shared machine only ever adds time.
            var bestRecording = Double.infinity
            var bestPlain = Double.infinity
            for _ in 0..<3 {
                let recorder = try store.beginRun(seed: configuration.seed, configuration: "{\"bench\":\"sim\"}", toolVersion: ChaosTrace.version)
                var recorded: SimulationResult!
                let withRecording = seconds(clock.measure {
                    recorded = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: recorder).run()
                })
                var plain: SimulationResult!
                let withoutRecording = seconds(clock.measure {
                    plain = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: nil).run()
                })
                precondition(recorded.digest == plain.digest, "recording changed the simulation")
                digests.insert(plain.digest)
                events = recorded.events
                storedBytes = try store.run(recorder.runID).storedBytes
                bestRecording = min(bestRecording, withRecording)
                bestPlain = min(bestPlain, withoutRecording)
                try store.deleteRun(recorder.runID)
            }
            recordingRates.append(Double(events) / bestRecording)
            plainRates.append(Double(events) / bestPlain)
            ratios.append(bestRecording / bestPlain)
        }
        precondition(digests.count == 1, "the same seed gave different runs")
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        figures.add("sim_events_per_s_recording", median(recordingRates), unit: "events/s", target: "≥ 5 M")
        figures.add("sim_events_per_s_no_recording", median(plainRates), unit: "events/s")
        figures.add("recording_overhead", median(ratios), unit: "×", target: "≤ 1.15")
        figures.add("sim_trace_bytes_per_event", Double(storedBytes) / Double(events), unit: "bytes", target: "≤ 4")

        // The simulator's own trace against the same events as JSON lines + zstd.
        let keptRecorder = try store.beginRun(seed: configuration.seed, configuration: "{\"bench\":\"size\"}", toolVersion: ChaosTrace.version)
        _ = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration), recorder: keptRecorder).run()
        let kept = try store.run(keptRecorder.runID)
        var jsonl: [UInt8] = []
        try store.reader(run: kept.id).forEach { number, event in
            JSONLines.append(event.materialize(), number: Int(number), to: &jsonl)
            return true
        }
        let jsonlCompressed = try ZstdCompressor(level: 3).compress(jsonl)
        figures.add("sim_jsonl_zstd_size_ratio", Double(jsonlCompressed.count) / Double(kept.storedBytes), unit: "×", target: "≥ 5")
        try store.deleteRun(kept.id)

        // Replay from decisions against the original run, same run, best of three each.
        let recorder = try store.beginRun(seed: configuration.seed, configuration: "{\"bench\":\"replay\"}", toolVersion: ChaosTrace.version)
        var bestOriginal = Double.infinity
        var bestReplay = Double.infinity
        var replayed: UInt64 = 0
        var original: UInt64 = 0
        var recorderUsed = false
        for _ in 0..<3 {
            let elapsed = seconds(clock.measure {
                let result = Simulator(configuration: configuration, system: EchoSystem(configuration: configuration),
                                       recorder: recorderUsed ? nil : recorder).run()
                original = result.events
            })
            recorderUsed = true
            bestOriginal = min(bestOriginal, elapsed)
        }
        let replayer = try Replayer(store: store, run: recorder.runID)
        for _ in 0..<3 {
            var report: ReplayReport?
            let elapsed = try seconds(clock.measure {
                report = try replayer.replay(makeSystem: { EchoSystem(configuration: $0) })
            })
            precondition(report?.identical == true, "the benchmark run did not replay identically")
            replayed = report?.events ?? 0
            bestReplay = min(bestReplay, elapsed)
        }
        figures.add("replay_speed_ratio", (Double(replayed) / bestReplay) / (Double(original) / bestOriginal), unit: "×", target: "≥ 0.9")
        figures.add("sim_events_per_run", Double(events), unit: "events")
    }
}

/// Time to a verdict on a 10-client, 10-key, 2,000-operation key-value history with one stale read.
struct LinearizabilityBench {
    func measure(into figures: inout BenchFigures) throws {
        let operations = HistoryGenerator(clients: 10, keys: 10, operations: 2_000, seed: 42).generate(violation: true)
        var verdict: LinearizabilityVerdict = .linearizable
        let elapsed = ContinuousClock().measure { verdict = HistoryModel.kv.check(operations) }
        guard case .notLinearizable = verdict else {
            throw CommandFailure(message: "internal error: the planted violation was not found", exitCode: Exit.internalError)
        }
        figures.add("lin_check_seconds", seconds(elapsed), unit: "s", target: "≤ 1")
    }
}
