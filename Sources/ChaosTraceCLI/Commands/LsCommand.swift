import ArgumentParser
import Foundation
import TraceStore

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the runs in a trace store.")

    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print {\"store\":PATH,\"runs\":[…]} as JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let store = try storeOptions.open(readOnly: true)
            let runs = try store.runs()
            if json {
                struct Listing: Encodable { var store: String; var runs: [RunInfo] }
                print(JSON.encode(Listing(store: store.path, runs: runs)))
                return
            }
            if runs.isEmpty {
                print("no runs in \(store.path)")
                return
            }
            let dateFormatter = ISO8601DateFormatter()
            let header = ["RUN", "SEED", "STATUS", "VERDICT", "EVENTS", "VIRTUAL TIME", "STARTED", "SUMMARY"]
            var rows: [[String]] = [header]
            for run in runs {
                rows.append([
                    String(run.id), String(run.seed), run.status.rawValue, run.verdict ?? "-", String(run.eventCount),
                    EventFormatting.time(run.virtualEndTime ?? run.lastEventTime),
                    dateFormatter.string(from: Date(timeIntervalSince1970: run.startedAt)),
                    (run.parentRun.map { "(shrunk from run \($0)) " } ?? "") + (run.summary ?? ""),
                ])
            }
            print(Table.render(rows))
        }
    }
}

enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
