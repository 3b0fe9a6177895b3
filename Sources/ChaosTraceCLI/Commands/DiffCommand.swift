import ArgumentParser
import TraceStore

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show the first point where two runs differ.",
        discussion: "Exits 0 when the runs hold the same events, 1 when they differ.")

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
            while true {
                let x = try left.next()
                let y = try right.next()
                if x == nil && y == nil {
                    print("runs \(a.id) and \(b.id) are identical: \(number) events")
                    return
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
}
