import Foundation
import XCTest

final class RunCommandTests: XCTestCase {
    private let short = ["--duration", "1", "--liveness", "0.5"]

    func testRunJSONHasTheDocumentedShapeAndRecordsEachSeed() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        let run = try CLI.run(["run", "--system", "echo", "--seeds", "3", "--first-seed", "10", "--store", store, "--json"] + short)
        XCTAssertEqual(run.status, 0, run.stderr)
        let summary = try jsonObject(run.stdout)
        XCTAssertEqual(summary["seeds"] as? Int, 3)
        XCTAssertEqual(summary["passed"] as? Int, 3)
        XCTAssertEqual(summary["failed"] as? Int, 0)
        let runs = try XCTUnwrap(summary["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.compactMap { $0["seed"] as? Int }, [10, 11, 12])
        for entry in runs {
            XCTAssertEqual(entry["verdict"] as? String, "pass")
            XCTAssertTrue(entry["violation"] is NSNull)
            XCTAssertGreaterThan(entry["events"] as? Int ?? 0, 1_000)
            XCTAssertNotNil(entry["run"] as? Int)
        }
        let ls = try jsonObject(try CLI.run(["ls", "--store", store, "--json"]).stdout)
        XCTAssertEqual((ls["runs"] as? [[String: Any]])?.count, 3)
        XCTAssertEqual(try CLI.run(["verify", "--store", store]).status, 0)
    }

    func testAFailingRunRecordsItsWholeScenarioUnlessToldToStopAtTheViolation() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        let whole = try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--store", store, "--json"] + short)
        XCTAssertEqual(whole.status, 1, whole.stderr)
        let stopped = try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--store", store, "--json",
                                   "--stop-on-violation"] + short)
        XCTAssertEqual(stopped.status, 1, stopped.stderr)
        let runs = try XCTUnwrap(try jsonObject(try CLI.run(["ls", "--store", store, "--json"]).stdout)["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 2)
        // Same first violation either way; the whole run goes on to the end of the scenario.
        XCTAssertEqual(runs[0]["summary"] as? String, runs[1]["summary"] as? String)
        XCTAssertEqual(runs[0]["virtualEndTime"] as? Int, 1_500_000_000)
        XCTAssertLessThan(runs[1]["virtualEndTime"] as? Int ?? .max, 1_500_000_000)
        XCTAssertGreaterThan(runs[0]["eventCount"] as? Int ?? 0, runs[1]["eventCount"] as? Int ?? .max)
        for id in ["1", "2"] {
            let replay = try CLI.run(["replay", id, "--store", store])
            XCTAssertEqual(replay.status, 0, replay.stdout + replay.stderr)
            XCTAssertTrue(replay.stdout.contains("violation reproduced"), replay.stdout)
        }
    }

    func testAFailingSeedExitsOneAndPrintsHowToReproduceIt() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        let junit = directory.appendingPathComponent("junit.xml").path
        let run = try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seeds", "2", "--store", store,
                               "--junit", junit] + short)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stdout.contains("echo/wrong-echo"), run.stdout)
        XCTAssertTrue(run.stdout.contains("rerun:  chaostrace run --system echo --suite none --seed 1 --bug echo.off-by-one"), run.stdout)
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        XCTAssertTrue(xml.contains("<failure"))
        XCTAssertTrue(xml.contains("tests=\"2\""))

        let json = try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--no-record", "--json"] + short)
        XCTAssertEqual(json.status, 1)
        let runs = try XCTUnwrap(try jsonObject(json.stdout)["runs"] as? [[String: Any]])
        let violation = try XCTUnwrap(runs.first?["violation"] as? [String: Any])
        XCTAssertEqual(violation["checker"] as? String, "echo")
        XCTAssertEqual(violation["kind"] as? String, "wrong-echo")
        XCTAssertTrue(runs.first?["run"] is NSNull, "nothing recorded with --no-record")
        XCTAssertTrue(json.stderr.contains("rerun:"))
    }

    func testCheckDeterminismPassesForACorrectSystem() throws {
        let run = try CLI.run(["run", "--system", "echo", "--seeds", "2", "--no-record", "--check-determinism", "--json"] + short)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let runs = try XCTUnwrap(try jsonObject(run.stdout)["runs"] as? [[String: Any]])
        for entry in runs {
            XCTAssertEqual((entry["determinism"] as? [String: Any])?["identical"] as? Bool, true)
        }
    }

    func testCheckDeterminismCatchesSetIterationAndNamesTheFirstDifferingEvent() throws {
        let run = try CLI.run(["run", "--bug", "echo.set-order", "--seed", "1", "--no-record", "--check-determinism", "--suite", "none"] + short)
        XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("is NOT deterministic: first differing event #"), run.stdout)
        XCTAssertTrue(run.stdout.contains("this process:  #"), run.stdout)
        XCTAssertTrue(run.stdout.contains("other process: #"), run.stdout)
        let lines = run.stdout.split(separator: "\n")
        let here = try XCTUnwrap(lines.first { $0.contains("this process:") })
        let there = try XCTUnwrap(lines.first { $0.contains("other process:") })
        XCTAssertNotEqual(here.split(separator: ":", maxSplits: 1)[1], there.split(separator: ":", maxSplits: 1)[1])
    }

    func testJobsSplitSeedsAcrossProcessesWithTheSameResults() throws {
        let one = try CLI.run(["run", "--system", "echo", "--seeds", "4", "--no-record", "--json"] + short)
        let two = try CLI.run(["run", "--system", "echo", "--seeds", "4", "--no-record", "--json", "--jobs", "2"] + short)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(two.status, 0, two.stderr)
        func digests(_ text: String) throws -> [String] {
            try XCTUnwrap(try jsonObject(text)["runs"] as? [[String: Any]]).compactMap { $0["digest"] as? String }
        }
        XCTAssertEqual(try digests(one.stdout), try digests(two.stdout))
        let shard = try CLI.run(["run", "--system", "echo", "--seeds", "4", "--no-record", "--json", "--shard", "2/2"] + short)
        let seeds = try XCTUnwrap(try jsonObject(shard.stdout)["runs"] as? [[String: Any]]).compactMap { $0["seed"] as? Int }
        XCTAssertEqual(seeds, [2, 4])
    }


    func testJobsRecordingIntoANewStoreKeepEveryRun() throws {
        // The workers share the store: none may find it half set up by another.
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for attempt in 0..<3 {
            let store = directory.appendingPathComponent("jobs\(attempt).trace").path
            let run = try CLI.run(["run", "--system", "echo", "--seeds", "4", "--jobs", "2", "--store", store, "--json"] + short)
            XCTAssertEqual(run.status, 0, run.stderr)
            let listed = try CLI.run(["ls", "--store", store, "--json"])
            let runs = try XCTUnwrap(try jsonObject(listed.stdout)["runs"] as? [[String: Any]])
            XCTAssertEqual(runs.count, 4, listed.stdout)
            // Run ids follow the seeds, whichever worker finished first ('latest' is the last seed).
            XCTAssertEqual(runs.compactMap { $0["id"] as? Int }, [1, 2, 3, 4])
            XCTAssertEqual(runs.compactMap { $0["seed"] as? Int }, [1, 2, 3, 4])
        }
    }
    func testARunTheEventBudgetStopsIsNotJudged() throws {
        // The planted bug's stale read comes later than 20,000 events: the cut run must not pass.
        let run = try CLI.run(["run", "--no-record", "--system", "raft", "--bug", "raft.stale-read", "--seed", "1", "--max-events", "20000"])
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("1 stopped by a budget (not judged)"), run.stdout)
        XCTAssertTrue(run.stdout.contains("raise --max-events"), run.stdout)
    }

    func testBadRunFlagsAreUsageErrors() throws {
        for arguments in [["--suite", "nonsense"], ["--bug", "no.such-bug"], ["--system", "nope"], ["--shard", "3/2"],
                          ["--failure-rate", "2"], ["--seed", "1", "--seeds", "2"], ["--option", "fanout"],
                          ["--bug", "echo.set-order", "--system", "other"], ["--system", "raft", "--option", "fanout=2"],
                          ["--system", "bft", "--suite", "byzantine", "--nodes", "4", "--byzantine", "2"],
                          ["--blast-radius", "9"], ["--max-events", "0"], ["--junit", "/nonexistent-dir/x.xml"]] {
            let run = try CLI.run(["run", "--no-record"] + arguments)
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.stderr)")
        }
    }
}

final class StatsCommandTests: XCTestCase {
    func testStatsReportsResilienceMetricsAndABaseline() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--system", "raft", "--suite", "nodes", "--seed", "3", "--failure-rate", "1",
                                    "--duration", "4", "--liveness", "2", "--store", store]).status, 0)
        let stats = try CLI.run(["stats", "latest", "--store", store, "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        let metrics = try jsonObject(stats.stdout)
        XCTAssertGreaterThan(metrics["faults"] as? Int ?? 0, 0)
        XCTAssertNotNil(metrics["mttr_ms"] as? Double)
        XCTAssertNotNil(metrics["mtbf_ms"] as? Double)
        let availability = try XCTUnwrap(metrics["availability"] as? Double)
        XCTAssertTrue((0...1).contains(availability))
        let latency = try XCTUnwrap(metrics["latency_ms"] as? [String: Any])
        let baseline = try XCTUnwrap(metrics["baseline_latency_ms"] as? [String: Any])
        XCTAssertLessThanOrEqual(latency["p50"] as? Double ?? 0, latency["p99"] as? Double ?? 0)
        XCTAssertGreaterThan(baseline["count"] as? Int ?? 0, 0)
        let text = try CLI.run(["stats", "latest", "--store", store])
        XCTAssertTrue(text.stdout.contains("MTTR"), text.stdout)
        XCTAssertTrue(text.stdout.contains("fault-free"), text.stdout)
    }
}
