import Foundation
import TraceStore
import XCTest

final class StoreCommandTests: XCTestCase {
    func testLsShowAndVerifyOnARecordedStore() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", store, "--events", "5000", "--seed", "3"]).status, 0)

        let ls = try CLI.run(["ls", "--store", store, "--json"])
        XCTAssertEqual(ls.status, 0, ls.stderr)
        let listing = try jsonObject(ls.stdout)
        let runs = try XCTUnwrap(listing["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs.first?["eventCount"] as? Int, 5000)
        XCTAssertEqual(runs.first?["status"] as? String, "complete")

        let show = try CLI.run(["show", "latest", "--store", store, "--from", "10", "--to", "19"])
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertEqual(show.stdout.split(separator: "\n").count, 10)
        XCTAssertTrue(show.stdout.hasPrefix("#10"))

        let sends = try CLI.run(["show", "1", "--store", store, "--kind", "send", "--to", "999", "--format", "json"])
        XCTAssertEqual(sends.status, 0, sends.stderr)
        let lines = sends.stdout.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        for line in lines { XCTAssertEqual(try jsonObject(String(line))["kind"] as? String, "send") }

        let mermaid = try CLI.run(["show", "1", "--store", store, "--to", "200", "--format", "mermaid"])
        XCTAssertTrue(mermaid.stdout.hasPrefix("sequenceDiagram"))
        XCTAssertTrue(mermaid.stdout.contains("->>"))

        let verify = try CLI.run(["verify", "--store", store])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
    }

    func testMermaidNotesSayWhatEachOperationAskedAndHowItEnded() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--system", "raft", "--suite", "none", "--seed", "1", "--store", store,
                                    "--duration", "1", "--liveness", "0"]).status, 0)
        let mermaid = try CLI.run(["show", "1", "--store", store, "--kind", "client-invoke,client-complete", "--format", "mermaid"])
        XCTAssertEqual(mermaid.status, 0, mermaid.stderr)
        let notes = mermaid.stdout.split(separator: "\n").map(String.init).filter { $0.contains("Note") }
        let invokes = notes.filter { $0.contains(" invokes ") }
        XCTAssertFalse(invokes.isEmpty, mermaid.stdout)
        XCTAssertTrue(invokes.allSatisfy { $0.range(of: #"invokes (read|write|cas) k\d+"#, options: .regularExpression) != nil }, mermaid.stdout)
        // Each completion sits on the node its invocation went to and repeats what it asked.
        let completion = try NSRegularExpression(pattern: #"Note over (n\d+): client (\d+) (.+) returns (ok|fail|info)"#)
        var completions = 0
        for line in notes {
            guard let match = completion.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { continue }
            let group = { (index: Int) in String(line[Range(match.range(at: index), in: line)!]) }
            completions += 1
            XCTAssertTrue(invokes.contains { $0.hasSuffix("Note left of \(group(1)): client \(group(2)) invokes \(group(3))") }, line)
        }
        XCTAssertGreaterThan(completions, 0, mermaid.stdout)
    }

    func testVerifyExits65OnADamagedStoreNamingRunAndChunk() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", path, "--events", "20000", "--chunk-size", "4096"]).status, 0)
        let chunk: [UInt8]
        do {
            let store = try TraceStore(path: path)
            chunk = try XCTUnwrap(store.rawChunk(run: 1, chunk: 3))
        }
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        // A chunk small enough to share a page with others may also lie in stale copies of that
        // page (LMDB copies pages on write): damage every copy.
        var searchFrom = file.startIndex
        var copies = 0
        while let range = file.range(of: Data(chunk), in: searchFrom..<file.endIndex) {
            file[range.lowerBound + chunk.count / 2] ^= 0xFF
            searchFrom = range.upperBound
            copies += 1
        }
        XCTAssertGreaterThan(copies, 0)
        try file.write(to: URL(fileURLWithPath: path))

        let verify = try CLI.run(["verify", "--store", path])
        XCTAssertEqual(verify.status, 65)
        XCTAssertTrue(verify.stdout.contains("run 1, chunk 3"), verify.stdout)
        let json = try CLI.run(["verify", "--store", path, "--json"])
        XCTAssertEqual(json.status, 65)
        XCTAssertEqual(try jsonObject(json.stdout)["ok"] as? Bool, false)
        let show = try CLI.run(["show", "1", "--store", path])
        XCTAssertEqual(show.status, 65)
        XCTAssertTrue(show.stderr.contains("chunk 3"), show.stderr)
        XCTAssertTrue(show.stdout.contains("#0 "), "events before the damage are still shown")
    }

    func testBadInputGetsDocumentedExitCodes() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = try CLI.run(["ls", "--store", directory.appendingPathComponent("none.trace").path])
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.contains("none.trace"), missing.stderr)

        let garbage = directory.appendingPathComponent("garbage.trace")
        try Data(repeating: 0x7A, count: 50_000).write(to: garbage)
        let notAStore = try CLI.run(["verify", "--store", garbage.path])
        XCTAssertEqual(notAStore.status, 65)
        XCTAssertTrue(notAStore.stderr.contains("garbage.trace"), notAStore.stderr)

        // A pipe as the store: refused at once, not waited on forever.
        let fifo = directory.appendingPathComponent("pipe.trace").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let pipe = try CLI.run(["ls", "--store", fifo])
        XCTAssertEqual(pipe.status, 65)
        XCTAssertTrue(pipe.stderr.contains("not a regular file"), pipe.stderr)

        XCTAssertEqual(try CLI.run(["show"]).status, 64)
        XCTAssertEqual(try CLI.run(["ls", "--no-such-flag"]).status, 64)
        XCTAssertEqual(try CLI.run(["show", "1", "--store", garbage.path, "--kind", "nonsense"]).status, 64)

        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", store, "--events", "100"]).status, 0)
        let unknownRun = try CLI.run(["show", "42", "--store", store])
        XCTAssertEqual(unknownRun.status, 64)
        XCTAssertTrue(unknownRun.stderr.contains("chaostrace ls"), unknownRun.stderr)
    }

    /// A store cut short (a partial copy or download), an empty file and a store with a damaged
    /// B-tree page each end with a message naming the file and exit code 65: never a crash.
    func testTruncatedEmptyAndDamagedStoresAreRefusedNotCrashedOn() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace")
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", store.path, "--events", "200000"]).status, 0)
        let whole = try Data(contentsOf: store)
        XCTAssertGreaterThan(whole.count, 40_000)

        for length in [12_288, whole.count / 2] {
            let cut = directory.appendingPathComponent("cut-\(length).trace")
            try whole.prefix(length).write(to: cut)
            // What a command needs may lie before the cut (`ls` reads only the run list): it then
            // succeeds. Otherwise, and always for `verify`, which reads every chunk: 65, naming the file.
            for command in [["ls"], ["verify"], ["show", "1"], ["replay", "latest"]] {
                let result = try CLI.run(command + ["--store", cut.path])
                if result.status == 0 && command != ["verify"] { continue }
                XCTAssertEqual(result.status, 65, "\(command) on \(length) bytes: \(result.stderr)")
                XCTAssertTrue(result.stderr.contains(cut.lastPathComponent)
                              && (result.stderr.contains("truncated") || result.stderr.contains("damaged")), result.stderr)
            }
            XCTAssertEqual(try CLI.run(["ls", "--store", cut.path]).status == 65, length == 12_288,
                           "a store cut inside its first pages is refused at once")
        }

        let empty = directory.appendingPathComponent("empty.trace")
        try Data().write(to: empty)
        let emptyResult = try CLI.run(["ls", "--store", empty.path])
        XCTAssertEqual(emptyResult.status, 65, emptyResult.stderr)
        XCTAssertTrue(emptyResult.stderr.contains("empty"), emptyResult.stderr)

        // Garbage over the start of every page in turn: whatever LMDB makes of it, the command
        // ends with 0 (the page was free or unused) or 65, and the store's file is unchanged.
        let pageSize = 4096
        for page in 2..<min(24, whole.count / pageSize) {
            var damaged = whole
            for offset in 0..<40 { damaged[page * pageSize + 20 + offset] = UInt8(truncatingIfNeeded: offset * 37 + page * 11 + 5) }
            let path = directory.appendingPathComponent("page-\(page).trace")
            try damaged.write(to: path)
            let result = try CLI.run(["verify", "--store", path.path])
            XCTAssertTrue([0, 65].contains(result.status), "page \(page): status \(result.status): \(result.stderr)")
            if result.status == 65 { XCTAssertTrue(result.stderr.contains(path.lastPathComponent), result.stderr) }
            XCTAssertEqual(try Data(contentsOf: path), damaged, "page \(page): a read changed the file")
        }
    }

    func testBenchJSONHasTheStoreFigures() throws {
        let bench = try CLI.run(["bench", "--json", "--events", "20000", "--seeks", "50", "--sim-seconds", "0.3", "--sim-pairs", "1"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let figures = try jsonObject(bench.stdout)
        for key in ["store_write_events_per_s", "trace_bytes_per_event", "jsonl_zstd_bytes_per_event", "decode_events_per_s", "seek_ms_p99",
                    "sim_events_per_s_recording", "sim_events_per_s_no_recording", "recording_overhead", "lin_check_seconds", "replay_speed_ratio"] {
            let value = try XCTUnwrap(figures[key] as? Double, "missing \(key)")
            XCTAssertGreaterThan(value, 0, key)
        }
        XCTAssertLessThan(figures["trace_bytes_per_event"] as! Double, figures["jsonl_zstd_bytes_per_event"] as! Double)
    }

    func testAKilledRecorderLeavesAnIncompleteRunReadableToItsLastChunk() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        // An earlier run that finished.
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", store, "--events", "3000", "--seed", "1"]).status, 0)

        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["record-synthetic", "--store", store, "--events", "100000000", "--seed", "2",
                             "--chunk-size", "2048", "--pause-microseconds", "20000"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until a few chunks are committed, then kill it without warning.
        var seen = ""
        while seen.components(separatedBy: "committed chunk").count <= 4 {
            let data = out.fileHandleForReading.availableData
            XCTAssertFalse(data.isEmpty, "recorder exited early")
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)

        let reopened = try TraceStore(path: store)
        let runs = try reopened.runs()
        XCTAssertEqual(runs.count, 2)
        XCTAssertEqual(runs[0].status, .complete)
        XCTAssertEqual(runs[1].status, .incomplete)
        XCTAssertGreaterThanOrEqual(runs[1].chunkCount, 4)
        let events = try reopened.reader(run: runs[1].id).allEvents()
        XCTAssertEqual(UInt64(events.count), runs[1].eventCount)
        // The same stream, regenerated, matches what was committed.
        var stream = SyntheticTrace(seed: 2)
        XCTAssertEqual(events, (0..<events.count).map { _ in stream.next()! })
        let report = try reopened.verify()
        XCTAssertTrue(report.ok, "\(report.problems)")
        XCTAssertEqual(report.incompleteRuns, [runs[1].id])

        let ls = try CLI.run(["ls", "--store", store])
        XCTAssertTrue(ls.stdout.contains("incomplete"), ls.stdout)
        XCTAssertEqual(try CLI.run(["verify", "--store", store]).status, 0)
    }
}
