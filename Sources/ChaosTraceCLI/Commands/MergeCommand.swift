import ArgumentParser
import Foundation
import TraceStore

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Copy every run of several trace stores into one (e.g. the stores of CI shards).",
        discussion: """
        Runs get new ids in OUT_STORE (created when missing; runs already there stay); a shrunk \
        run keeps its link to the run it came from when both are merged. Events, checkpoints, \
        verdicts and digests are copied as recorded. A run whose writer died (incomplete) is \
        skipped with a note, and so is a run OUT_STORE holds already (same start, seed, \
        configuration, events and digest): a merge cut short can be run again. Exits 0 when every run was copied, 64 on bad usage (a missing input, \
        OUT_STORE among the inputs), 65 when an input is damaged (a damaged run is left out of \
        OUT_STORE, and every other run is merged).
        """)

    @Argument(help: ArgumentHelp("The store to write into.", valueName: "OUT_STORE")) var output: String
    @Argument(help: ArgumentHelp("Stores to read runs from.", valueName: "IN_STORE")) var inputs: [String]
    @Flag(help: "Print {\"store\",\"runs\":[{\"from\",\"run\",\"new_run\"}],\"skipped\":[…]} as JSON.") var json = false

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one IN_STORE to merge into \(output)") }
        // The same file by any name: a relative path, a symbolic link.
        func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        let out = canonical(output)
        var seen: [String] = []
        for input in inputs {
            let path = canonical(input)
            if path == out { throw ValidationError("OUT_STORE \(output) is also an input (\(input)); merge into a new file") }
            if seen.contains(path) { throw ValidationError("\(input) is given twice; each store is merged once") }
            seen.append(path)
        }
    }

    struct Copied: Encodable {
        var from: String
        var run: UInt64
        var new_run: UInt64
    }

    struct Skipped: Encodable {
        var from: String
        var run: UInt64
        var reason: String
    }

    struct MergeShape: Encodable {
        var store: String
        var runs: [Copied]
        var skipped: [Skipped]
    }

    func run() throws {
        try reportingErrors {
            for input in inputs where !FileManager.default.fileExists(atPath: input) {
                throw CommandFailure(message: "no trace store at \(input); check the path (stores are single files, e.g. traces/runs.trace)",
                                     exitCode: Exit.usage)
            }
            // Every input opens (and lists its runs) before OUT_STORE is touched: a path that is
            // not a store leaves no new file behind.
            var sources: [(name: String, store: TraceStore, runs: [RunInfo])] = []
            for input in inputs {
                var options = TraceStore.Options()
                options.readOnly = true
                let source = try TraceStore(path: input, options: options)
                sources.append((input, source, try source.runs().sorted(by: { $0.id < $1.id })))
            }
            var outOptions = TraceStore.Options()
            outOptions.readOnly = false
            let out = try TraceStore(path: output, options: outOptions)
            var copied: [Copied] = []
            var skipped: [Skipped] = []
            // The complete runs OUT_STORE holds already, by what makes a recording itself: a merge
            // cut short (Ctrl-C) and run again, or a shard merged twice, adds no run twice.
            var present: [String: UInt64] = [:]
            // And the copies an interrupted merge left unfinished, which the new copy replaces.
            var unfinished: [String: [UInt64]] = [:]
            for info in try out.runs() {
                if info.status == .complete { present[Self.identity(info)] = info.id }
                if info.status == .incomplete { unfinished[Self.start(info), default: []].append(info.id) }
            }
            // A damaged run is left out and the merge goes on: the other shards' runs still count.
            var damaged: [String] = []
            for (input, source, runs) in sources {
                var newIDs: [UInt64: UInt64] = [:]
                for info in runs {
                    guard info.status == .complete else {
                        skipped.append(Skipped(from: input, run: info.id, reason: "\(info.status.rawValue) (its writer did not finish)"))
                        continue
                    }
                    if let existing = present[Self.identity(info)] {
                        newIDs[info.id] = existing
                        skipped.append(Skipped(from: input, run: info.id, reason: "already in \(output) as run \(existing)"))
                        continue
                    }
                    for partial in unfinished.removeValue(forKey: Self.start(info)) ?? [] { try out.deleteRun(partial) }
                    do {
                        let newID = try copy(info, from: source, named: input, into: out, parent: info.parentRun.flatMap { newIDs[$0] })
                        present[Self.identity(info)] = newID
                        newIDs[info.id] = newID
                        copied.append(Copied(from: input, run: info.id, new_run: newID))
                    } catch let failure as CommandFailure where failure.exitCode == Exit.badData {
                        damaged.append(failure.message)
                        skipped.append(Skipped(from: input, run: info.id, reason: "damaged"))
                    }
                }
            }
            try out.sync()
            defer {
                for message in damaged { printError(message) }
            }
            if !damaged.isEmpty {
                print(json ? JSON.encode(MergeShape(store: output, runs: copied, skipped: skipped))
                           : "merged \(copied.count) run\(copied.count == 1 ? "" : "s") into \(output); \(damaged.count) damaged run\(damaged.count == 1 ? " was" : "s were") left out")
                throw ExitCode(Exit.badData)
            }
            if json {
                print(JSON.encode(MergeShape(store: output, runs: copied, skipped: skipped)))
            } else {
                for item in copied { print("\(item.from) run \(item.run) → \(output) run \(item.new_run)") }
                for item in skipped { print("skipped \(item.from) run \(item.run): \(item.reason)") }
                print("merged \(copied.count) run\(copied.count == 1 ? "" : "s") from \(inputs.count) store\(inputs.count == 1 ? "" : "s") into \(output)")
            }
        }
    }

    /// A recording's identity across stores: when it started, its seed and configuration, and
    /// what it holds (its events' count and digest).
    static func identity(_ info: RunInfo) -> String {
        "\(info.startedAt)|\(info.seed)|\(info.eventCount)|\(info.digest ?? "")|\(info.configuration)"
    }

    /// What a copy left unfinished shares with its source run: its start, seed and configuration.
    static func start(_ info: RunInfo) -> String {
        "\(info.startedAt)|\(info.seed)|\(info.configuration)"
    }

    /// Copies one run event by event (the recorder re-chunks and re-indexes it) with its
    /// checkpoints and verdict; a damaged source run is removed from `out` again.
    private func copy(_ info: RunInfo, from source: TraceStore, named input: String, into out: TraceStore, parent: UInt64?) throws -> UInt64 {
        let recorder = try out.beginRun(seed: info.seed, configuration: info.configuration, toolVersion: info.toolVersion, parentRun: parent,
                                        startedAt: info.startedAt)
        var finishing = false
        do {
            let reader = try source.reader(run: info.id)
            var count: UInt64 = 0
            try reader.forEach { _, event in
                try recorder.append(kind: event.kind, time: event.time, node: event.node, peer: event.peer, id: event.id, payload: event.payload)
                count += 1
                return true
            }
            guard count == info.eventCount else {
                throw CommandFailure(message: "\(input): run \(info.id) has \(count) readable events of \(info.eventCount); run chaostrace verify --store \(input)",
                                     exitCode: Exit.badData)
            }
            for number in try source.checkpointNumbers(run: info.id) {
                if let (at, state) = try source.checkpoint(run: info.id, atOrBefore: number) {
                    try recorder.putCheckpoint(atEvent: at, state: state)
                }
            }
            finishing = true
            _ = try recorder.finish(verdict: info.verdict ?? "unknown", summary: info.summary,
                                    virtualEndTime: info.virtualEndTime ?? info.lastEventTime, digest: info.digest)
            return recorder.runID
        } catch {
            if !finishing { _ = try? recorder.finish(verdict: "unknown", virtualEndTime: info.lastEventTime) }
            try? out.deleteRun(recorder.runID)
            if error is CommandFailure { throw error }
            throw CommandFailure(message: "\(input): run \(info.id) could not be read (\(error)); it is left out of \(output). "
                                 + "Run chaostrace verify --store \(input)", exitCode: Exit.badData)
        }
    }
}
