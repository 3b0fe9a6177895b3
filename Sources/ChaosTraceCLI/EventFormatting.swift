import Foundation
import Simulation
import Systems
import TraceStore

/// Renders events for people (text), programs (JSON) and diagrams (Mermaid).
enum EventFormatting {
    static func hex(_ bytes: [UInt8], limit: Int = 32) -> String {
        let shown = bytes.prefix(limit).map { String(format: "%02x", $0) }.joined()
        return bytes.count > limit ? shown + "…(\(bytes.count) bytes)" : shown
    }

    static func textPayload(_ event: Event) -> String? {
        switch event.kind {
        case .runStart, .runEnd, .drop, .log, .violation, .byzantine, .clockFault, .diskFault, .partition, .heal,
             .networkFault, .resourcePressure:
            guard !event.payload.isEmpty, let text = String(validating: event.payload, as: UTF8.self) else { return nil }
            return text
        case .send:
            // Messages of external nodes are JSON lines: show them as text.
            guard let message = Message.decode(event.payload), message.body.first == UInt8(ascii: "{"),
                  let text = String(validating: message.body, as: UTF8.self) else { return nil }
            return text
        default:
            return nil
        }
    }

    /// Virtual nanoseconds as milliseconds with microsecond precision.
    static func time(_ nanoseconds: UInt64) -> String {
        let micros = nanoseconds / 1_000
        return String(format: "%llu.%03llums", micros / 1_000, micros % 1_000)
    }

    static func text(_ numbered: NumberedEvent) -> String {
        let event = numbered.event
        var line = "#\(numbered.number)".padding(toLength: 9, withPad: " ", startingAt: 0)
        line += " " + time(event.time).padding(toLength: 14, withPad: " ", startingAt: 0)
        line += " " + event.kind.name.padding(toLength: 17, withPad: " ", startingAt: 0)
        switch event.kind {
        case .send, .drop, .duplicate:
            line += " n\(event.node) → n\(event.peer) msg \(event.id)"
        case .deliver:
            line += " n\(event.peer) → n\(event.node) msg \(event.id)"
        case .timerSet, .timerFire:
            line += " n\(event.node) timer \(event.id) tag \(event.peer)"
        case .clientInvoke:
            line += " client \(event.node) op \(event.id) → n\(event.peer)"
            // What it asks, in words, instead of its bytes.
            if let text = operationText(event.payload, request: event.id) { return line + "  " + text }
        case .clientComplete:
            return line + " client \(event.node) op \(event.id) \(replyText(event))"
        case .decision:
            line += " stream \(event.node) type \(event.peer) value \(event.id)"
        case .stateDigest:
            line += " n\(event.node) digest \(String(event.id, radix: 16))"
        default:
            line += " n\(event.node)" + (event.peer != 0 ? " peer \(event.peer)" : "") + (event.id != 0 ? " id \(event.id)" : "")
        }
        if let text = textPayload(event) {
            // A shrunk run's configuration lists thousands of interventions: one line shows its start.
            if event.kind == .runStart && text.count > 400 {
                line += "  \(text.prefix(400))… (\(event.payload.count) bytes; '--format json' shows it whole)"
            } else {
                line += "  \(text)"
            }
        } else if !event.payload.isEmpty {
            line += "  [\(hex(event.payload))]"
        }
        return line
    }

    static func json(_ numbered: NumberedEvent) -> String {
        let event = numbered.event
        var line = "{\"n\":\(numbered.number),\"t\":\(event.time),\"kind\":\"\(event.kind.name)\",\"node\":\(event.node),\"peer\":\(event.peer),\"id\":\(event.id)"
        line += ",\"payload\":\"\(hex(event.payload, limit: Int.max))\""
        if let text = textPayload(event) { line += ",\"text\":\(JSON.string(text))" }
        return line + "}"
    }

    /// A reader's name for a message: the system's name for its type and its key (`RequestVote
    /// term 2`), an external node's Maelstrom body type, else its type and key.
    static func messageLabel(_ message: Message, system: SystemDefinition.Type?) -> String {
        if let name = system?.messageName(message.type) { return "\(name) \(message.key)" }
        if message.body.first == UInt8(ascii: "{"),
           let object = try? JSONSerialization.jsonObject(with: Data(message.body)) as? [String: Any],
           let body = object["body"] as? [String: Any], let type = body["type"] as? String {
            return type
        }
        return "type \(message.type) key \(message.key)"
    }

    /// Labels of every message a run sent, by message id (for diagrams of part of a run).
    static func messageLabels(_ reader: RunReader, configuration json: String) throws -> [UInt64: String] {
        let configuration = try? JSONDecoder().decode(SimulationConfiguration.self, from: Data(json.utf8))
        let system = configuration.flatMap { SystemRegistry.named($0.system) }
        var labels: [UInt64: String] = [:]
        try reader.forEach { _, raw in
            if raw.kind == .send, let message = Message.decode(Array(raw.payload)) {
                labels[raw.id] = messageLabel(message, system: system)
            }
            return true
        }
        return labels
    }

    /// What a client operation asks, from its invocation's payload: "read k1", "write k1 := 2",
    /// "txn [r k1, w k2 9]" (`request`: the request id, which a transaction's written values derive from).
    static func operationText(_ payload: [UInt8], request: UInt64) -> String? {
        guard let operation = ClientOperation.decode(payload) else { return nil }
        let key = "k\(operation.key)"
        switch operation.function {
        case .read: return "read \(key)"
        case .write: return "write \(key) := \(operation.value)"
        case .cas: return "cas \(key) \(operation.expected) → \(operation.value)"
        case .add: return "add \(operation.value) to \(key)"
        case .txn:
            guard let shape = TransactionShape(packed: operation.key) else { return "txn" }
            return "txn [\(shape.steps.indices.map { shape.describe(step: $0, requestID: request) }.joined(separator: ", "))]"
        default: return "\(operation.function) \(key)"
        }
    }

    /// How an operation ended, from its completion event: "ok 2", "ok absent", "fail", "info".
    static func replyText(_ event: Event) -> String {
        switch event.peer {
        case Outcome.ok.rawValue:
            var reader = ByteReader(event.payload)
            guard let isNil = reader.byte(), let value = reader.varint() else { return "ok" }
            // A transaction: what each step returned.
            if let (results, lists) = Reply.decodeResults(event.payload), !results.isEmpty {
                // A register's value or nil, a list in brackets (a write: its value).
                return "ok [" + results.map { TransactionShape.describe(result: $0, appends: lists) }.joined(separator: ", ") + "]"
            }
            return isNil == 1 ? "ok absent" : "ok \(ByteWriter.unzigzag(value))"
        case Outcome.fail.rawValue: return "fail"
        case Outcome.info.rawValue: return "info (unknown)"
        default: return "outcome \(event.peer)"
        }
    }

    /// Mermaid notes for client operations: the invocation by the node it went to, with what it
    /// asks, and the completion by the same node, with what it asked and how it ended.
    struct ClientNotes {
        private var requests: [UInt64: (target: UInt32, text: String)] = [:]

        mutating func invoke(_ event: Event) -> String {
            let text = EventFormatting.operationText(event.payload, request: event.id) ?? "op \(event.id)"
            requests[event.id] = (event.peer, text)
            return "    Note left of n\(event.peer): client \(event.node) invokes \(text)"
        }

        func complete(_ event: Event, fallback: UInt32) -> String {
            let request = requests[event.id]
            return "    Note over n\(request?.target ?? fallback): client \(event.node) \(request?.text ?? "op \(event.id)") returns "
                + EventFormatting.replyText(event)
        }
    }

    /// A Mermaid `sequenceDiagram`: nodes as participants, delivered messages as arrows, dropped
    /// ones as crossed arrows, faults and client operations as notes.
    static func mermaid(_ events: [NumberedEvent], labels: [UInt64: String] = [:], limit: Int = 400) -> String {
        var participants: [UInt32] = []
        func participant(_ node: UInt32) {
            if !participants.contains(node) { participants.append(node) }
        }
        var lines: [String] = []
        var clients = ClientNotes()
        for numbered in events {
            guard lines.count < limit else {
                lines.append("    Note over n\(participants.first ?? 0): … \(events.count) events in all; narrow with --from/--to")
                break
            }
            let event = numbered.event
            switch event.kind {
            case .deliver, .duplicate:
                participant(event.peer); participant(event.node)
                lines.append("    n\(event.peer)->>n\(event.node): \(labels[event.id] ?? "msg \(event.id)") (event \(numbered.number))")
            case .drop:
                participant(event.node); participant(event.peer)
                lines.append("    n\(event.node)-xn\(event.peer): \(labels[event.id] ?? "msg \(event.id)") dropped")
            case .crash, .restart, .pause, .resume, .clockFault, .diskFault, .resourcePressure, .byzantine, .partition, .heal, .networkFault:
                participant(event.node)
                let detail = textPayload(event).map { " " + $0 } ?? ""
                lines.append("    Note over n\(event.node): \(event.kind.name)\(detail) @\(time(event.time))")
            case .clientInvoke:
                participant(event.peer)
                lines.append(clients.invoke(event))
            case .clientComplete:
                // Its invocation may lie before the range shown: then it goes by the first node.
                let fallback = participants.first ?? 0
                participant(fallback)
                lines.append(clients.complete(event, fallback: fallback))
            case .violation:
                participant(event.node)
                lines.append("    Note over n\(event.node): VIOLATION \(textPayload(event) ?? "")")
            default:
                continue
            }
        }
        let header = ["sequenceDiagram"] + participants.map { "    participant n\($0)" }
        // Mermaid reads '#' (an entity code, or a comment) and ';' (a statement's end) as markup.
        return (header + lines).joined(separator: "\n")
            .replacingOccurrences(of: ";", with: ",").replacingOccurrences(of: "#", with: "")
    }
}
