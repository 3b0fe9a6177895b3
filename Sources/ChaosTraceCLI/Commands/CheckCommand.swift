import ArgumentParser
import Checkers
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a client history for linearizability, or a transactional one for anomalies as Elle does.",
        discussion: """
        A history is a sequence of operations like {:process 0, :type :invoke, :f :write, :value 3} \
        followed by its completion (:ok, :fail — it did not happen — or :info — it may have). \
        A read of nil matches any value. For --model kv, values are [key value] pairs (or ops carry \
        :key), and each key is checked on its own; it also has :get, :put and :append (of a \
        string to the value, a key never written reading as ""), as Porcupine's key-value \
        histories say. --model mutex has :acquire and :release; --model multi-register has \
        :txn operations of [:read k v] and [:write k v] steps, a register's first read saying \
        what it held. --model fifo-queue and unordered-queue have :enqueue x and :dequeue \
        returning the element taken (nil: empty). EDN comes one map per line or as one vector (or as tuples, [process type f value]); \
        tagged records (#jepsen.history.Op{...}) and #_ discards are read, and the nemesis's \
        entries are left out. JSON comes one object per line or as one array. Jepsen's text \
        history has a line per operation: process, type, function and value, separated by tabs or spaces \
        (history.txt; or a test's log, whose other lines are passed over). Values are \
        integers, booleans, strings, keywords and vectors of them; a float is refused.

        --model list-append and rw-register read transactions, :f :txn with a :value of steps \
        [[:append k v] [:r k [v ...]]] (or [:w k v] and [:r k v]), every value written once per \
        key, and look for the anomalies --consistency-model forbids (default strict-serializable), \
        named as Elle names them: garbage-read, duplicate-elements, G0 (always); G1a, G1b, \
        future-read, incompatible-order, G1c (from read-committed); internal, G-single, G2 (from \
        serializable); cycles through real time, -realtime (strict-serializable).

        Exits 0 when linearizable (valid), 1 when not, 2 when the search budget ran out, 65 \
        when the history cannot be read.
        """)

    enum ModelChoice: String, ExpressibleByArgument, CaseIterable {
        case register, casRegister = "cas-register", kv, set, counter, mutex, multiRegister = "multi-register"
        case fifoQueue = "fifo-queue", unorderedQueue = "unordered-queue"
        case listAppend = "list-append", rwRegister = "rw-register"
    }

    @Option(help: "register, cas-register, kv, set, counter, mutex, multi-register, fifo-queue or unordered-queue (linearizability); list-append or rw-register (transactions).")
    var model: ModelChoice
    @Option(help: ArgumentHelp("For list-append and rw-register: read-uncommitted, read-committed, serializable or strict-serializable.",
                               valueName: "MODEL"))
    var consistencyModel: String?
    @Argument(help: "The history file ('-' for standard input).") var history: String
    @Option(parsing: .unconditional, help: "Search steps before answering unknown (linearizability models).") var maxSteps: Int = 20_000_000
    @Option(help: ArgumentHelp("For register, cas-register and kv: the value before the history (of every key), in EDN, e.g. 0 as Knossos's tests start (default: nil, never written).",
                               valueName: "VALUE"))
    var initial: String?
    @Flag(help: "Print the verdict as JSON.") var json = false

    func validate() throws {
        guard maxSteps > 0 else { throw ValidationError("--max-steps must be at least 1") }
        if let initial {
            guard HistoryModel(rawValue: model.rawValue)?.hasInitialValue == true else {
                throw ValidationError("--initial is for the models register, cas-register and kv, not \(model.rawValue)")
            }
            do { _ = try HistoryParser.parseValue(initial) } catch { throw ValidationError("--initial: \(error)") }
        }
        if let consistencyModel {
            guard TransactionModel(rawValue: model.rawValue) != nil else {
                throw ValidationError("--consistency-model is for the transaction models list-append and rw-register, not \(model.rawValue)")
            }
            guard ConsistencyModel(rawValue: consistencyModel) != nil else {
                throw ValidationError("--consistency-model must be one of \(ConsistencyModel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
    }

    func run() throws {
        try reportingErrors {
            do {
                try check()
            } catch let failure as CommandFailure where json && failure.exitCode == Exit.badData {
                // A script reading --json gets its answer on standard output too.
                print("{\"verdict\":\"unreadable\",\"model\":\"\(model.rawValue)\",\"history\":\(JSON.string(history)),\"reason\":\(JSON.string(failure.message))}")
                throw failure
            }
        }
    }

    private func check() throws {
        let text: String
        if history == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let handle = FileHandle(forReadingAtPath: history) else {
                let reason = FileManager.default.fileExists(atPath: history) ? "it is not readable" : "no such file"
                throw CommandFailure(message: "cannot read \(history): \(reason)", exitCode: Exit.badData)
            }
            defer { try? handle.close() }
            guard let data = try? handle.readToEnd() ?? Data() else {
                throw CommandFailure(message: "cannot read \(history) (a directory?); give a history file", exitCode: Exit.badData)
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw CommandFailure(message: "\(history) is not UTF-8 text; a history is EDN, JSON or Jepsen's text history", exitCode: Exit.badData)
            }
            text = decoded
        }
        if let transactionModel = TransactionModel(rawValue: model.rawValue) {
            try checkTransactions(text, model: transactionModel)
            return
        }
        let historyModel = HistoryModel(rawValue: model.rawValue)!
        let operations: [HistoryOperation]
        do {
            operations = try historyModel.operations(from: text)
        } catch let error as HistoryError {
            throw CommandFailure(message: "\(history): \(error); fix the history and try again", exitCode: Exit.badData)
        }
        let start = try initial.map { try HistoryParser.parseValue($0) } ?? .none
        let verdict = historyModel.check(operations, checker: LinearizabilityChecker(maxSteps: maxSteps), initial: start)
        try Self.report(verdict, operations: operations.count, model: model.rawValue, json: json)
    }

    /// Checks a transactional history as Elle does; exits 0 when it has no anomaly the
    /// consistency model forbids, 1 when it has.
    private func checkTransactions(_ text: String, model: TransactionModel) throws {
        let consistency = consistencyModel.flatMap(ConsistencyModel.init(rawValue:)) ?? .strictSerializable
        let checker = TransactionHistoryChecker(model: model, consistency: consistency)
        let transactions: [HistoryTransaction]
        do {
            transactions = try checker.transactions(from: text)
        } catch let error as HistoryError {
            throw CommandFailure(message: "\(history): \(error); fix the history and try again", exitCode: Exit.badData)
        }
        let count = "\(transactions.count) transaction\(transactions.count == 1 ? "" : "s")"
        let anomalies = checker.anomalies(transactions)
        guard let found = anomalies.first else {
            if json {
                print("{\"verdict\":\"valid\",\"transactions\":\(transactions.count),\"model\":\"\(model.rawValue)\",\"consistency_model\":\"\(consistency.rawValue)\"}")
            } else {
                print("valid: \(count), model \(model.rawValue), \(consistency.rawValue)")
            }
            return
        }
        if json {
            let involved = found.transactions.map { JSON.string($0.edn) }.joined(separator: ",")
            print("{\"verdict\":\"invalid\",\"transactions\":\(transactions.count),\"model\":\"\(model.rawValue)\",\"consistency_model\":\"\(consistency.rawValue)\","
                  + "\"anomaly\":\(JSON.string(found.name)),\"anomaly_types\":[\(anomalies.map { JSON.string($0.name) }.joined(separator: ","))],"
                  + "\"reason\":\(JSON.string(found.explanation)),\"involved\":[\(involved)]}")
        } else {
            print("NOT \(consistency.rawValue) (model \(model.rawValue), \(count)): \(found.name): \(found.explanation)")
            for transaction in found.transactions { print("  \(transaction.edn)  ; \(transaction.lines)") }
            for other in anomalies.dropFirst() { print("also \(other.name): \(other.explanation)") }
        }
        throw ExitCode(Exit.violation)
    }

    /// Prints a verdict and ends with its exit code (0, 1 or 2).
    static func report(_ verdict: LinearizabilityVerdict, operations: Int, model: String, json: Bool) throws {
        switch verdict {
        case .linearizable:
            if json {
                print("{\"verdict\":\"linearizable\",\"operations\":\(operations),\"model\":\"\(model)\"}")
            } else {
                print("linearizable: \(operations) operation\(operations == 1 ? "" : "s"), model \(model)")
            }
        case .notLinearizable(let failure):
            if json {
                let ops = failure.operations.map { JSON.string($0.edn) }.joined(separator: ",")
                print("{\"verdict\":\"not-linearizable\",\"operations\":\(operations),\"model\":\"\(model)\",\"key\":\(failure.key.map { JSON.string($0.description) } ?? "null"),\"reason\":\(JSON.string(failure.explanation)),\"partition\":[\(ops)]}")
            } else {
                print("NOT linearizable (model \(model)): \(failure.explanation)")
                print("smallest failing partition\(failure.key.map { " (key \($0))" } ?? ""), \(failure.operations.count) operation\(failure.operations.count == 1 ? "" : "s"):")
                // A long partition: the operations around the one that could not take effect.
                var shown = Array(failure.operations.indices)
                if shown.count > 60 {
                    let center = failure.culprit.flatMap { culprit in failure.operations.firstIndex { $0.invocation == culprit.invocation } } ?? 0
                    let start = max(0, min(center - 30, failure.operations.count - 60))
                    shown = Array(start..<(start + 60))
                }
                if let first = shown.first, first > 0 { print("  … \(first) earlier operation\(first == 1 ? "" : "s") (--json lists them all)") }
                for index in shown { print("  \(failure.operations[index].edn)  ; \(failure.operations[index].source)") }
                if let last = shown.last, last < failure.operations.count - 1 {
                    let more = failure.operations.count - 1 - last
                    print("  … \(more) later operation\(more == 1 ? "" : "s") (--json lists them all)")
                }
            }
            throw ExitCode(Exit.violation)
        case .unknown(let reason):
            if json {
                print("{\"verdict\":\"unknown\",\"operations\":\(operations),\"model\":\"\(model)\",\"reason\":\(JSON.string(reason))}")
            } else {
                print("unknown: \(reason); raise --max-steps or check a shorter history")
            }
            throw ExitCode(Exit.unknown)
        }
    }
}
