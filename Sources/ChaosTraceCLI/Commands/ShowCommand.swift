import ArgumentParser
import TraceStore

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show the events of a run, filtered by node, kind and event range.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, mermaid }

    @Argument(help: "A run id, 'latest' or 'latest-failure'.") var runSpec: String
    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .customLong("node"), help: ArgumentHelp("Only events of this node (as actor or peer): 1 or n1.", valueName: "NODE")) var nodeName: NodeName?
    var node: UInt32? { nodeName?.id }

    /// A node as the output names it ("n1") or by its number ("1").
    struct NodeName: ExpressibleByArgument {
        var id: UInt32
        init?(argument: String) {
            let digits = argument.hasPrefix("n") ? String(argument.dropFirst()) : argument
            guard let id = UInt32(digits) else { return nil }
            self.id = id
        }
    }
    @Option(help: ArgumentHelp("Only these kinds, comma-separated (send,deliver,crash,…).", valueName: "K,...")) var kind: String?
    @Option(parsing: .unconditional, help: "First event number to show.") var from: UInt64 = 0
    @Option(parsing: .unconditional, help: "Last event number to show (inclusive).") var to: UInt64?
    @Option(help: "text, json (JSON lines) or mermaid.") var format: Format = .text

    func validate() throws {
        if let to, to < from { throw ValidationError("--to \(to) is before --from \(from)") }
        if let kind, try kinds()?.isEmpty ?? false { throw ValidationError("--kind '\(kind)' names no kind; kinds are: \(EventKind.allCases.map(\.name).joined(separator: ", "))") }
    }

    func kinds() throws -> Set<EventKind>? {
        guard let kind else { return nil }
        var kinds = Set<EventKind>()
        for name in kind.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let parsed = EventKind(name: name) else {
                throw ValidationError("unknown event kind '\(name)'; kinds are: \(EventKind.allCases.map(\.name).joined(separator: ", "))")
            }
            kinds.insert(parsed)
        }
        return kinds
    }

    func run() throws {
        let kinds = try kinds()
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let info = try store.resolveRun(runSpec)
            let reader = try store.reader(run: info.id)
            let output = Output()
            var selected: [NumberedEvent] = []
            // Client request → the node it went to, for its completion (whose own fields name the
            // client and the outcome).
            var requestTarget: [UInt64: UInt32] = [:]
            /// Whether an event is about `node`: the peer field holds a node only for messages and
            /// client requests (elsewhere it is a timer tag, an outcome, a decision stream …).
            func concerns(_ raw: RawEvent, _ node: UInt32) -> Bool {
                switch raw.kind {
                case .send, .deliver, .drop, .duplicate: raw.node == node || raw.peer == node
                case .clientInvoke: raw.peer == node
                case .clientComplete: requestTarget[raw.id] == node
                case .decision, .runStart, .runEnd: false
                default: raw.node == node
                }
            }
            try reader.forEach(from: node == nil ? from : 0) { number, raw in
                if let to, number > to { return false }
                if raw.kind == .clientInvoke { requestTarget[raw.id] = raw.peer }
                if number < from { return true }
                if let kinds, !kinds.contains(raw.kind) { return true }
                if let node, !concerns(raw, node) { return true }
                let numbered = NumberedEvent(number: number, event: raw.materialize())
                switch format {
                case .text: output.line(EventFormatting.text(numbered))
                case .json: output.line(EventFormatting.json(numbered))
                case .mermaid: selected.append(numbered)
                }
                return true
            }
            if format == .mermaid {
                let labels = try EventFormatting.messageLabels(reader, configuration: info.configuration)
                output.line(EventFormatting.mermaid(selected, labels: labels))
            }
            if format == .text && info.status == .incomplete {
                output.line("(run \(info.id) is incomplete: its writer stopped after event \(info.eventCount == 0 ? 0 : info.eventCount - 1))")
            }
            output.flush()
        }
    }
}
