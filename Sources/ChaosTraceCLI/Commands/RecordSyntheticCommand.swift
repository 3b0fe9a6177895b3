import ArgumentParser
import Foundation
import TraceStore

/// Records a synthetic stream as a run. Used by tests (it can be killed mid-run) and to make
/// sample stores; hidden from help.
struct RecordSyntheticCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record-synthetic",
        abstract: "Record a synthetic event stream as a run (for tests and demos).",
        shouldDisplay: false)

    @OptionGroup var storeOptions: StoreOptions
    @Option(parsing: .unconditional, help: "Events to record.") var events: UInt64 = 100_000
    @Option(parsing: .unconditional, help: "Seed of the synthetic stream.") var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Raw chunk size in bytes.") var chunkSize: Int = TraceStore.Options().chunkSize
    @Option(parsing: .unconditional, help: "Pause this many microseconds after each committed chunk (to be killed mid-run).") var pauseMicroseconds: UInt32 = 0
    @Flag(help: "Leave the run unfinished and exit (simulates a writer that stopped).") var noFinish = false

    func run() throws {
        try reportingErrors {
            var options = TraceStore.Options()
            options.chunkSize = chunkSize
            let store = try TraceStore(path: storeOptions.store, options: options)
            let recorder = try store.beginRun(seed: seed, configuration: "{\"synthetic\":true}", toolVersion: ChaosTrace.version)
            var stream = SyntheticTrace(seed: seed)
            var chunks = recorder.info.chunkCount
            for _ in 0..<events {
                try recorder.append(stream.next()!)
                if recorder.info.chunkCount != chunks {
                    chunks = recorder.info.chunkCount
                    print("committed chunk \(chunks - 1) events \(recorder.info.eventCount)")
                    fflush(stdout)
                    if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
                }
            }
            if noFinish { Foundation.exit(0) }
            let info = try recorder.finish(verdict: "pass", virtualEndTime: recorder.info.lastEventTime)
            print("run \(info.id): \(info.eventCount) events")
        }
    }
}
