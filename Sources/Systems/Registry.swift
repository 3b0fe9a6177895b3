import ProcessNodes
import Simulation

/// The systems under test that ship with ChaosTrace, by name.
public enum SystemRegistry {
    public static let all: [SystemDefinition.Type] = [EchoSystem.self, RaftSystem.self, CRDTSystem.self, BlockStoreSystem.self, BFTSystem.self]

    /// A system by name: one of `all`, or `external` (nodes run by `--node-cmd`).
    public static func named(_ name: String) -> SystemDefinition.Type? {
        if name == ExternalSystem.name { return ExternalSystem.self }
        return all.first { $0.name == name }
    }

    /// The system that plants `bug`.
    public static func owning(bug: String) -> SystemDefinition.Type? {
        all.first { $0.bugs.contains(bug) }
    }
}
