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
                struct Listing: Encodable { var store: String; var runs: [ListedRun] }
                print(JSON.encode(Listing(store: store.path, runs: runs.map(ListedRun.init))))
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
    /// One line per row: a cell's line breaks (a node's stderr in a summary) show as " ⏎ ".
    static func render(_ rows: [[String]]) -> String {
        let rows = rows.map { row in
            row.map { cell in
                cell.contains(where: \.isNewline)
                    ? cell.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ⏎ ")
                    : cell
            }
        }
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

/// A run as `ls --json` lists it: every key of a run's metadata is always there, `null` when a
/// run has no value for it (a passing run has no summary, an unfinished one no verdict), so that
/// scripts see one shape.
struct ListedRun: Encodable {
    var info: RunInfo

    enum Key: String, CodingKey {
        case id, seed, configuration, toolVersion, startedAt, status, verdict, summary, eventCount, chunkCount, lastEventTime
        case virtualEndTime, kindCounts, parentRun, writerPID, storedBytes, digest
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(info.id, forKey: .id)
        try container.encode(info.seed, forKey: .seed)
        try container.encode(info.configuration, forKey: .configuration)
        try container.encode(info.toolVersion, forKey: .toolVersion)
        try container.encode(info.startedAt, forKey: .startedAt)
        try container.encode(info.status, forKey: .status)
        try container.encode(info.verdict, forKey: .verdict)
        try container.encode(info.summary, forKey: .summary)
        try container.encode(info.eventCount, forKey: .eventCount)
        try container.encode(info.chunkCount, forKey: .chunkCount)
        try container.encode(info.lastEventTime, forKey: .lastEventTime)
        try container.encode(info.virtualEndTime, forKey: .virtualEndTime)
        try container.encode(info.kindCounts, forKey: .kindCounts)
        try container.encode(info.parentRun, forKey: .parentRun)
        try container.encode(info.writerPID, forKey: .writerPID)
        try container.encode(info.storedBytes, forKey: .storedBytes)
        try container.encode(info.digest, forKey: .digest)
    }
}
