import Foundation
import TraceStore
import XCTest

final class MergeCommandTests: XCTestCase {
    private let short = ["--duration", "1", "--liveness", "0.5"]

    func testMergeCopiesRunsOfShardsWithTheirLinksAndTheyStillReplay() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let a = directory.appendingPathComponent("shard1.trace").path
        let b = directory.appendingPathComponent("shard2.trace").path
        let out = directory.appendingPathComponent("all.trace").path
        XCTAssertEqual(try CLI.run(["run", "--system", "echo", "--seeds", "4", "--shard", "1/2", "--store", a] + short).status, 0)
        XCTAssertEqual(try CLI.run(["run", "--bug", "echo.off-by-one", "--suite", "none", "--seed", "1", "--store", b] + short).status, 1)
        let shrink = try CLI.run(["shrink", "latest-failure", "--store", b, "--max-replays", "50"])
        XCTAssertEqual(shrink.status, 0, shrink.stderr)
        let before = try jsonObject(try CLI.run(["ls", "--store", b, "--json"]).stdout)["runs"] as? [[String: Any]]

        let merge = try CLI.run(["merge", out, a, b, "--json"])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        let report = try jsonObject(merge.stdout)
        let copied = try XCTUnwrap(report["runs"] as? [[String: Any]])
        XCTAssertEqual(copied.count, 4)
        XCTAssertEqual(copied.compactMap { $0["new_run"] as? Int }, [1, 2, 3, 4])

        let runs = try XCTUnwrap(try jsonObject(try CLI.run(["ls", "--store", out, "--json"]).stdout)["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.compactMap { $0["seed"] as? Int }, [1, 3, 1, 1])
        XCTAssertEqual(runs.compactMap { $0["verdict"] as? String }, ["pass", "pass", "fail", "fail"])
        // The shrunk run still points at its original, now run 3; digests and times are kept.
        XCTAssertEqual(runs[3]["parentRun"] as? Int, 3)
        XCTAssertEqual(runs[3]["digest"] as? String, before?[1]["digest"] as? String)
        XCTAssertEqual(runs[3]["startedAt"] as? Double, before?[1]["startedAt"] as? Double)
        XCTAssertEqual(try CLI.run(["verify", "--store", out]).status, 0)
        let replay = try CLI.run(["replay", "4", "--store", out])
        XCTAssertEqual(replay.status, 0, replay.stdout + replay.stderr)
        XCTAssertTrue(replay.stdout.contains("violation reproduced"), replay.stdout)

        // Merging again adds only what is new (a merge cut short can simply be run again); a
        // missing input or the output among the inputs is bad usage.
        XCTAssertEqual(try CLI.run(["run", "--system", "echo", "--seed", "7", "--store", a] + short).status, 0)
        let again = try CLI.run(["merge", out, a])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("already in"), again.stdout)
        XCTAssertEqual((try jsonObject(try CLI.run(["ls", "--store", out, "--json"]).stdout)["runs"] as? [[String: Any]])?.compactMap { $0["seed"] as? Int },
                       [1, 3, 1, 1, 7])
        let missing = try CLI.run(["merge", out, directory.appendingPathComponent("nope.trace").path])
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.contains("nope.trace"), missing.stderr)
        XCTAssertEqual(try CLI.run(["merge", out, out]).status, 64)
        // The output by another name (a symbolic link), or one input twice: bad usage too.
        let link = directory.appendingPathComponent("link.trace").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: out)
        XCTAssertEqual(try CLI.run(["merge", link, out]).status, 64)
        XCTAssertEqual(try CLI.run(["merge", directory.appendingPathComponent("twice.trace").path, a, a]).status, 64)
        // An input that is not a store: 65, and no output file is left behind.
        let text = directory.appendingPathComponent("notes.trace")
        try Data("not a store\n".utf8).write(to: text)
        let fresh = directory.appendingPathComponent("fresh.trace").path
        let bad = try CLI.run(["merge", fresh, a, text.path])
        XCTAssertEqual(bad.status, 65, bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh))
    }

    func testADamagedRunIsLeftOutAndTheOthersAreMerged() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let damaged = directory.appendingPathComponent("damaged.trace").path
        let good = directory.appendingPathComponent("good.trace").path
        let out = directory.appendingPathComponent("all.trace").path
        for seed in ["1", "2"] {
            XCTAssertEqual(try CLI.run(["record-synthetic", "--store", damaged, "--events", "20000", "--chunk-size", "4096", "--seed", seed]).status, 0)
        }
        XCTAssertEqual(try CLI.run(["record-synthetic", "--store", good, "--events", "1000"]).status, 0)
        // Damage a chunk of run 1 (every copy of it: LMDB may keep stale copies of its page).
        let chunk: [UInt8]
        do { chunk = try XCTUnwrap(try TraceStore(path: damaged).rawChunk(run: 1, chunk: 3)) }
        var file = try Data(contentsOf: URL(fileURLWithPath: damaged))
        var searchFrom = file.startIndex
        while let range = file.range(of: Data(chunk), in: searchFrom..<file.endIndex) {
            file[range.lowerBound + chunk.count / 2] ^= 0xFF
            searchFrom = range.upperBound
        }
        try file.write(to: URL(fileURLWithPath: damaged))

        let merge = try CLI.run(["merge", out, damaged, good])
        XCTAssertEqual(merge.status, 65, merge.stdout + merge.stderr)
        XCTAssertTrue(merge.stderr.contains("damaged.trace: run 1"), merge.stderr)
        let runs = try XCTUnwrap(try jsonObject(try CLI.run(["ls", "--store", out, "--json"]).stdout)["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 2, "run 2 of the damaged store and the good store's run are merged")
        XCTAssertEqual(try CLI.run(["verify", "--store", out]).status, 0)
    }
}
