import Foundation
import XCTest

final class ReplayCommandTests: XCTestCase {
    func testReplayIsIdenticalAndReproducesTheViolation() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--store", store,
                                    "--duration", "1", "--liveness", "0.5"]).status, 1)
        let replay = try CLI.run(["replay", "latest-failure", "--store", store, "--json"])
        XCTAssertEqual(replay.status, 0, replay.stderr)
        let report = try jsonObject(replay.stdout)
        XCTAssertEqual(report["identical"] as? Bool, true)
        XCTAssertEqual(report["violation_reproduced"] as? Bool, true)
        XCTAssertTrue(report["first_divergence"] is NSNull)
        XCTAssertGreaterThan(report["events"] as? Int ?? 0, 100)

        let fixed = try CLI.run(["replay", "1", "--store", store, "--tolerant", "--no-bug"])
        XCTAssertEqual(fixed.status, 0, fixed.stdout + fixed.stderr)
        XCTAssertTrue(fixed.stdout.contains("the recorded violation is gone"), fixed.stdout)
        let still = try CLI.run(["replay", "1", "--store", store, "--tolerant"])
        XCTAssertEqual(still.status, 1)
        XCTAssertEqual(try CLI.run(["replay", "1", "--store", store, "--no-bug"]).status, 64, "changing the code needs --tolerant")
    }

    func testReplayInAnotherProcessExitsThreeAtTheFirstDivergentEvent() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        // Iterating a Set inside a node: its order changes between processes.
        XCTAssertEqual(try CLI.run(["run", "--bug", "echo.set-order", "--suite", "none", "--seed", "1", "--store", store,
                                    "--duration", "1", "--liveness", "0.5"]).status, 0)
        let replay = try CLI.run(["replay", "1", "--store", store])
        XCTAssertEqual(replay.status, 3, replay.stdout + replay.stderr)
        XCTAssertTrue(replay.stdout.contains("DIVERGED at event #"), replay.stdout)
        XCTAssertTrue(replay.stdout.contains("recorded: #"), replay.stdout)
        XCTAssertTrue(replay.stdout.contains("replayed: #"), replay.stdout)
    }

    func testExportedHistoryGetsTheRunsVerdictAndPerfettoHasATrackPerNode() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--bug", "raft.stale-read", "--suite", "network", "--seed", "4", "--store", store]).status, 1)
        XCTAssertEqual(try CLI.run(["run", "--system", "raft", "--suite", "network", "--seed", "5", "--store", store]).status, 0)
        for (run, verdict) in [("1", Int32(1)), ("2", Int32(0))] {
            let edn = directory.appendingPathComponent("history-\(run).edn").path
            XCTAssertEqual(try CLI.run(["export", run, "--store", store, "--format", "edn", "--output", edn]).status, 0)
            XCTAssertEqual(try CLI.run(["check", "--model", "kv", edn]).status, verdict, "run \(run)")
        }
        let perfetto = directory.appendingPathComponent("trace.json").path
        XCTAssertEqual(try CLI.run(["export", "2", "--store", store, "--format", "perfetto", "--output", perfetto]).status, 0)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: perfetto))) as? [String: Any]
        let events = try XCTUnwrap(object?["traceEvents"] as? [[String: Any]])
        let tracks = events.filter { $0["name"] as? String == "thread_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        XCTAssertEqual(Set(tracks), ["n0", "n1", "n2", "n3", "n4"])
        XCTAssertTrue(events.contains { $0["ph"] as? String == "s" } && events.contains { $0["ph"] as? String == "f" }, "message flows")
        for format in ["jsonl", "shiviz", "mermaid", "html"] {
            let exported = try CLI.run(["export", "2", "--store", store, "--format", format])
            XCTAssertEqual(exported.status, 0, format)
            XCTAssertFalse(exported.stdout.isEmpty, format)
        }
        XCTAssertEqual(try CLI.run(["diff", "2", "2", "--store", store]).status, 0)
        let diff = try CLI.run(["diff", "1", "2", "--store", store])
        XCTAssertEqual(diff.status, 1)
        XCTAssertTrue(diff.stdout.contains("first differ at event #"), diff.stdout)
        // Different configurations: the fields that differ, one line each, not the whole JSON.
        XCTAssertTrue(diff.stdout.contains("  seed: 4 → 5\n"), diff.stdout)
        XCTAssertTrue(diff.stdout.contains("  bug: \"raft.stale-read\" → none\n"), diff.stdout)
        XCTAssertFalse(diff.stdout.contains("clientTimeoutNanoseconds"), diff.stdout)
    }
}
