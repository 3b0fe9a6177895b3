import Checkers
import XCTest

final class LinearizabilityTests: XCTestCase {
    private func verdict(_ model: HistoryModel, _ text: String) throws -> LinearizabilityVerdict {
        model.check(try model.operations(from: text))
    }

    private func isLinearizable(_ verdict: LinearizabilityVerdict) -> Bool {
        if case .linearizable = verdict { return true }
        return false
    }

    private func failure(_ verdict: LinearizabilityVerdict) -> LinearizabilityFailure? {
        if case .notLinearizable(let failure) = verdict { return failure }
        return nil
    }

    func testSequentialWritesAndReadsAreLinearizable() throws {
        let history = """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 1}
        """
        XCTAssertTrue(isLinearizable(try verdict(.register, history)))
    }

    func testAStaleReadIsNotLinearizable() throws {
        // The write of 2 completed before the read began, yet the read saw 1.
        let history = """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 0, :type :invoke, :f :write, :value 2}
        {:process 0, :type :ok, :f :write, :value 2}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 1}
        """
        let found = try XCTUnwrap(failure(try verdict(.register, history)))
        XCTAssertEqual(found.culprit?.function, .read)
        XCTAssertTrue(found.explanation.contains(":f :read"), found.explanation)
    }

    func testConcurrentOperationsMayTakeEffectInEitherOrder() throws {
        // The read overlaps the write: seeing the old or the new value are both fine.
        for seen in ["nil", "5"] {
            let history = """
            {:process 0, :type :invoke, :f :write, :value 5}
            {:process 1, :type :invoke, :f :read, :value nil}
            {:process 1, :type :ok, :f :read, :value \(seen)}
            {:process 0, :type :ok, :f :write, :value 5}
            """
            XCTAssertTrue(isLinearizable(try verdict(.register, history)), "read \(seen)")
        }
    }

    func testALostWriteIsNotLinearizable() throws {
        // A write of 3 was acknowledged, then every later read sees the older 2.
        let history = """
        [{:process 0, :type :invoke, :f :write, :value 2}
         {:process 0, :type :ok, :f :write, :value 2}
         {:process 1, :type :invoke, :f :write, :value 3}
         {:process 1, :type :ok, :f :write, :value 3}
         {:process 2, :type :invoke, :f :read, :value nil}
         {:process 2, :type :ok, :f :read, :value 2}]
        """
        XCTAssertNotNil(failure(try verdict(.cas_or_register, history)))
    }

    func testSplitBrainReadsAreNotLinearizable() throws {
        // Two leaders accept different writes; clients then read both values, alternating.
        let history = """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 1, :type :invoke, :f :write, :value 2}
        {:process 1, :type :ok, :f :write, :value 2}
        {:process 2, :type :invoke, :f :read, :value nil}
        {:process 2, :type :ok, :f :read, :value 2}
        {:process 3, :type :invoke, :f :read, :value nil}
        {:process 3, :type :ok, :f :read, :value 1}
        """
        XCTAssertNotNil(failure(try verdict(.register, history)))
    }

    func testAnIndeterminateWriteMayOrMayNotHaveHappened() throws {
        let happened = """
        {:process 0, :type :invoke, :f :write, :value 7}
        {:process 0, :type :info, :f :write, :value 7}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 7}
        """
        XCTAssertTrue(isLinearizable(try verdict(.register, happened)))
        let didNot = happened.replacingOccurrences(of: ":ok, :f :read, :value 7", with: ":ok, :f :read, :value nil")
        XCTAssertTrue(isLinearizable(try verdict(.register, didNot)))
        // An invocation that never completed is indeterminate too.
        let unanswered = """
        {:process 0, :type :invoke, :f :write, :value 7}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 7}
        """
        XCTAssertTrue(isLinearizable(try verdict(.register, unanswered)))
    }

    func testAFailedWriteDidNotHappen() throws {
        let history = """
        {:process 0, :type :invoke, :f :write, :value 7}
        {:process 0, :type :fail, :f :write, :value 7}
        {:process 1, :type :invoke, :f :read, :value nil}
        {:process 1, :type :ok, :f :read, :value 7}
        """
        XCTAssertNotNil(failure(try verdict(.register, history)), "a read cannot see a write that failed")
    }

    func testCompareAndSet() throws {
        let good = """
        {:process 0, :type :invoke, :f :write, :value 1}
        {:process 0, :type :ok, :f :write, :value 1}
        {:process 1, :type :invoke, :f :cas, :value [1 2]}
        {:process 1, :type :ok, :f :cas, :value [1 2]}
        {:process 0, :type :invoke, :f :read, :value nil}
        {:process 0, :type :ok, :f :read, :value 2}
        """
        XCTAssertTrue(isLinearizable(try verdict(.casRegister, good)))
        let bad = good.replacingOccurrences(of: "[1 2]", with: "[5 2]")
        XCTAssertNotNil(failure(try verdict(.casRegister, bad)), "cas from 5 cannot succeed on 1")
    }

    func testKeysAreCheckedIndependentlyAndTheFailingKeyIsNamed() throws {
        let history = """
        {:process 0, :type :invoke, :f :write, :value [:x 1]}
        {:process 0, :type :ok, :f :write, :value [:x 1]}
        {:process 1, :type :invoke, :f :write, :value [:y 1]}
        {:process 1, :type :ok, :f :write, :value [:y 1]}
        {:process 1, :type :invoke, :f :read, :value [:y nil]}
        {:process 1, :type :ok, :f :read, :value [:y 9]}
        {:process 0, :type :invoke, :f :read, :value [:x nil]}
        {:process 0, :type :ok, :f :read, :value [:x 1]}
        """
        let found = try XCTUnwrap(failure(try verdict(.kv, history)))
        XCTAssertEqual(found.key, .keyword("y"))
        XCTAssertEqual(found.operations.count, 2)
    }

    func testKeyValueHistoriesWithGetPutAndAppend() throws {
        // Porcupine's key-value histories: :get, :put, and :append of a string to the value; a
        // key never written reads as "". Two appends run concurrently, so either order is fine.
        let history = """
        {:process 0, :type :invoke, :f :get, :key "k", :value nil}
        {:process 0, :type :ok, :f :get, :key "k", :value ""}
        {:process 0, :type :invoke, :f :append, :key "k", :value "a"}
        {:process 1, :type :invoke, :f :append, :key "k", :value "b"}
        {:process 0, :type :ok, :f :append, :key "k", :value "a"}
        {:process 1, :type :ok, :f :append, :key "k", :value "b"}
        {:process 2, :type :invoke, :f :get, :key "k", :value nil}
        {:process 2, :type :ok, :f :get, :key "k", :value "ba"}
        {:process 0, :type :invoke, :f :put, :key "j", :value "x"}
        {:process 0, :type :ok, :f :put, :key "j", :value "x"}
        {:process 1, :type :invoke, :f :append, :key "j", :value "y"}
        {:process 1, :type :ok, :f :append, :key "j", :value "y"}
        {:process 2, :type :invoke, :f :get, :key "j", :value nil}
        {:process 2, :type :ok, :f :get, :key "j", :value "xy"}
        """
        XCTAssertTrue(isLinearizable(try verdict(.kv, history)))
        // An append lost: the read after both saw only one.
        let lost = try XCTUnwrap(failure(try verdict(.kv, history.replacingOccurrences(of: ":value \"xy\"", with: ":value \"y\""))))
        XCTAssertEqual(lost.key, .string("j"))
        // An empty read after a write is stale.
        XCTAssertNotNil(failure(try verdict(.kv, history.replacingOccurrences(of: ":value \"ba\"", with: ":value \"\""))))
        // An append of something other than a string is refused, not judged.
        XCTAssertThrowsError(try HistoryModel.kv.operations(from: "{:process 0, :type :invoke, :f :append, :key \"k\", :value 5}")) { error in
            XCTAssertEqual((error as? HistoryError)?.line, 1, "\(error)")
        }
        // Only the kv model appends.
        XCTAssertThrowsError(try HistoryModel.casRegister.operations(from: history.replacingOccurrences(of: ":key \"k\", ", with: "")
            .replacingOccurrences(of: ":key \"j\", ", with: "")))
    }

    func testMutexAndMultiRegisterModels() throws {
        // Two acquires that both succeed with no release between: the lock was held twice.
        let mutex = """
        {:process 0, :type :invoke, :f :acquire, :value nil}
        {:process 0, :type :ok, :f :acquire, :value nil}
        {:process 1, :type :invoke, :f :release, :value nil}
        {:process 1, :type :fail, :f :release, :error :not-held}
        {:process 2, :type :invoke, :f :acquire, :value nil}
        {:process 2, :type :ok, :f :acquire, :value nil}
        """
        XCTAssertNotNil(failure(try verdict(.mutex, mutex)))
        // With process 1's release done (even only perhaps), the second acquire may follow it.
        XCTAssertTrue(isLinearizable(try verdict(.mutex, mutex.replacingOccurrences(of: ":type :fail, :f :release", with: ":type :info, :f :release"))))
        // Registers read and written together; the first read of x says what it held.
        let registers = """
        {:process 0, :type :invoke, :f :txn, :value [[:read :x nil] [:write :y 2]]}
        {:process 0, :type :ok, :f :txn, :value [[:read :x 0] [:write :y 2]]}
        {:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}
        {:process 1, :type :ok, :f :txn, :value [[:read :x 0] [:read :y 2]]}
        """
        XCTAssertTrue(isLinearizable(try verdict(.multiRegister, registers)))
        // y was 2 before the second transaction began: reading the old y with the same x is stale.
        XCTAssertNotNil(failure(try verdict(.multiRegister, registers.replacingOccurrences(of: "[:read :y 2]", with: "[:read :y 5]"))))
        XCTAssertNotNil(failure(try verdict(.multiRegister, registers.replacingOccurrences(of: "[[:read :x 0] [:read :y 2]]", with: "[[:read :x 1] [:read :y 2]]"))))
        XCTAssertThrowsError(try HistoryModel.multiRegister.operations(from: "{:process 0, :type :invoke, :f :txn, :value [[:append :x 1]]}")) { error in
            XCTAssertEqual((error as? HistoryError)?.line, 1, "\(error)")
        }
    }

    func testQueueModels() throws {
        // 1 then 2 enqueued one after the other; a dequeue gets 2 first.
        let history = """
        {:process 0, :type :invoke, :f :enqueue, :value 1}
        {:process 0, :type :ok, :f :enqueue, :value 1}
        {:process 0, :type :invoke, :f :enqueue, :value 2}
        {:process 0, :type :ok, :f :enqueue, :value 2}
        {:process 1, :type :invoke, :f :dequeue, :value nil}
        {:process 1, :type :ok, :f :dequeue, :value 2}
        {:process 1, :type :invoke, :f :dequeue, :value nil}
        {:process 1, :type :ok, :f :dequeue, :value 1}
        """
        XCTAssertNotNil(failure(try verdict(.fifoQueue, history)), "first in, first out")
        XCTAssertTrue(isLinearizable(try verdict(.unorderedQueue, history)))
        // Dequeued in the order enqueued, the FIFO queue is fine too.
        let inOrder = history.replacingOccurrences(of: ":ok, :f :dequeue, :value 2", with: ":ok, :f :dequeue, :value X")
            .replacingOccurrences(of: ":ok, :f :dequeue, :value 1", with: ":ok, :f :dequeue, :value 2")
            .replacingOccurrences(of: ":ok, :f :dequeue, :value X", with: ":ok, :f :dequeue, :value 1")
        XCTAssertTrue(isLinearizable(try verdict(.fifoQueue, inOrder)))
        // An element dequeued twice; a dequeue finding the queue empty (nil) while 1 is in it.
        XCTAssertNotNil(failure(try verdict(.unorderedQueue, history.replacingOccurrences(of: ":ok, :f :dequeue, :value 1", with: ":ok, :f :dequeue, :value 2"))))
        XCTAssertNotNil(failure(try verdict(.unorderedQueue, history.replacingOccurrences(of: ":ok, :f :dequeue, :value 1", with: ":ok, :f :dequeue, :value nil"))))
        // A dequeue of unknown outcome may have taken the head.
        let crashed = history.replacingOccurrences(of: "{:process 1, :type :ok, :f :dequeue, :value 2}", with: "{:process 1, :type :info, :f :dequeue, :value nil}")
            .replacingOccurrences(of: "{:process 1, :type :invoke, :f :dequeue, :value nil}\n{:process 1, :type :ok, :f :dequeue, :value 1}",
                                  with: "{:process 2, :type :invoke, :f :dequeue, :value nil}\n{:process 2, :type :ok, :f :dequeue, :value 2}")
        XCTAssertTrue(isLinearizable(try verdict(.fifoQueue, crashed)))
    }

    func testSetAndCounterModels() throws {
        let set = """
        {"process": 0, "type": "invoke", "f": "add", "value": 1}
        {"process": 0, "type": "ok", "f": "add", "value": 1}
        {"process": 1, "type": "invoke", "f": "add", "value": 2}
        {"process": 1, "type": "ok", "f": "add", "value": 2}
        {"process": 2, "type": "invoke", "f": "read", "value": null}
        {"process": 2, "type": "ok", "f": "read", "value": [2, 1]}
        """
        XCTAssertTrue(isLinearizable(try verdict(.set, set)))
        XCTAssertNotNil(failure(try verdict(.set, set.replacingOccurrences(of: "[2, 1]", with: "[2]"))), "a lost add")
        let counter = """
        {:process 0, :type :invoke, :f :add, :value 5}
        {:process 1, :type :invoke, :f :add, :value 3}
        {:process 0, :type :ok, :f :add, :value 5}
        {:process 1, :type :ok, :f :add, :value 3}
        {:process 2, :type :invoke, :f :read}
        {:process 2, :type :ok, :f :read, :value 8}
        """
        XCTAssertTrue(isLinearizable(try verdict(.counter, counter)))
        XCTAssertNotNil(failure(try verdict(.counter, counter.replacingOccurrences(of: ":value 8", with: ":value 5"))))
    }

    func testMalformedHistoriesAreErrorsWithLineNumbers() {
        for (text, line) in [("{:process 0, :type :invoke, :f :write, :value 1", 1),
                             ("{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :read, :value 1}", 2),
                             ("{:process 0, :type :ok, :f :write, :value 1}", 1),
                             ("{:process 0, :type :launch, :f :write}", 1),
                             ("\n\n{:process 0 :type}", 3)] {
            XCTAssertThrowsError(try HistoryModel.register.operations(from: text), text) { error in
                XCTAssertEqual((error as? HistoryError)?.line, line, "\(text): \(error)")
            }
        }
    }

    func testNamedProcessesAreClientsAndTheNemesisIsLeftOut() throws {
        // A stale read by processes named with strings and keywords: each name is a client.
        let edn = """
        {:process :nemesis, :type :info, :f :start, :value nil}
        {:process "c0", :type :invoke, :f :write, :value 3}
        {:process "c0", :type :ok, :f :write, :value 3}
        {:process :c1, :type :invoke, :f :read, :value nil}
        {:process :c1, :type :ok, :f :read, :value 5}
        """
        XCTAssertEqual(try HistoryModel.register.operations(from: edn).count, 2)
        XCTAssertNotNil(failure(try verdict(.register, edn)))
        let jsonLines = """
        {"process": "c0", "type": "invoke", "f": "write", "value": 3}
        {"process": "c0", "type": "ok", "f": "write", "value": 3}
        {"process": "c1", "type": "invoke", "f": "read", "value": null}
        {"process": "c1", "type": "ok", "f": "read", "value": 5}
        {"process": "nemesis", "type": "info", "f": "stop", "value": null}
        """
        XCTAssertNotNil(failure(try verdict(.register, jsonLines)))
        XCTAssertNotNil(failure(try verdict(.register, jsonLines.replacingOccurrences(of: "\n", with: "\r\n"))), "Windows line ends")
        XCTAssertTrue(isLinearizable(try verdict(.register, jsonLines.replacingOccurrences(of: "\"value\": 5", with: "\"value\": 3"))))
    }

    func testJepsenHistoriesAsRecentJepsenWritesThem() throws {
        // Tagged records, a partition nemesis whose value is a map, discarded forms, a float in a
        // field the checker does not use, and a string :type; the read of 5 is stale.
        let edn = """
        [#jepsen.history.Op{:index 0, :time 10, :type :invoke, :process 0, :f :write, :value 3}
         #jepsen.history.Op{:index 1, :time 20, :type :ok, :process 0, :f :write, :value 3, :latency 0.25}
         {:process :nemesis, :type :info, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}]}
         #_{:process 9, :type :invoke, :f :write, :value 7}
         {:process 1, :type "invoke", :f :read, :value nil}
         {:process 1, :type :ok, :f :read, :value 5}]
        """
        XCTAssertEqual(try HistoryModel.register.operations(from: edn).count, 2)
        XCTAssertNotNil(failure(try verdict(.register, edn)))
        XCTAssertTrue(isLinearizable(try verdict(.register, edn.replacingOccurrences(of: ":value 5", with: ":value 3"))))
        // In a history written as one vector, an error names the operation's own line.
        XCTAssertThrowsError(try HistoryModel.register.operations(from: edn.replacingOccurrences(of: ":type :ok, :f :read", with: ":f :read"))) { error in
            XCTAssertEqual((error as? HistoryError)?.line, 6, "\(error)")
        }
        // A process named by a string never shares a number with an integer process.
        let named = """
        {:process -1, :type :invoke, :f :write, :value 1}
        {:process "c1", :type :invoke, :f :write, :value 2}
        {:process -1, :type :ok, :f :write, :value 1}
        {:process "c1", :type :ok, :f :write, :value 2}
        """
        XCTAssertEqual(try HistoryModel.register.operations(from: named).count, 2)
    }

    func testJepsensTextHistoryAndLogLinesAreRead() throws {
        // A test's log: its other lines are passed over, the nemesis is left out, a timed-out
        // write stays indeterminate (its :info line carries the error where the value goes),
        // and a failed CAS did not happen. The read of 4 needs the timed-out write of 4.
        let log = [
            "2017-03-01 10:00:00,000{GMT}\tINFO\t[jepsen worker 0] jepsen.core: Running test",
            "INFO  jepsen.util - 0\t:invoke\t:write\t3",
            "INFO  jepsen.util - 0\t:ok\t:write\t3",
            "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
            "INFO  jepsen.util - 1\t:invoke\t:write\t4",
            "INFO  jepsen.util - 1\t:info\t:write\t:timed-out",
            "INFO  jepsen.util - 2\t:invoke\t:cas\t[4 1]",
            "INFO  jepsen.util - 2\t:fail\t:cas\t[4 1]",
            "INFO  jepsen.util - 3\t:invoke\t:read\tnil",
            "INFO  jepsen.util - 3\t:ok\t:read\t4",
        ].joined(separator: "\n")
        XCTAssertEqual(try HistoryModel.casRegister.operations(from: log).count, 3)
        XCTAssertTrue(isLinearizable(try verdict(.casRegister, log)))
        // Without the timed-out write, the read of 4 is impossible; the failure names its lines.
        let lost = log.replacingOccurrences(of: ":write\t4", with: ":write\t5")
        let found = try XCTUnwrap(failure(try verdict(.casRegister, lost)))
        XCTAssertTrue(found.culprit?.source.contains("9") ?? false, found.explanation)
        // history.txt: no log prefix, an error in a fifth field, Windows line ends.
        let text = "0\t:invoke\t:cas\t[1 2]\r\n0\t:info\t:cas\t[1 2]\t:timed-out\r\n1\t:invoke\t:read\tnil\r\n1\t:ok\t:read\t2\r\n"
        XCTAssertEqual(try HistoryModel.casRegister.operations(from: text).count, 2)
        XCTAssertNotNil(failure(try verdict(.casRegister, text)), "nothing ever held 1, so the CAS to 2 could not happen")
        // Fields separated by spaces, as some logs have them; an EDN map is not such a line.
        let spaced = log.replacingOccurrences(of: "\t", with: "   ")
        XCTAssertEqual(try HistoryModel.casRegister.operations(from: spaced).count, 3)
        XCTAssertNotNil(failure(try verdict(.casRegister, spaced.replacingOccurrences(of: ":write   4", with: ":write   5"))))
        XCTAssertFalse(HistoryParser.looksLikeJepsenLog("{:process 0 :type :invoke :f :read :value nil}"))
        XCTAssertFalse(HistoryParser.looksLikeJepsenLog("[{:process 0\n :type :invoke :f :read :value nil}]"))
        // A log whose operations begin after a long preamble.
        let preamble = (0..<500).map { "INFO  jepsen.core - setting up node n\($0 % 5)" }.joined(separator: "\n")
        XCTAssertEqual(try HistoryModel.casRegister.operations(from: preamble + "\n" + log).count, 3)
        // A value that is not EDN is an error on its line.
        XCTAssertThrowsError(try HistoryModel.register.operations(from: "0\t:invoke\t:write\t{:a\n")) { error in
            XCTAssertEqual((error as? HistoryError)?.line, 1, "\(error)")
        }
    }

    func testOperationsWrittenAsTuplesAreRead() throws {
        // Older Knossos histories: [process type f value], an error perhaps after it, one per
        // line or all in one vector. The failed read and the failed CAS did not happen.
        let lines = """
        [0 :invoke :write 1]
        [0 :ok :write 1]
        [1 :invoke :read nil]
        [1 :fail :read nil :conn-lost]
        [2 :invoke :cas [1 2]]
        [2 :ok :cas [1 2]]
        [1 :invoke :read nil]
        [1 :ok :read 1]
        """
        XCTAssertEqual(try HistoryModel.casRegister.operations(from: lines).count, 3)
        XCTAssertNotNil(failure(try verdict(.casRegister, lines)), "the read of 1 after the CAS to 2 completed is stale")
        let vector = "[" + lines.replacingOccurrences(of: "[1 :ok :read 1]", with: "[1 :ok :read 2]") + "]"
        XCTAssertTrue(isLinearizable(try verdict(.casRegister, vector)))
    }

    func testJSONValuesKeepTheirTypes() throws {
        func history(_ written: String, _ read: String) -> String {
            """
            {"process": 0, "type": "invoke", "f": "write", "value": \(written)}
            {"process": 0, "type": "ok", "f": "write", "value": \(written)}
            {"process": 1, "type": "invoke", "f": "read", "value": null}
            {"process": 1, "type": "ok", "f": "read", "value": \(read)}
            """
        }
        // true is not 1, false is not 0, and 2⁵³+1 is not 2⁵³.
        for (written, read) in [("true", "1"), ("false", "0"), ("9007199254740993", "9007199254740992")] {
            XCTAssertNotNil(failure(try verdict(.register, history(written, read))), "\(written) read as \(read)")
            XCTAssertTrue(isLinearizable(try verdict(.register, history(written, written))), written)
        }
        // A float is refused, not rounded.
        XCTAssertThrowsError(try HistoryModel.register.operations(from: history("2", "2.0")))
        // A JSON array of the same objects, and a nemesis entry whose value is an object.
        let array = "[" + history("3", "3").split(separator: "\n").joined(separator: ",\n")
            + ",\n{\"process\": \"nemesis\", \"type\": \"info\", \"f\": \"kill\", \"value\": {\"n1\": \"dead\"}}]"
        XCTAssertTrue(isLinearizable(try verdict(.register, array)))
    }

    func testOperationsTheModelLacksAndEmptyHistoriesAreRefused() {
        let cas = "{:process 0, :type :invoke, :f :cas, :value [1 2]}\n{:process 0, :type :info, :f :cas, :value [1 2]}"
        XCTAssertThrowsError(try HistoryModel.register.operations(from: cas)) { error in
            let message = (error as? HistoryError)?.description ?? ""
            XCTAssertTrue(message.contains("cas-register") && message.hasPrefix("line 1"), message)
        }
        XCTAssertNoThrow(try HistoryModel.casRegister.operations(from: cas))
        let write = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}"
        XCTAssertThrowsError(try HistoryModel.set.operations(from: write))
        XCTAssertThrowsError(try HistoryModel.counter.operations(from: write))
        let keyed = "{:process 0, :type :invoke, :f :write, :key :x, :value 1}\n{:process 0, :type :ok, :f :write, :key :x, :value 1}"
        XCTAssertThrowsError(try HistoryModel.casRegister.operations(from: keyed))
        XCTAssertNoThrow(try HistoryModel.kv.operations(from: keyed))
        for text in ["", "  \n", "{:process :nemesis, :type :info, :f :start, :value nil}"] {
            XCTAssertThrowsError(try HistoryModel.register.operations(from: text), "'\(text)'")
        }
    }

    func testGeneratedHistoriesAreJudgedCorrectlyAndQuickly() {
        let generator = HistoryGenerator(clients: 10, keys: 10, operations: 2_000, seed: 4)
        XCTAssertTrue(isLinearizable(HistoryModel.kv.check(generator.generate(violation: false))))
        XCTAssertNotNil(failure(HistoryModel.kv.check(generator.generate(violation: true))))
    }

    func testReadsWithUnknownResultsDoNotCostTheSearch() throws {
        // Twenty-four reads whose results nobody saw, open across a stale read: each could take
        // effect anywhere (2^24 orders to rule out). They constrain nothing, so the search drops
        // them and finds the stale read within a few steps.
        var lines = ["{:process 0, :type :invoke, :f :write, :value 1}", "{:process 0, :type :ok, :f :write, :value 1}"]
        for process in 2..<26 { lines.append("{:process \(process), :type :invoke, :f :read, :value nil}") }
        lines += ["{:process 0, :type :invoke, :f :write, :value 2}", "{:process 0, :type :ok, :f :write, :value 2}",
                  "{:process 1, :type :invoke, :f :read, :value nil}", "{:process 1, :type :ok, :f :read, :value 1}"]
        for process in 2..<26 { lines.append("{:process \(process), :type :info, :f :read, :value nil}") }
        let operations = try HistoryModel.register.operations(from: lines.joined(separator: "\n"))
        let found = try XCTUnwrap(failure(HistoryModel.register.check(operations, checker: LinearizabilityChecker(maxSteps: 1_000))))
        XCTAssertEqual(found.culprit?.process, 1)
        XCTAssertEqual(found.operations.count, 3, "the open reads are not part of the search")
    }

    func testABudgetTooSmallAnswersUnknown() {
        let operations = HistoryGenerator(clients: 10, keys: 1, operations: 300, seed: 2).generate(violation: false)
        if case .unknown = HistoryModel.kv.check(operations, checker: LinearizabilityChecker(maxSteps: 50)) {} else {
            XCTFail("expected unknown")
        }
    }
}

extension HistoryModel {
    /// The lost-write example holds for plain and compare-and-set registers alike.
    static let cas_or_register = HistoryModel.casRegister
}
