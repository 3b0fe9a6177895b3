import Foundation
import XCTest

final class CheckCommandTests: XCTestCase {
    func testTransactionalHistoriesAreCheckedAtTheConsistencyModelAskedFor() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("skew.edn").path
        try """
        {:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
        {:process 1, :type :invoke, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
        {:process 0, :type :ok, :f :txn, :value [[:r 1 []] [:append 2 1]]}
        {:process 1, :type :ok, :f :txn, :value [[:r 2 []] [:append 1 1]]}
        {:process 2, :type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
        {:process 2, :type :ok, :f :txn, :value [[:r 1 [1]] [:r 2 [1]]]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let weak = try CLI.run(["check", "--model", "list-append", "--consistency-model", "read-committed", path])
        XCTAssertEqual(weak.status, 0, weak.stdout + weak.stderr)
        let strict = try CLI.run(["check", "--model", "list-append", path, "--json"])
        XCTAssertEqual(strict.status, 1, strict.stdout + strict.stderr)
        let verdict = try jsonObject(strict.stdout)
        XCTAssertEqual(verdict["anomaly"] as? String, "G2")
        XCTAssertEqual(verdict["anomaly_types"] as? [String], ["G2"])
        XCTAssertEqual(verdict["consistency_model"] as? String, "strict-serializable")
        XCTAssertEqual((verdict["involved"] as? [String])?.count, 2)
        XCTAssertEqual(try CLI.run(["check", "--model", "kv", "--consistency-model", "serializable", path]).status, 64)
        XCTAssertEqual(try CLI.run(["check", "--model", "list-append", "--consistency-model", "snapshot", path]).status, 64)
        // A history of plain reads and writes is not a transactional one.
        let plainPath = directory.appendingPathComponent("plain.edn").path
        try "{:process 0, :type :invoke, :f :write, :value 1}\n".write(toFile: plainPath, atomically: true, encoding: .utf8)
        let plain = try CLI.run(["check", "--model", "rw-register", plainPath])
        XCTAssertEqual(plain.status, 65, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("plain.edn") && plain.stderr.contains(":f :txn"), plain.stderr)
    }

    func testAStartingValueCanBeGiven() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cas.edn").path
        try "[0 :invoke :cas [0 1]]\n[0 :ok :cas [0 1]]\n".write(toFile: path, atomically: true, encoding: .utf8)
        // A register nobody wrote holds nil, so a CAS from 0 cannot succeed, unless it started at 0.
        XCTAssertEqual(try CLI.run(["check", "--model", "cas-register", path]).status, 1)
        XCTAssertEqual(try CLI.run(["check", "--model", "cas-register", "--initial", "0", path]).status, 0)
        XCTAssertEqual(try CLI.run(["check", "--model", "counter", "--initial", "0", path]).status, 64)
        XCTAssertEqual(try CLI.run(["check", "--model", "cas-register", "--initial", "{:a", path]).status, 64)
    }

    func testCheckExitCodesFollowTheVerdict() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func file(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let good = try file("good.edn", """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 1}
        """)
        let stale = try file("stale.edn", """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 0, :type :invoke, :f :write, :value 2}
        {:process 0, :type :ok, :f :write, :value 2}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 1}
        """)
        let broken = try file("broken.edn", "{:process 0, :type :invoke, :f :write")
        XCTAssertEqual(try CLI.run(["check", "--model", "register", good]).status, 0)
        let bad = try CLI.run(["check", "--model", "register", stale])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stdout.contains("NOT linearizable"), bad.stdout)
        XCTAssertTrue(bad.stdout.contains("smallest failing partition"), bad.stdout)
        let json = try CLI.run(["check", "--model", "register", stale, "--json"])
        XCTAssertEqual(try jsonObject(json.stdout)["verdict"] as? String, "not-linearizable")
        let unreadable = try CLI.run(["check", "--model", "register", broken])
        XCTAssertEqual(unreadable.status, 65)
        XCTAssertTrue(unreadable.stderr.contains("broken.edn"), unreadable.stderr)
        // With --json, a script gets the unreadable verdict on standard output too.
        let unreadableJSON = try CLI.run(["check", "--model", "register", broken, "--json"])
        XCTAssertEqual(unreadableJSON.status, 65)
        XCTAssertEqual(try jsonObject(unreadableJSON.stdout)["verdict"] as? String, "unreadable")
        XCTAssertEqual(try CLI.run(["check", "--model", "register", directory.appendingPathComponent("missing.edn").path]).status, 65)
        XCTAssertEqual(try CLI.run(["check", "--model", "nonsense", good]).status, 64)
    }
}
