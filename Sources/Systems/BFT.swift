import Crypto
import Simulation

/// Byzantine fault-tolerant agreement in the PBFT style, n = 3f + 1. Each node proposes client
/// values in its own slots (proposer, k); a slot goes through pre-prepare, prepare and commit; a node
/// decides a value once it holds a certificate of 2f + 1 commits for it, each signed with Ed25519
/// by a distinct node. Every message is signed and every signature checked, so a forged or
/// damaged message is never counted.
///
/// Planted bugs:
/// - `bft.small-quorum`: quorums (and certificates) of 2f instead of 2f + 1.
/// - `bft.skip-signature-check`: signatures are not verified, so forged messages count.
public struct BFTSystem: SystemDefinition {
    public static let name = "bft"
    public static let bugs = ["bft.small-quorum", "bft.skip-signature-check"]
    public static let suites: [Suite] = [.none, .network, .byzantine]

    public static func messageName(_ type: UInt16) -> String? {
        switch UInt8(truncatingIfNeeded: type) {
        case BFTVote.prePrepare: "PrePrepare slot"
        case BFTVote.prepare: "Prepare slot"
        case BFTVote.commit: "Commit slot"
        default: nil
        }
    }
    public static let defaultSuite = Suite.byzantine
    let configuration: SimulationConfiguration
    let keys: BFTKeys
    let monitor: BFTMonitor

    public init(configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.keys = BFTKeys(seed: configuration.seed, nodes: configuration.nodes)
        self.monitor = BFTMonitor(keys: keys, faulty: (configuration.nodes - 1) / 3)
    }

    public static func byzantineTolerance(nodes: Int) -> Int { (nodes - 1) / 3 }
    /// Every decision costs a few dozen signatures: clients pace themselves.
    public static var clientIntervalNanoseconds: UInt64? { 100_000_000 }

    public func makeNode(id: NodeID) -> Node {
        BFTNode(id: id, keys: keys, bug: configuration.bug, monitor: monitor)
    }

    public func nextOperation(client: UInt32, random: (UInt64) -> UInt64) -> ClientOperation {
        ClientOperation(function: .write, key: 0, value: Int64(1 + random(1_000_000)))
    }

    public func makeCheckers() -> [Checker] { [BFTChecker(monitor: monitor)] }

    public var byzantineMutator: ByzantineMutator? { BFTMutator(keys: keys) }
}

/// Deterministic Ed25519 keys per node, derived from the run's seed.
final class BFTKeys: @unchecked Sendable {
    let privateKeys: [Curve25519.Signing.PrivateKey]
    let publicKeys: [Curve25519.Signing.PublicKey]
    /// Digests of (signer, content, signature) already verified valid. A broadcast reaches every
    /// node with the same signature; checking it once is enough, and cannot change any verdict.
    private var verified: Set<UInt64> = []

    init(seed: UInt64, nodes: Int) {
        var privateKeys: [Curve25519.Signing.PrivateKey] = []
        for node in 0..<nodes {
            var bytes: [UInt8] = []
            for word in 0..<4 {
                var digest = StableDigest()
                digest.mix(seed)
                digest.mix(UInt64(node) << 8 | UInt64(word))
                withUnsafeBytes(of: digest.value.littleEndian) { bytes.append(contentsOf: $0) }
            }
            privateKeys.append(try! Curve25519.Signing.PrivateKey(rawRepresentation: bytes))
        }
        self.privateKeys = privateKeys
        self.publicKeys = privateKeys.map(\.publicKey)
    }

    func sign(_ content: [UInt8], by node: NodeID) -> [UInt8] {
        Array(try! privateKeys[Int(node)].signature(for: content))
    }

    func verify(_ signature: [UInt8], of content: [UInt8], by node: NodeID) -> Bool {
        guard Int(node) < publicKeys.count else { return false }
        var digest = StableDigest()
        digest.mix(UInt64(node))
        digest.mix(content)
        digest.mix(signature)
        if verified.contains(digest.value) { return true }
        let valid = publicKeys[Int(node)].isValidSignature(signature, for: content)
        if valid { verified.insert(digest.value) }
        return valid
    }
}

/// A signed protocol message: kind, slot, value, signer and signature.
struct BFTVote: Equatable {
    static let prePrepare: UInt8 = 1
    static let prepare: UInt8 = 2
    static let commit: UInt8 = 3

    var kind: UInt8
    var proposer: NodeID
    var index: UInt64
    var value: Int64
    var signer: NodeID
    var signature: [UInt8]

    var content: [UInt8] {
        var bytes: [UInt8] = [kind]
        ByteWriter.appendVarint(UInt64(proposer), to: &bytes)
        ByteWriter.appendVarint(index, to: &bytes)
        ByteWriter.appendVarint(ByteWriter.zigzag(value), to: &bytes)
        ByteWriter.appendVarint(UInt64(signer), to: &bytes)
        return bytes
    }

    var message: Message {
        Message(type: UInt16(kind), key: index, body: content + signature)
    }

    static func decode(_ message: Message) -> BFTVote? {
        var reader = ByteReader(message.body)
        guard let kind = reader.byte(), (1...3).contains(kind), let proposer = reader.varint(), proposer < 1_024,
              let index = reader.varint(), let value = reader.signed(), let signer = reader.varint(), signer < 1_024,
              let signature = reader.bytes(message.body.count - reader.offset), signature.count == 64 else { return nil }
        return BFTVote(kind: kind, proposer: NodeID(proposer), index: index, value: value, signer: NodeID(signer), signature: signature)
    }
}

/// Byzantine lies that understand the protocol: a different value, re-signed with the liar's own key.
struct BFTMutator: ByzantineMutator {
    let keys: BFTKeys

    func equivocate(_ message: Message, target: NodeID, random: (UInt64) -> UInt64) -> Message {
        guard var vote = BFTVote.decode(message) else { return ByteMutator().equivocate(message, target: target, random: random) }
        vote.value = vote.value &+ Int64(target) &+ 1
        vote.signature = keys.sign(vote.content, by: vote.signer)
        return vote.message
    }

    func corrupt(_ message: Message, random: (UInt64) -> UInt64) -> Message {
        ByteMutator().corrupt(message, random: random)
    }
}

/// What honest nodes accepted and decided, judged by the BFT checkers.
final class BFTMonitor {
    let keys: BFTKeys
    let faulty: Int
    /// (proposer, index) → value first decided there, and by whom.
    var decided: [String: (value: Int64, node: NodeID)] = [:]
    var proposedByClients: Set<Int64> = []
    var violation: Violation?

    init(keys: BFTKeys, faulty: Int) {
        self.keys = keys
        self.faulty = faulty
    }

    func report(_ found: Violation) {
        if violation == nil { violation = found }
    }

    /// An honest node counted `vote` as coming from `claimed`.
    func accepted(_ vote: BFTVote, claimedSender claimed: NodeID, by node: NodeID) {
        if claimed != vote.signer || !keys.verify(vote.signature, of: vote.content, by: vote.signer) {
            report(Violation(checker: "bft-authentication", kind: "forged-message-accepted",
                             explanation: "n\(node) counted a \(["", "pre-prepare", "prepare", "commit"][Int(vote.kind)]) for slot \(vote.proposer)/\(vote.index) as from n\(claimed) without a valid signature of n\(claimed)"))
        }
    }

    func decided(_ node: NodeID, proposer: NodeID, index: UInt64, value: Int64, certificate: [BFTVote]) {
        let quorum = BFTNode.quorum(nodes: keys.publicKeys.count)
        let signers = Set(certificate.filter { $0.kind == BFTVote.commit && $0.value == value && $0.proposer == proposer && $0.index == index
            && keys.verify($0.signature, of: $0.content, by: $0.signer) }.map(\.signer))
        if signers.count < quorum {
            report(Violation(checker: "bft-certificate", kind: "invalid-certificate",
                             explanation: "n\(node) decided slot \(proposer)/\(index) on a certificate of \(signers.count) valid commits; \(quorum) are needed"))
        }
        let slot = "\(proposer)/\(index)"
        if let first = decided[slot], first.value != value {
            report(Violation(checker: "bft-agreement", kind: "disagreement",
                             explanation: "n\(first.node) decided \(first.value) and n\(node) decided \(value) in slot \(slot)"))
        } else if decided[slot] == nil {
            decided[slot] = (value, node)
        }
    }
}

final class BFTChecker: Checker {
    let name = "bft"
    let monitor: BFTMonitor
    init(monitor: BFTMonitor) { self.monitor = monitor }
    var checksEveryStep: Bool { true }
    func afterStep(_ simulation: Simulator) -> Violation? { monitor.violation }

    func finish(_ simulation: Simulator) -> Violation? {
        if let violation = monitor.violation { return violation }
        // Validity: every decided value was submitted by a client.
        let submitted = Set(simulation.history.map(\.request.operation.value))
        for slot in monitor.decided.keys.sorted() {
            let decision = monitor.decided[slot]!
            if !submitted.contains(decision.value) {
                return Violation(checker: "bft-validity", kind: "invented-value",
                                 explanation: "n\(decision.node) decided \(decision.value) in slot \(slot), which no client submitted")
            }
        }
        return nil
    }
}

final class BFTNode: Node {
    let id: NodeID
    let keys: BFTKeys
    let bug: String?
    let monitor: BFTMonitor
    var nextIndex: UInt64 = 1
    var clientOf: [UInt64: ClientRequest] = [:]  // own slot index → request

    struct Slot {
        var proposal: Int64?
        var prepares: [Int64: [NodeID: BFTVote]] = [:]
        var commits: [Int64: [NodeID: BFTVote]] = [:]
        var sentCommit = false
        var decided: Int64?
    }
    var slots: [String: Slot] = [:]

    init(id: NodeID, keys: BFTKeys, bug: String?, monitor: BFTMonitor) {
        self.id = id
        self.keys = keys
        self.bug = bug
        self.monitor = monitor
    }

    func start(_ context: NodeContext) {}

    /// 2f + 1 when n = 3f + 1; in general the smallest q with two quorums sharing f + 1 nodes.
    static func quorum(nodes: Int) -> Int {
        let f = (nodes - 1) / 3
        return (nodes + f + 2) / 2
    }

    private func quorum(_ context: NodeContext) -> Int {
        let correct = Self.quorum(nodes: context.clusterSize)
        return bug == "bft.small-quorum" ? max(1, correct - 1) : correct
    }

    private func vote(_ kind: UInt8, proposer: NodeID, index: UInt64, value: Int64) -> BFTVote {
        var vote = BFTVote(kind: kind, proposer: proposer, index: index, value: value, signer: id, signature: [])
        vote.signature = keys.sign(vote.content, by: id)
        return vote
    }

    func request(_ request: ClientRequest, _ context: NodeContext) {
        guard request.operation.function == .write else { return context.reply(to: request, .fail) }
        let index = nextIndex
        nextIndex += 1
        clientOf[index] = request
        let proposal = vote(BFTVote.prePrepare, proposer: id, index: index, value: request.operation.value)
        context.broadcast(proposal.message)
        handle(proposal, from: id, context)
    }

    func receive(_ message: Message, from source: NodeID, _ context: NodeContext) {
        guard let vote = BFTVote.decode(message) else { return }
        if bug != "bft.skip-signature-check" {
            // The sender must be the signer, and the signature must hold.
            guard vote.signer == source, keys.verify(vote.signature, of: vote.content, by: source) else { return }
        }
        handle(vote, from: source, context)
    }

    private func handle(_ vote: BFTVote, from source: NodeID, _ context: NodeContext) {
        let key = "\(vote.proposer)/\(vote.index)"
        var slot = slots[key] ?? Slot()
        defer { slots[key] = slot }
        if source != id { monitor.accepted(vote, claimedSender: source, by: id) }
        switch vote.kind {
        case BFTVote.prePrepare:
            // Only the slot's proposer may propose, once.
            guard source == vote.proposer, slot.proposal == nil else { return }
            slot.proposal = vote.value
            let prepare = self.vote(BFTVote.prepare, proposer: vote.proposer, index: vote.index, value: vote.value)
            slot.prepares[vote.value, default: [:]][id] = prepare
            context.broadcast(prepare.message)
        case BFTVote.prepare:
            slot.prepares[vote.value, default: [:]][source] = vote
        case BFTVote.commit:
            slot.commits[vote.value, default: [:]][source] = vote
        default:
            return
        }
        // Commit once 2f + 1 prepared the value we were proposed.
        if !slot.sentCommit, let proposal = slot.proposal, (slot.prepares[proposal]?.count ?? 0) >= quorum(context) {
            slot.sentCommit = true
            let commit = self.vote(BFTVote.commit, proposer: vote.proposer, index: vote.index, value: proposal)
            slot.commits[proposal, default: [:]][id] = commit
            context.broadcast(commit.message)
        }
        // Decide on a certificate of 2f + 1 commits for one value.
        if slot.decided == nil {
            for value in slot.commits.keys.sorted() where slot.commits[value]!.count >= quorum(context) {
                slot.decided = value
                let certificate = slot.commits[value]!.keys.sorted().map { slot.commits[value]![$0]! }
                monitor.decided(id, proposer: vote.proposer, index: vote.index, value: value, certificate: certificate)
                if vote.proposer == id, let request = clientOf.removeValue(forKey: vote.index) {
                    context.reply(to: request, value == request.operation.value ? .ok(value) : .fail)
                }
                break
            }
        }
    }

    func stateDigest() -> UInt64 {
        var digest = StableDigest()
        for key in slots.keys.sorted() {
            digest.mix(key)
            digest.mix(UInt64(bitPattern: slots[key]!.decided ?? -1))
        }
        return digest.value
    }
}
