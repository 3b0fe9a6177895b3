import Foundation
import XCTest

/// `run --node-cmd`: external programs speaking the Maelstrom protocol, driven through the
/// simulated network. Uses the example node in `examples/maelstrom/node.py` (python3).
final class ExternalNodeTests: XCTestCase {
    private let short = ["--duration", "1.5", "--liveness", "1"]
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private static let node = root.appendingPathComponent("examples/maelstrom/node.py").path

    private func python(_ flags: String = "") throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard path.split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/python3") }) else {
            throw XCTSkip("python3 is needed for the example external node (tools/setup installs it)")
        }
        return "python3 \(ExternalNodeTests.node)" + (flags.isEmpty ? "" : " " + flags)
    }

    func testACorrectNodePassesEveryWorkloadAndReplaysIdentically() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        // lin-kv last: the check of its messages below looks at the latest run.
        for (workload, flags) in [("echo", ""), ("unique-ids", ""), ("unique-ids", "--tso-ids"), ("g-counter", "--g-counter"), ("pn-counter", "--g-counter"),
                                  ("g-set", "--g-set"), ("kafka", ""), ("txn-rw-register", ""), ("txn-list-append", ""),
                                  ("lin-kv", "")] {
            let run = try CLI.run(["run", "--node-cmd", try python(flags), "--workload", workload, "--seed", "3", "--store", store, "--json"] + short)
            XCTAssertEqual(run.status, 0, "\(workload): \(run.stdout) \(run.stderr)")
            let summary = try jsonObject(run.stdout)
            let runs = try XCTUnwrap(summary["runs"] as? [[String: Any]])
            XCTAssertEqual(runs.first?["verdict"] as? String, "pass", workload)
            XCTAssertGreaterThan(runs.first?["events"] as? Int ?? 0, 500, workload)
            let id = try XCTUnwrap(runs.first?["run"] as? Int)
            // Lock-step delivery: a node that is a function of its input replays exactly.
            let replay = try CLI.run(["replay", String(id), "--store", store])
            XCTAssertEqual(replay.status, 0, "\(workload): \(replay.stdout) \(replay.stderr)")
            XCTAssertTrue(replay.stdout.contains("identical"), replay.stdout)
        }
        // Messages between the processes went through the simulated network.
        let show = try CLI.run(["show", "latest", "--store", store, "--kind", "send", "--to", "400"])
        XCTAssertTrue(show.stdout.contains("forward"), show.stdout)
    }

    func testPlantedMistakesInTheExampleNodeAreFound() throws {
        let cases: [(flag: String, workload: String, found: String, extra: [String])] = [
            ("--local-kv", "lin-kv", "linearizability/not-linearizable", []),
            ("--bad-ids", "unique-ids", "unique-ids/duplicate-id", []),
            ("--local-counter", "g-counter", "g-counter/lost-increment", []),
            ("--local-counter", "pn-counter", "pn-counter/lost-increment", []),
            ("--g-set --lose-broadcasts", "g-set", "g-set/lost-element", ["--nodes", "3", "--clients", "2", "--failure-rate", "1"]),
            ("--local-kafka", "kafka", "kafka/duplicate-offset", []),
            ("--reads-first", "txn-rw-register", "txn-rw-register/internal", ["--option", "isolation=2"]),
            ("--dirty-txn", "txn-list-append", "txn-list-append/", ["--option", "isolation=1"]),
            ("--dirty-txn", "txn-rw-register", "txn-rw-register/", ["--option", "isolation=1"]),
            ("--lose-broadcasts", "broadcast", "broadcast/lost-message", ["--nodes", "3", "--clients", "2", "--failure-rate", "1"]),
        ]
        for item in cases {
            let run = try CLI.run(["run", "--node-cmd", try python(item.flag), "--workload", item.workload, "--seeds", "3", "--no-record"]
                                  + short + item.extra)
            XCTAssertEqual(run.status, 1, "\(item.flag): \(run.stdout) \(run.stderr)")
            XCTAssertTrue(run.stdout.contains(item.found), "\(item.flag): \(run.stdout)")
            XCTAssertTrue(run.stdout.contains("--node-cmd 'python3 "), "the rerun line repeats the command: \(run.stdout)")
        }
    }

    func testTransactionsAreJudgedAtTheIsolationLevelAskedFor() throws {
        let longer = ["--duration", "3", "--liveness", "1", "--seeds", "3", "--no-record"]
        // Aborted and overwritten writes leak to other nodes: allowed under read uncommitted ...
        let dirty = try CLI.run(["run", "--node-cmd", try python("--dirty-txn"), "--workload", "txn-rw-register"] + longer)
        XCTAssertEqual(dirty.status, 0, dirty.stdout + dirty.stderr)
        // ... and found under read committed.
        let committed = try CLI.run(["run", "--node-cmd", try python("--dirty-txn"), "--workload", "txn-rw-register",
                                     "--option", "isolation=1"] + longer)
        XCTAssertEqual(committed.status, 1, committed.stdout + committed.stderr)
        XCTAssertTrue(committed.stdout.contains("(G1a)") || committed.stdout.contains("(G1b)"), committed.stdout)
        // Blind writes after a snapshot read: every read is clean and sees the txn's own steps,
        // so levels 0 to 2 pass; the cycles through anti-dependencies are found when serializable
        // is asked for, and with real time too.
        let snapshot = try CLI.run(["run", "--node-cmd", try python("--snapshot-txn"), "--workload", "txn-list-append",
                                    "--option", "isolation=2"] + longer)
        XCTAssertEqual(snapshot.status, 0, snapshot.stdout + snapshot.stderr)
        for level in ["3", "4"] {
            let serializable = try CLI.run(["run", "--node-cmd", try python("--snapshot-txn"), "--workload", "txn-list-append",
                                            "--option", "isolation=" + level] + longer)
            XCTAssertEqual(serializable.status, 1, serializable.stdout + serializable.stderr)
            XCTAssertTrue(serializable.stdout.contains("txn-list-append/G-single") || serializable.stdout.contains("txn-list-append/G2"),
                          serializable.stdout)
            XCTAssertTrue(serializable.stdout.contains("—rw k"), serializable.stdout)
        }
        // On registers the same node loses updates: two txns read a version and both write the
        // next, which the order of versions inferred from read-then-write shows as a cycle.
        let lost = try CLI.run(["run", "--node-cmd", try python("--snapshot-txn"), "--workload", "txn-rw-register",
                                "--option", "isolation=3"] + longer)
        XCTAssertEqual(lost.status, 1, lost.stdout + lost.stderr)
        XCTAssertTrue(lost.stdout.contains("txn-rw-register/G"), lost.stdout)
        // A correct node is strict serializable.
        for workload in ["txn-list-append", "txn-rw-register"] {
            let strict = try CLI.run(["run", "--node-cmd", try python(), "--workload", workload, "--option", "isolation=4"] + longer)
            XCTAssertEqual(strict.status, 0, workload + ": " + strict.stdout + strict.stderr)
        }

        // What each step wrote and read is in the trace: show and the EDN history carry it.
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        let run = try CLI.run(["run", "--node-cmd", try python(), "--workload", "txn-rw-register", "--seed", "1", "--store", store] + short)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let show = try CLI.run(["show", "latest", "--store", store, "--kind", "client-invoke,client-complete", "--to", "2000"])
        XCTAssertTrue(show.stdout.contains("txn [") && show.stdout.contains(" ok ["), show.stdout)
        let edn = try CLI.run(["export", "latest", "--store", store, "--format", "edn"])
        XCTAssertEqual(edn.status, 0, edn.stderr)
        let completions = edn.stdout.split(separator: "\n").filter { $0.contains(":type :ok, :f :txn") }
        XCTAssertFalse(completions.isEmpty, edn.stdout)
        // A completed read shows the value it returned (a number or nil), a write its value.
        let step = try XCTUnwrap(completions.first?.range(of: ":value [["))
        XCTAssertTrue(completions[0][step.upperBound...].hasPrefix(":r ") || completions[0][step.upperBound...].hasPrefix(":w "), String(completions[0]))
    }

    func testAnExportedTransactionHistoryChecksAsTheRunJudgedIt() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("runs.trace").path
        let history = directory.appendingPathComponent("history.edn").path
        for (flags, failing) in [("--snapshot-txn", true), ("", false)] {
            let run = try CLI.run(["run", "--node-cmd", try python(flags), "--workload", "txn-list-append", "--seed", "2",
                                   "--option", "isolation=3", "--store", store, "--json"] + short)
            XCTAssertEqual(run.status, failing ? 1 : 0, run.stdout + run.stderr)
            let outcome = try XCTUnwrap((try jsonObject(run.stdout)["runs"] as? [[String: Any]])?.first)
            XCTAssertEqual(try CLI.run(["export", "latest", "--store", store, "--format", "edn", "--output", history]).status, 0)
            let check = try CLI.run(["check", "--model", "list-append", "--consistency-model", "serializable", history, "--json"])
            XCTAssertEqual(check.status, failing ? 1 : 0, check.stdout + check.stderr)
            if failing {
                // The same kind of anomaly as the run's own checker found.
                let anomaly = try XCTUnwrap(try jsonObject(check.stdout)["anomaly"] as? String)
                let violation = try XCTUnwrap(outcome["violation"] as? [String: Any])
                XCTAssertEqual(violation["checker"] as? String, "txn-list-append")
                XCTAssertEqual(violation["kind"] as? String, anomaly, check.stdout)
            }
        }
    }

    func testAHugeAnswerIsQuotedShort() throws {
        // A node that answers every echo with a megabyte of text: the report quotes its start.
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("huge.py").path
        try """
        import json, sys
        for line in sys.stdin:
            message = json.loads(line)
            body = message["body"]
            answer = {"type": "init_ok"} if body["type"] == "init" else {"type": "echo_ok", "echo": "x" * 1000000}
            answer["in_reply_to"] = body["msg_id"]
            print(json.dumps({"src": message["dest"], "dest": message["src"], "body": answer}), flush=True)
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let run = try CLI.run(["run", "--node-cmd", try python().replacingOccurrences(of: ExternalNodeTests.node, with: script),
                               "--workload", "echo", "--seed", "1", "--no-record"] + short)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stdout.contains("… (1000000 bytes)"), String(run.stdout.prefix(2000)))
        XCTAssertLessThan(run.stdout.utf8.count, 5000)
    }

    func testTheSameSeedRunsTheSameInASecondProcess() throws {
        let run = try CLI.run(["run", "--node-cmd", try python(), "--workload", "lin-kv", "--seeds", "2", "--no-record",
                               "--check-determinism"] + short)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertFalse(run.stdout.contains("NOT deterministic"), run.stdout)
    }

    func testACommandThatCannotServeIsABadUsageNamingIt() throws {
        let missing = try CLI.run(["run", "--node-cmd", "no-such-node-program-here", "--workload", "echo", "--no-record"])
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.contains("could not start 'no-such-node-program-here'"), missing.stderr)
        let crashing = try CLI.run(["run", "--node-cmd", "python3 -c 'import sys; sys.stderr.write(\"no config\\n\"); sys.exit(2)'",
                                    "--workload", "echo", "--no-record"])
        XCTAssertEqual(crashing.status, 64)
        XCTAssertTrue(crashing.stderr.contains("exited with status 2"), crashing.stderr)
        XCTAssertTrue(crashing.stderr.contains("no config"), "its stderr is shown: \(crashing.stderr)")
        let silent = try CLI.run(["run", "--node-cmd", "cat", "--workload", "echo", "--no-record"])
        XCTAssertEqual(silent.status, 64)
        XCTAssertTrue(silent.stderr.contains("did not answer init with init_ok"), silent.stderr)
        // A runaway printer is stopped, not allowed to fill memory.
        let flooding = try CLI.run(["run", "--node-cmd", "yes", "--workload", "echo", "--no-record"])
        XCTAssertEqual(flooding.status, 64)
        XCTAssertTrue(flooding.stderr.contains("kept writing without settling"), flooding.stderr)
        let noWorkload = try CLI.run(["run", "--node-cmd", "cat"])
        XCTAssertEqual(noWorkload.status, 64)
        XCTAssertTrue(noWorkload.stderr.contains("--workload"), noWorkload.stderr)
    }

    func testANodeThatMisbehavesMidRunFailsTheRunWithItsReason() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("flaky.py")
        try """
        import json, sys
        seen = 0
        for line in sys.stdin:
            m = json.loads(line); b = m["body"]
            if b["type"] == "init":
                me = b["node_id"]
                print(json.dumps({"src": me, "dest": m["src"], "body": {"type": "init_ok", "in_reply_to": b["msg_id"]}}), flush=True)
                continue
            seen += 1
            if seen == 4 and me == "n1" and "--garbage" in sys.argv:
                print("this is not json", flush=True)
            if seen == 4 and me == "n2" and "--exit" in sys.argv:
                sys.stderr.write("Traceback: boom\\n"); sys.exit(3)
            if seen == 4 and "--no-reply-to" in sys.argv:
                print(json.dumps({"src": me, "dest": m["src"], "body": {"type": "echo_ok", "echo": b["echo"]}}), flush=True); continue
            if seen == 4 and "--other-client" in sys.argv:
                other = "c1" if m["src"] != "c1" else "c2"
                print(json.dumps({"src": me, "dest": other, "body": {"type": "echo_ok", "in_reply_to": b["msg_id"], "echo": b["echo"]}}), flush=True); continue
            print(json.dumps({"src": me, "dest": m["src"], "body": {"type": "echo_ok", "in_reply_to": b["msg_id"], "echo": b["echo"]}}), flush=True)
        """.write(to: script, atomically: true, encoding: .utf8)
        _ = try python()
        let store = directory.appendingPathComponent("runs.trace").path
        let garbage = try CLI.run(["run", "--node-cmd", "python3 \(script.path) --garbage", "--workload", "echo", "--seed", "1",
                                   "--suite", "none", "--store", store] + short)
        XCTAssertEqual(garbage.status, 1, garbage.stdout + garbage.stderr)
        XCTAssertTrue(garbage.stdout.contains("external-node/malformed-output"), garbage.stdout)
        XCTAssertTrue(garbage.stdout.contains("this is not json"), garbage.stdout)
        let exits = try CLI.run(["run", "--node-cmd", "python3 \(script.path) --exit", "--workload", "echo", "--seed", "1",
                                 "--suite", "none", "--store", store] + short)
        XCTAssertEqual(exits.status, 1, exits.stdout + exits.stderr)
        XCTAssertTrue(exits.stdout.contains("external-node/node-exited"), exits.stdout)
        XCTAssertTrue(exits.stdout.contains("exited with status 3"), exits.stdout)
        // Replies the clients cannot take are the node's fault, named, not silence.
        for (flag, kind) in [("--no-reply-to", "malformed-output"), ("--other-client", "misdirected-reply")] {
            let run = try CLI.run(["run", "--node-cmd", "python3 \(script.path) \(flag)", "--workload", "echo", "--seed", "1",
                                   "--suite", "none", "--store", store] + short)
            XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
            XCTAssertTrue(run.stdout.contains("external-node/\(kind)"), run.stdout)
        }
        // Every failure is a recorded run like any other.
        let ls = try jsonObject(try CLI.run(["ls", "--store", store, "--json"]).stdout)
        XCTAssertEqual((ls["runs"] as? [[String: Any]])?.compactMap { $0["verdict"] as? String }, ["fail", "fail", "fail", "fail"])
    }

    /// A run recorded with a relative command replays from the directory it was recorded in; from
    /// another, replay says so before re-executing anything (exit 64; shrink checks the same way).
    func testARelativeCommandIsCheckedWhereTheRunIsReplayed() throws {
        _ = try python()
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let elsewhere = directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let store = directory.appendingPathComponent("runs.trace").path
        let root = URL(fileURLWithPath: ExternalNodeTests.node).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let run = try CLI.run(["run", "--node-cmd", "python3 examples/maelstrom/node.py", "--workload", "echo", "--seed", "1",
                               "--suite", "none", "--store", store] + short, in: root)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(try CLI.run(["replay", "1", "--store", store], in: root).status, 0)
        for command in [["replay", "1"], ["replay", "1", "--tolerant"]] {
            let result = try CLI.run(command + ["--store", store], in: elsewhere)
            XCTAssertEqual(result.status, 64, "\(command): \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("examples/maelstrom/node.py") && result.stderr.contains("directory"), result.stderr)
        }
    }
}
