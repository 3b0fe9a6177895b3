import Checkers
import XCTest

final class TransactionHistoryTests: XCTestCase {
    private func anomaly(_ model: TransactionModel, _ consistency: ConsistencyModel, _ text: String) throws -> TransactionAnomaly? {
        let checker = TransactionHistoryChecker(model: model, consistency: consistency)
        return checker.check(try checker.transactions(from: text))
    }

    // Two transactions each read what the other does not write yet, then write what the other
    // read: write skew, a G2 cycle of two anti-dependencies.
    private let writeSkew = """
    {:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
    {:process 1, :type :invoke, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
    {:process 0, :type :ok, :f :txn, :value [[:r 1 []] [:append 2 1]]}
    {:process 1, :type :ok, :f :txn, :value [[:r 2 []] [:append 1 1]]}
    {:process 2, :type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
    {:process 2, :type :ok, :f :txn, :value [[:r 1 [1]] [:r 2 [1]]]}
    """

    func testCyclesAreFoundAtTheConsistencyModelsThatForbidThem() throws {
        XCTAssertNil(try anomaly(.listAppend, .readCommitted, writeSkew))
        let skew = try XCTUnwrap(try anomaly(.listAppend, .serializable, writeSkew))
        XCTAssertEqual(skew.name, "G2")
        XCTAssertEqual(skew.transactions.map(\.process), [0, 1])
        XCTAssertTrue(skew.explanation.contains("—rw 1→"), skew.explanation)
        // Each reads the other's append: a cycle of wr, forbidden from read committed.
        let circular = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 1] [:r 2 nil]]}
        {:process 1, :type :invoke, :f :txn, :value [[:append 2 1] [:r 1 nil]]}
        {:process 0, :type :ok, :f :txn, :value [[:append 1 1] [:r 2 [1]]]}
        {:process 1, :type :ok, :f :txn, :value [[:append 2 1] [:r 1 [1]]]}
        """
        XCTAssertNil(try anomaly(.listAppend, .readUncommitted, circular))
        XCTAssertEqual(try anomaly(.listAppend, .readCommitted, circular)?.name, "G1c")
        // A read that misses a write completed before it began: serializable (it goes first),
        // not strict serializable.
        let stale = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 5]]}
        {:process 0, :type :ok, :f :txn, :value [[:append 1 5]]}
        {:process 1, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 1, :type :ok, :f :txn, :value [[:r 1 []]]}
        {:process 2, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 2, :type :ok, :f :txn, :value [[:r 1 [5]]]}
        """
        XCTAssertNil(try anomaly(.listAppend, .serializable, stale))
        XCTAssertEqual(try anomaly(.listAppend, .strictSerializable, stale)?.name, "G-single-realtime")
    }

    func testReadsOfWritesThatShouldNotBeSeen() throws {
        // A failed transaction's append read (G1a), and a list missing the last of a
        // transaction's two appends while holding the first (G1b).
        let aborted = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 1]]}
        {:process 0, :type :fail, :f :txn, :value [[:append 1 1]]}
        {:process 1, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 1, :type :ok, :f :txn, :value [[:r 1 [1]]]}
        """
        XCTAssertNil(try anomaly(.listAppend, .readUncommitted, aborted))
        XCTAssertEqual(try anomaly(.listAppend, .readCommitted, aborted)?.name, "G1a")
        let intermediate = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 1] [:append 1 2]]}
        {:process 1, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 1, :type :ok, :f :txn, :value [[:r 1 [1]]]}
        {:process 0, :type :ok, :f :txn, :value [[:append 1 1] [:append 1 2]]}
        """
        XCTAssertEqual(try anomaly(.listAppend, .readCommitted, intermediate)?.name, "G1b")
        // Always: an element nobody appended, or one twice.
        XCTAssertEqual(try anomaly(.listAppend, .readUncommitted, aborted.replacingOccurrences(of: "[:r 1 [1]]", with: "[:r 1 [7]]"))?.name,
                       "garbage-read")
        XCTAssertEqual(try anomaly(.listAppend, .readUncommitted, intermediate.replacingOccurrences(of: "[:r 1 [1]]", with: "[:r 1 [1 1]]"))?.name,
                       "duplicate-elements")
        // Two reads that disagree on the order of a list.
        let orders = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 1]]}
        {:process 1, :type :invoke, :f :txn, :value [[:append 1 2]]}
        {:process 0, :type :ok, :f :txn, :value [[:append 1 1]]}
        {:process 1, :type :ok, :f :txn, :value [[:append 1 2]]}
        {:process 2, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 2, :type :ok, :f :txn, :value [[:r 1 [1 2]]]}
        {:process 3, :type :invoke, :f :txn, :value [[:r 1 nil]]}
        {:process 3, :type :ok, :f :txn, :value [[:r 1 [2 1]]]}
        """
        XCTAssertEqual(try anomaly(.listAppend, .readCommitted, orders)?.name, "incompatible-order")
        // A transaction that does not see its own append.
        let blind = """
        {:process 0, :type :invoke, :f :txn, :value [[:append 1 1] [:r 1 nil]]}
        {:process 0, :type :ok, :f :txn, :value [[:append 1 1] [:r 1 []]]}
        """
        XCTAssertNil(try anomaly(.listAppend, .readCommitted, blind))
        XCTAssertEqual(try anomaly(.listAppend, .serializable, blind)?.name, "internal")
        // A read of what the transaction appends only in a later step.
        let future = """
        {:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 1]]}
        {:process 0, :type :ok, :f :txn, :value [[:r 1 [1]] [:append 1 1]]}
        """
        XCTAssertNil(try anomaly(.listAppend, .readUncommitted, future))
        XCTAssertEqual(try anomaly(.listAppend, .readCommitted, future)?.name, "future-read")
        XCTAssertEqual(try anomaly(.rwRegister, .readCommitted, "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:w 1 1]]}\n"
                                   + "{:process 0, :type :ok, :f :txn, :value [[:r 1 1] [:w 1 1]]}")?.name, "future-read")
    }

    func testEveryKindOfAnomalyIsListedOnce() throws {
        // The write skew, and a read of a failed transaction's append twice over.
        let history = writeSkew + """

        {:process 3, :type :invoke, :f :txn, :value [[:append 3 1]]}
        {:process 3, :type :fail, :f :txn, :value [[:append 3 1]]}
        {:process 4, :type :invoke, :f :txn, :value [[:r 3 nil] [:r 3 nil]]}
        {:process 4, :type :ok, :f :txn, :value [[:r 3 [1]] [:r 3 [1]]]}
        """
        let checker = TransactionHistoryChecker(model: .listAppend, consistency: .serializable)
        let found = checker.anomalies(try checker.transactions(from: history))
        XCTAssertEqual(found.map(\.name), ["G1a", "G2"])
        XCTAssertEqual(checker.check(try checker.transactions(from: history))?.name, "G1a")
        let weaker = TransactionHistoryChecker(model: .listAppend, consistency: .readUncommitted)
        XCTAssertTrue(weaker.anomalies(try weaker.transactions(from: history)).isEmpty)
    }

    func testRegisterOrderIsInferredFromReadsThenWrites() throws {
        // Both read 1 and both write after it: a lost update, a cycle of two anti-dependencies.
        let lost = """
        {:process 0, :type :invoke, :f :txn, :value [[:w 1 1]]}
        {:process 0, :type :ok, :f :txn, :value [[:w 1 1]]}
        {:process 1, :type :invoke, :f :txn, :value [[:r 1 nil] [:w 1 2]]}
        {:process 2, :type :invoke, :f :txn, :value [[:r 1 nil] [:w 1 3]]}
        {:process 1, :type :ok, :f :txn, :value [[:r 1 1] [:w 1 2]]}
        {:process 2, :type :ok, :f :txn, :value [[:r 1 1] [:w 1 3]]}
        """
        XCTAssertNil(try anomaly(.rwRegister, .readCommitted, lost))
        let found = try XCTUnwrap(try anomaly(.rwRegister, .serializable, lost))
        XCTAssertEqual(found.name, "G2")
        XCTAssertEqual(Set(found.transactions.map(\.process)), [1, 2])
        // One of them reading the other's write instead is serializable.
        XCTAssertNil(try anomaly(.rwRegister, .strictSerializable, lost.replacingOccurrences(of: "[[:r 1 1] [:w 1 3]]", with: "[[:r 1 2] [:w 1 3]]")))
    }

    func testMalformedTransactionsAreErrorsWithLines() {
        let cases: [(String, TransactionModel, Int)] = [
            ("{:process 0, :type :invoke, :f :read, :value nil}", .listAppend, 1),
            ("{:process 0, :type :invoke, :f :txn, :value [[:w 1 2]]}", .listAppend, 1),
            ("{:process 0, :type :invoke, :f :txn, :value [[:append 1]]}", .listAppend, 1),
            ("{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 0, :type :ok, :f :txn, :value [[:r 1 5]]}", .listAppend, 2),
            ("{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 0, :type :ok, :f :txn, :value [[:r 2 nil]]}", .rwRegister, 2),
            // A value written twice to a key would leave a read without one writer.
            ("{:process 0, :type :invoke, :f :txn, :value [[:w 1 5]]}\n{:process 1, :type :invoke, :f :txn, :value [[:w 1 5]]}", .rwRegister, 2),
        ]
        for (text, model, line) in cases {
            XCTAssertThrowsError(try TransactionHistoryChecker(model: model, consistency: .serializable).transactions(from: text), text) { error in
                XCTAssertEqual((error as? HistoryError)?.line, line, "\(text): \(error)")
            }
        }
    }
}

/// Histories made by executing each transaction atomically at some moment between its invocation
/// and its completion (some crash after or before they take effect): strict serializable by
/// construction, so no anomaly may be reported at any consistency model.
final class TransactionHistoryPropertyTests: XCTestCase {
    private struct SplitMix {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    /// `snapshotReads`: the reads take effect when the transaction is invoked, its writes later
    /// (not atomic: the history has anomalies).
    private func history(_ model: TransactionModel, seed: UInt64, transactions: Int, snapshotReads: Bool = false) -> String {
        var random = SplitMix(state: seed)
        var lists: [Int: [Int]] = [:]
        var registers: [Int: Int] = [:]
        var nextValue = 1
        var lines: [String] = []
        // Per process: its transaction's steps as invoked, and, once applied, as completed.
        var open: [Int: (invoked: [String], completed: [String]?)] = [:]
        // With snapshot reads: what each open transaction's reads returned when it was invoked.
        var snapshots: [Int: [String]] = [:]
        func read(_ key: Int) -> String {
            model == .listAppend ? "[:r \(key) [\((lists[key] ?? []).map(String.init).joined(separator: " "))]]"
                : "[:r \(key) \(registers[key].map(String.init) ?? "nil")]"
        }
        var processes = Array(0..<5)
        var nextProcess = 5
        var started = 0
        func render(_ steps: [String]) -> String { "[" + steps.joined(separator: " ") + "]" }
        while started < transactions || !open.isEmpty {
            let slot = random.next(processes.count)
            let process = processes[slot]
            if let current = open[process] {
                if current.completed == nil {
                    // It takes effect now, all at once.
                    var completed: [String] = []
                    var snapshot = snapshots.removeValue(forKey: process) ?? []
                    for step in current.invoked {
                        let parts = step.dropFirst().dropLast().split(separator: " ")
                        let key = Int(parts[1])!
                        if parts[0] == ":r" {
                            completed.append(snapshotReads ? snapshot.removeFirst() : read(key))
                        } else {
                            let value = Int(parts[2])!
                            if model == .listAppend { lists[key, default: []].append(value) } else { registers[key] = value }
                            completed.append(step)
                        }
                    }
                    open[process] = (current.invoked, completed)
                    continue
                }
                let crashed = random.next(10) == 0
                lines.append("{:process \(process), :type :\(crashed ? "info" : "ok"), :f :txn, :value \(render(crashed ? current.invoked : current.completed!))}")
                open[process] = nil
                if crashed {
                    processes[slot] = nextProcess
                    nextProcess += 1
                }
            } else if started < transactions {
                var steps: [String] = []
                for _ in 0..<(1 + random.next(4)) {
                    let key = random.next(4)
                    if random.next(2) == 0 {
                        steps.append("[:r \(key) nil]")
                    } else {
                        steps.append("[:\(model == .listAppend ? "append" : "w") \(key) \(nextValue)]")
                        nextValue += 1
                    }
                }
                lines.append("{:process \(process), :type :invoke, :f :txn, :value \(render(steps))}")
                open[process] = (steps, nil)
                if snapshotReads {
                    snapshots[process] = steps.filter { $0.hasPrefix("[:r ") }.map { read(Int($0.split(separator: " ")[1])!) }
                }
                started += 1
            }
        }
        return lines.joined(separator: "\n")
    }

    func testAtomicExecutionsShowNoAnomaly() throws {
        for model in TransactionModel.allCases {
            for seed in UInt64(1)...40 {
                let text = history(model, seed: seed, transactions: 150)
                let checker = TransactionHistoryChecker(model: model, consistency: .strictSerializable)
                let found = checker.anomalies(try checker.transactions(from: text))
                XCTAssertTrue(found.isEmpty, "\(model.rawValue) seed \(seed): \(found.map { "\($0.name): \($0.explanation)" })")
            }
        }
    }

    func testReadsTakenBeforeTheirTransactionTakesEffectAreFound() throws {
        for model in TransactionModel.allCases {
            var caught = 0
            for seed in UInt64(1)...20 {
                let text = history(model, seed: seed, transactions: 150, snapshotReads: true)
                let checker = TransactionHistoryChecker(model: model, consistency: .strictSerializable)
                if !checker.anomalies(try checker.transactions(from: text)).isEmpty { caught += 1 }
            }
            XCTAssertGreaterThanOrEqual(caught, 18, "\(model.rawValue): \(caught) of 20 histories with stale reads caught")
        }
    }
}
