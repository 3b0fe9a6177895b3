import Simulation
import TraceStore

/// A tiny system whose nodes do only what a test tells them and remember what they saw.
final class ProbeNode: Node {
    let id: NodeID
    let mute: Bool
    var received: [(source: NodeID, message: Message, clock: UInt64)] = []
    var timers: [UInt32] = []

    init(id: NodeID, mute: Bool) {
        self.id = id
        self.mute = mute
    }

    func start(_ context: NodeContext) {}

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        received.append((source, message, context.now))
    }

    func timer(_ tag: UInt32, _ context: NodeContext) { timers.append(tag) }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        if !mute { context.reply(to: request, .ok(request.operation.value)) }
    }

    func stateDigest() -> UInt64 { UInt64(received.count) }
}

struct ProbeSystem: SystemDefinition {
    static let name = "probe"
    static let bugs: [String] = []
    let mute: Bool

    init(configuration: SimulationConfiguration) {
        mute = configuration.options["mute"] == 1
    }

    func makeNode(id: NodeID) -> Node { ProbeNode(id: id, mute: mute) }

    func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        ClientOperation(function: .echo, value: Int64(random(100)))
    }

    func makeCheckers() -> [Checker] { [] }
}

func probeConfiguration(nodes: Int = 5, clients: Int = 0, seed: UInt64 = 1) -> SimulationConfiguration {
    var configuration = SimulationConfiguration()
    configuration.system = ProbeSystem.name
    configuration.nodes = nodes
    configuration.clients = clients
    configuration.seed = seed
    configuration.durationNanoseconds = 10_000_000_000
    configuration.livenessNanoseconds = 1_000_000_000
    configuration.network.latency = .constant(1_000_000)
    configuration.digestIntervalNanoseconds = 0
    return configuration
}

/// A started simulator of probe nodes, recording into a store so tests can read the trace.
final class ProbeHarness {
    let simulator: Simulator
    let store: TraceStore?
    let recorder: RunRecorder?
    let directory: String?

    init(_ configuration: SimulationConfiguration = probeConfiguration(), record: Bool = false) throws {
        if record {
            let directory = NSTemporaryDirectory() + "chaostrace-sim-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            self.directory = directory
            store = try TraceStore(path: directory + "/probe.trace")
            recorder = try store!.beginRun(seed: configuration.seed, configuration: "{}", toolVersion: "test")
        } else {
            directory = nil
            store = nil
            recorder = nil
        }
        simulator = Simulator(configuration: configuration, system: ProbeSystem(configuration: configuration), recorder: recorder)
        simulator.begin()
    }

    deinit {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    func node(_ id: NodeID) -> ProbeNode { simulator.node(id) as! ProbeNode }

    func send(_ message: Message, from source: NodeID, to target: NodeID) {
        _ = simulator.withContext(of: source) { _, context in context.send(message, to: target) }
    }

    /// Runs `milliseconds` more of virtual time.
    func advance(milliseconds: UInt64) {
        simulator.run(until: simulator.time + milliseconds * 1_000_000)
    }

    /// Ends the run and returns every recorded event.
    func finishAndReadTrace() throws -> [Event] {
        _ = simulator.end()
        return try store!.reader(run: recorder!.runID).allEvents()
    }
}

import Foundation
