import Foundation
import XCTest

final class ShrinkCommandTests: XCTestCase {
    func testShrinkRecordsALinkedRunThatReplaysAndWritesAReport() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--store", store,
                                    "--duration", "1", "--liveness", "0.5", "--failure-rate", "0.5"]).status, 1)
        let report = directory.appendingPathComponent("bug.md").path
        let shrink = try CLI.run(["shrink", "1", "--store", store, "--report", report, "--max-replays", "300", "--json"])
        XCTAssertEqual(shrink.status, 0, shrink.stderr)
        let result = try jsonObject(shrink.stdout)
        let run = try XCTUnwrap(result["run"] as? Int)
        XCTAssertEqual(result["original_run"] as? Int, 1)
        let before = try XCTUnwrap(result["deliveries_before"] as? Int)
        let after = try XCTUnwrap(result["deliveries_after"] as? Int)
        let toViolation = try XCTUnwrap(result["deliveries_before_violation"] as? Int)
        XCTAssertLessThan(after, toViolation)
        // The recorded run went on past its violation (to the end of its scenario).
        XCTAssertLessThan(toViolation, before)
        XCTAssertLessThanOrEqual(result["external_after"] as? Int ?? .max, result["external_before"] as? Int ?? 0)
        XCTAssertLessThanOrEqual(result["replays"] as? Int ?? .max, 302)
        XCTAssertNotNil(result["seconds"] as? Double)
        XCTAssertTrue((result["violation"] as? String ?? "").hasPrefix("echo/"), shrink.stdout)

        let replay = try CLI.run(["replay", "\(run)", "--store", store, "--json"])
        XCTAssertEqual(replay.status, 0, replay.stderr)
        XCTAssertEqual(try jsonObject(replay.stdout)["violation_reproduced"] as? Bool, true)
        let listing = try CLI.run(["ls", "--store", store, "--json"])
        XCTAssertTrue(listing.stdout.contains("\"parent_run\":1") || listing.stdout.contains("\"parentRun\":1"), listing.stdout)

        // The counterexample itself ends at its violation.
        let runs = try XCTUnwrap(try jsonObject(listing.stdout)["runs"] as? [[String: Any]])
        let original = try XCTUnwrap(runs.first { $0["id"] as? Int == 1 })
        let shrunk = try XCTUnwrap(runs.first { $0["id"] as? Int == run })
        XCTAssertEqual(original["virtualEndTime"] as? Int, 1_500_000_000)
        XCTAssertLessThan(shrunk["virtualEndTime"] as? Int ?? .max, 1_500_000_000)

        let markdown = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(markdown.contains("```mermaid\nsequenceDiagram"), markdown)
        XCTAssertTrue(markdown.contains("Gossip") || markdown.contains("Echo"), "messages are named")
        XCTAssertTrue(markdown.contains("chaostrace replay \(run) --store \(store)"))
        // The command that recorded the original has every setting that shaped it.
        XCTAssertTrue(markdown.contains("--duration 1.0 --liveness 0.5 --failure-rate 0.5`"), markdown)
    }

    func testShrinkRefusesPassingRunsAndBadFlags() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        XCTAssertEqual(try CLI.run(["run", "--system", "echo", "--suite", "none", "--seed", "1", "--store", store,
                                    "--duration", "1", "--liveness", "0.5"]).status, 0)
        let passing = try CLI.run(["shrink", "1", "--store", store])
        XCTAssertEqual(passing.status, 65)
        XCTAssertTrue(passing.stderr.contains("nothing to shrink"), passing.stderr)
        XCTAssertEqual(try CLI.run(["shrink", "1", "--store", store, "--max-replays", "0"]).status, 64)
        XCTAssertEqual(try CLI.run(["shrink", "7", "--store", store]).status, 64, "no such run")
        let missing = directory.appendingPathComponent("typo.trace").path
        let noStore = try CLI.run(["shrink", "1", "--store", missing])
        XCTAssertEqual(noStore.status, 64)
        XCTAssertTrue(noStore.stderr.contains("no trace store at \(missing)"), noStore.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing), "a mistyped store is not created")
    }
}
