import ArgumentParser
import Foundation
import Simulation
import TraceStore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a run: jsonl, perfetto (Chrome trace-event JSON), edn (the client history), shiviz, mermaid, html.",
        discussion: """
        perfetto: nodes as tracks, deliveries as flow arrows from send to receive, faults as slices.
        edn: the client history in Jepsen's notation, which 'chaostrace check --model kv' reads.
        shiviz: one log line per event with a vector clock, for ShiViz.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case jsonl, perfetto, edn, shiviz, mermaid, html }

    @Argument(help: ArgumentHelp("A run id, 'latest' or 'latest-failure'.", valueName: "run")) var runSpec: String
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "jsonl, perfetto, edn, shiviz, mermaid or html.") var format: Format
    @Option(help: ArgumentHelp("Write here instead of standard output ('-': standard output).", valueName: "PATH")) var output: String?

    func validate() throws {
        if let output { try checkWritable(output, option: "--output") }
    }

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let info = try store.resolveRun(runSpec)
            let reader = try store.reader(run: info.id)
            // The export holds what was recorded; say when that is not a whole run.
            if info.status != .complete {
                let how = info.status == .running ? "is still being recorded" : "is incomplete (its writer stopped)"
                FileHandle.standardError.write(Data("chaostrace: note: run \(info.id) \(how): the export ends after event \(info.eventCount == 0 ? 0 : info.eventCount - 1), without the run's end\n".utf8))
            }
            let sink = Output(path: output)
            switch format {
            case .jsonl:
                try reader.forEach { number, event in
                    sink.line(EventFormatting.json(NumberedEvent(number: number, event: event.materialize())))
                    return true
                }
            case .mermaid:
                let labels = try EventFormatting.messageLabels(reader, configuration: info.configuration)
                sink.line(EventFormatting.mermaid(try reader.events(0..<info.eventCount), labels: labels))
            case .html:
                let labels = try EventFormatting.messageLabels(reader, configuration: info.configuration)
                let diagram = EventFormatting.mermaid(try reader.events(0..<info.eventCount), labels: labels)
                sink.line("""
                <!doctype html><html><head><meta charset="utf-8"><title>ChaosTrace run \(info.id)</title></head>
                <body><h1>Run \(info.id) — seed \(info.seed) — \(info.verdict ?? info.status.rawValue)</h1>
                <p>\(JUnit.escape(info.summary ?? ""))</p>
                <pre class="mermaid">
                \(JUnit.escape(diagram))
                </pre>
                <script type="module">import mermaid from "https://cdn.jsdelivr.net/npm/mermaid@10/dist/mermaid.esm.min.mjs"; mermaid.initialize({startOnLoad: true});</script>
                </body></html>
                """)
            case .edn:
                try Exports.edn(reader, into: sink)
            case .perfetto:
                try Exports.perfetto(reader, info: info, into: sink)
            case .shiviz:
                try Exports.shiviz(reader, into: sink)
            }
            if !sink.finish() {
                throw CommandFailure(message: "cannot write \(output ?? "standard output"): \(sink.failure ?? "write failed")"
                                     + (output.map { " (\($0) was left as it was)" } ?? ""), exitCode: Exit.usage)
            }
        }
    }
}

enum Exports {
    /// The client history as Jepsen EDN: an invocation and a completion per operation, values as
    /// [key value] pairs (reads of a missing key as :absent).
    static func edn(_ reader: RunReader, into sink: Output) throws {
        var invocations: [UInt64: (client: UInt32, operation: ClientOperation)] = [:]
        func function(_ operation: ClientOperation) -> String {
            switch operation.function {
            case .read: "read"
            case .write: "write"
            case .cas: "cas"
            case .add: "add"
            case .echo: "echo"
            case .generate: "generate"
            case .commit: "commit"
            case .list: "list"
            case .txn: "txn"
            }
        }
        /// A transaction's steps as Elle reads them: [[:r 1 nil] [:w 2 9]], with the values read
        /// when `results` are known.
        func transaction(_ operation: ClientOperation, request: UInt64, results: [[Int64]?]?) -> String {
            guard let shape = TransactionShape(packed: operation.key) else { return "[]" }
            let steps = shape.steps.enumerated().map { index, step -> String in
                if step.write { return "[:\(shape.writeName) \(step.key) \(TransactionShape.writtenValue(requestID: request, index: index))]" }
                // Unknown (an invocation): nil. Known: a register's value or nil, a list.
                guard let results, index < results.count else { return "[:r \(step.key) nil]" }
                return "[:r \(step.key) \(TransactionShape.describe(result: results[index], appends: shape.appends))]"
            }
            return "[" + steps.joined(separator: " ") + "]"
        }
        func value(_ operation: ClientOperation) -> String {
            switch operation.function {
            case .read: "[\(operation.key) nil]"
            case .cas: "[\(operation.key) [\(operation.expected) \(operation.value)]]"
            default: "[\(operation.key) \(operation.value)]"
            }
        }
        try reader.forEach { _, event in
            switch event.kind {
            case .clientInvoke:
                guard let operation = ClientOperation.decode(Array(event.payload)) else { return true }
                invocations[event.id] = (event.node, operation)
                let shown = operation.function == .txn ? transaction(operation, request: event.id, results: nil) : value(operation)
                sink.line("{:process \(event.node), :type :invoke, :f :\(function(operation)), :value \(shown), :time \(event.time)}")
            case .clientComplete:
                guard let (client, operation) = invocations.removeValue(forKey: event.id) else { return true }
                let type = [1: ":ok", 2: ":fail", 3: ":info"][event.peer] ?? ":info"
                var shown = operation.function == .txn
                    ? transaction(operation, request: event.id, results: event.peer == 1 ? Reply.decodeResults(Array(event.payload))?.results : nil)
                    : value(operation)
                // A completed read, echo or generate shows what came back (a write, cas or add
                // shows what it was asked to do, as in Jepsen).
                if [.read, .echo, .generate].contains(operation.function) && event.peer == 1 {
                    var reader = ByteReader(Array(event.payload))
                    let isNil = reader.byte() == 1
                    let result = reader.signed() ?? 0
                    shown = "[\(operation.key) \(isNil ? ":absent" : String(result))]"
                }
                sink.line("{:process \(client), :type \(type), :f :\(function(operation)), :value \(shown), :time \(event.time)}")
            default:
                break
            }
            return true
        }
    }

    /// Chrome trace-event JSON (Perfetto reads it): a track (thread) per node, an instant per
    /// event, a flow arrow per delivered message, a slice per fault from start to heal.
    static func perfetto(_ reader: RunReader, info: RunInfo, into sink: Output) throws {
        var nodes: [UInt32] = []
        var first = true
        func emit(_ object: String) {
            sink.write(first ? "\n  " : ",\n  ")
            first = false
            sink.write(object)
        }
        sink.write("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[")
        var sends: [UInt64: (node: UInt32, time: UInt64)] = [:]
        var openFaults: [String: (node: UInt32, time: UInt64, name: String)] = [:]
        var requestTargets: [UInt64: UInt32] = [:]
        func micros(_ time: UInt64) -> String { String(format: "%.3f", Double(time) / 1_000) }
        func track(_ node: UInt32) -> UInt32 {
            if !nodes.contains(node) { nodes.append(node) }
            return node
        }
        try reader.forEach { number, event in
            switch event.kind {
            case .send:
                sends[event.id] = (event.node, event.time)
                emit("{\"name\":\"send \(event.id)\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":\(track(event.node)),\"ts\":\(micros(event.time)),\"args\":{\"to\":\(event.peer),\"event\":\(number)}}")
                emit("{\"name\":\"msg\",\"cat\":\"message\",\"ph\":\"s\",\"id\":\(event.id),\"pid\":1,\"tid\":\(event.node),\"ts\":\(micros(event.time))}")
            case .deliver:
                emit("{\"name\":\"deliver \(event.id)\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":\(track(event.node)),\"ts\":\(micros(event.time)),\"args\":{\"from\":\(event.peer),\"event\":\(number)}}")
                if sends[event.id] != nil {
                    emit("{\"name\":\"msg\",\"cat\":\"message\",\"ph\":\"f\",\"bp\":\"e\",\"id\":\(event.id),\"pid\":1,\"tid\":\(event.node),\"ts\":\(micros(event.time))}")
                }
            case .crash, .pause, .partition, .networkFault:
                let key = event.kind == .crash || event.kind == .pause ? "\(event.kind.name)-\(event.node)" : "fault-\(event.id)"
                openFaults[key] = (track(event.node), event.time, event.kind == .crash || event.kind == .pause ? event.kind.name : String(decoding: event.payload, as: UTF8.self))
            case .restart, .resume, .heal:
                let key: String
                switch event.kind {
                case .restart: key = "crash-\(event.node)"
                case .resume: key = "pause-\(event.node)"
                default: key = "fault-\(event.id)"
                }
                if let open = openFaults.removeValue(forKey: key) {
                    emit("{\"name\":\(JSON.string(open.name)),\"cat\":\"fault\",\"ph\":\"X\",\"pid\":1,\"tid\":\(open.node),\"ts\":\(micros(open.time)),\"dur\":\(micros(event.time - open.time))}")
                }
            case .violation:
                emit("{\"name\":\"violation\",\"ph\":\"i\",\"s\":\"g\",\"pid\":1,\"tid\":0,\"ts\":\(micros(event.time)),\"args\":{\"detail\":\(JSON.string(String(decoding: event.payload, as: UTF8.self)))}}")
            case .clientInvoke, .clientComplete:
                // On the track of the node the request went to (a completion's own fields name the
                // client and the outcome).
                if event.kind == .clientInvoke { requestTargets[event.id] = event.peer }
                let target = requestTargets[event.id] ?? 0
                if event.kind == .clientComplete { requestTargets[event.id] = nil }
                emit("{\"name\":\"\(event.kind.name) \(event.id)\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":\(track(target)),\"ts\":\(micros(event.time)),\"args\":{\"client\":\(event.node)}}")
            default:
                break
            }
            return true
        }
        for node in nodes.sorted() {
            emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":\(node),\"args\":{\"name\":\"n\(node)\"}}")
        }
        emit("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"run \(info.id) seed \(info.seed)\"}}")
        sink.write("\n]}\n")
    }

    /// ShiViz: a regular expression header, then one line per send/deliver with the node's vector clock.
    static func shiviz(_ reader: RunReader, into sink: Output) throws {
        sink.line("(?<host>\\S+) (?<clock>\\{.*\\})\\n(?<event>.*)")
        sink.line("")
        var clocks: [UInt32: [UInt32: UInt64]] = [:]
        var messageClocks: [UInt64: [UInt32: UInt64]] = [:]
        func render(_ clock: [UInt32: UInt64]) -> String {
            "{" + clock.keys.sorted().map { "\"n\($0)\":\(clock[$0]!)" }.joined(separator: ", ") + "}"
        }
        try reader.forEach { number, event in
            switch event.kind {
            case .send:
                var clock = clocks[event.node] ?? [:]
                clock[event.node, default: 0] += 1
                clocks[event.node] = clock
                messageClocks[event.id] = clock
                sink.line("n\(event.node) \(render(clock))")
                sink.line("send msg \(event.id) to n\(event.peer) (#\(number))")
            case .deliver:
                var clock = clocks[event.node] ?? [:]
                for (node, time) in messageClocks[event.id] ?? [:] { clock[node] = max(clock[node] ?? 0, time) }
                clock[event.node, default: 0] += 1
                clocks[event.node] = clock
                sink.line("n\(event.node) \(render(clock))")
                sink.line("deliver msg \(event.id) from n\(event.peer) (#\(number))")
            case .crash, .restart, .partition, .heal:
                var clock = clocks[event.node] ?? [:]
                clock[event.node, default: 0] += 1
                clocks[event.node] = clock
                sink.line("n\(event.node) \(render(clock))")
                sink.line("\(event.kind.name) (#\(number))")
            default:
                break
            }
            return true
        }
    }
}
