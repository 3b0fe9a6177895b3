import Simulation

/// The systems under test that ship with ChaosTrace, by name.
public enum SystemRegistry {
    public static let all: [SystemDefinition.Type] = [EchoSystem.self, RaftSystem.self, CRDTSystem.self, BlockStoreSystem.self, BFTSystem.self]

    public static func named(_ name: String) -> SystemDefinition.Type? {
        all.first { $0.name == name }
    }

    /// The system that plants `bug`.
    public static func owning(bug: String) -> SystemDefinition.Type? {
        all.first { $0.bugs.contains(bug) }
    }
}
