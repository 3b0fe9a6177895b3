import ArgumentParser
import Foundation
import TraceStore

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show the first point where two runs differ.",
        discussion: """
            Runs whose configurations differ (another seed, other flags, or a shrunk run against its \
            original) get the fields that differ listed first; the events after the configuration are \
            then compared on their own. Exits 0 when the runs hold the same events, 1 when they differ.
            """)

    @Argument(help: ArgumentHelp("The first run.", valueName: "run-a")) var runA: String
    @Argument(help: ArgumentHelp("The second run.", valueName: "run-b")) var runB: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let a = try store.resolveRun(runA)
            let b = try store.resolveRun(runB)
            let left = RunCursor(reader: try store.reader(run: a.id))
            let right = RunCursor(reader: try store.reader(run: b.id))
            var number: UInt64 = 0
            var context: [NumberedEvent] = []
            var configurationsDiffer = false
            while true {
                let x = try left.next()
                let y = try right.next()
                if x == nil && y == nil {
                    if configurationsDiffer {
                        print("the events after the configurations are the same: \(number) events in all")
                        throw ExitCode(Exit.violation)
                    }
                    print("runs \(a.id) and \(b.id) are identical: \(number) events")
                    return
                }
                // Two configurations: list the fields that differ (a shrunk run's interventions
                // alone are thousands of entries) and go on comparing what happened.
                if number == 0, let x, let y, x.kind == .runStart, y.kind == .runStart, x != y,
                   let differences = Self.configurationDifferences(x.payload, y.payload) {
                    configurationsDiffer = true
                    print("runs \(a.id) and \(b.id) have different configurations:")
                    for line in differences { print("  \(line)") }
                    number += 1
                    continue
                }
                if x != y {
                    print("runs \(a.id) and \(b.id) first differ at event #\(number)")
                    for event in context { print("  both: \(EventFormatting.text(event))") }
                    print("  run \(a.id): \(x.map { EventFormatting.text(NumberedEvent(number: number, event: $0)) } ?? "(ended)")")
                    print("  run \(b.id): \(y.map { EventFormatting.text(NumberedEvent(number: number, event: $0)) } ?? "(ended)")")
                    throw ExitCode(Exit.violation)
                }
                context.append(NumberedEvent(number: number, event: x!))
                if context.count > 3 { context.removeFirst() }
                number += 1
            }
        }
    }

    /// The fields in which two recorded configurations (JSON objects) differ, one line each, in
    /// key order; nil when either is not a JSON object.
    static func configurationDifferences(_ a: [UInt8], _ b: [UInt8]) -> [String]? {
        guard let left = try? JSONSerialization.jsonObject(with: Data(a)) as? [String: Any],
              let right = try? JSONSerialization.jsonObject(with: Data(b)) as? [String: Any] else { return nil }
        var lines: [String] = []
        func compare(_ left: [String: Any], _ right: [String: Any], prefix: String) {
            for key in Set(left.keys).union(right.keys).sorted() {
                let x = left[key], y = right[key]
                if let x = x as? [String: Any], let y = y as? [String: Any], key != "interventions" {
                    compare(x, y, prefix: prefix + key + ".")
                } else if !same(x, y) {
                    lines.append("\(prefix)\(key): \(summary(x, key: key)) → \(summary(y, key: key))")
                }
            }
        }
        compare(left, right, prefix: "")
        return lines.isEmpty ? ["(the same fields, written differently)"] : lines
    }

    private static func same(_ x: Any?, _ y: Any?) -> Bool {
        switch (x, y) {
        case (nil, nil): return true
        case (nil, _), (_, nil): return false
        case let (x?, y?): return canonical(x) == canonical(y)
        }
    }

    private static func canonical(_ value: Any) -> Data? {
        try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
    }

    /// A value short enough for one line: interventions as counts of what they leave out.
    private static func summary(_ value: Any?, key: String) -> String {
        guard let value, !(value is NSNull) else { return "none" }
        if key == "interventions", let fields = value as? [String: Any] {
            let parts = fields.keys.sorted().compactMap { name -> String? in
                switch fields[name] {
                case let list as [Any]: return list.isEmpty ? nil : "\(name) \(list.count)"
                case let number as NSNumber: return number.intValue == 0 ? nil : "\(name) \(number)"
                default: return nil
                }
            }
            return parts.isEmpty ? "none" : "{" + parts.joined(separator: ", ") + "}"
        }
        if let list = value as? [Any], list.count > 8 { return "[\(list.count) items]" }
        guard let data = canonical(value), let text = String(data: data, encoding: .utf8) else { return "\(value)" }
        return text.count > 100 ? String(text.prefix(100)) + "…" : text
    }
}
