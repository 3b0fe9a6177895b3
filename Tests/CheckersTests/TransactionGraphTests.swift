import Checkers
import XCTest

final class TransactionGraphTests: XCTestCase {
    private typealias Dependency = TransactionGraph.Dependency

    private func graph(_ count: Int, _ edges: [(Int, Int, Dependency)]) -> TransactionGraph {
        var graph = TransactionGraph(count: count)
        for (from, to, dependency) in edges { graph.add(from, to, dependency, key: UInt64(from)) }
        return graph
    }

    private func anomaly(_ graph: TransactionGraph, _ allowed: Set<Dependency>) -> (name: String, cycle: TransactionGraph.Cycle)? {
        graph.anomaly(in: graph.components(allowed: allowed), allowed: allowed)
    }

    func testCyclesAreNamedByTheDependenciesTheyNeed() throws {
        let all: Set<Dependency> = [.ww, .wr, .rw]
        XCTAssertEqual(anomaly(graph(2, [(0, 1, .ww), (1, 0, .ww)]), all)?.name, "G0")
        XCTAssertEqual(anomaly(graph(2, [(0, 1, .ww), (1, 0, .wr)]), all)?.name, "G1c")
        XCTAssertEqual(anomaly(graph(3, [(0, 1, .rw), (1, 2, .wr), (2, 0, .ww)]), all)?.name, "G-single")
        XCTAssertEqual(anomaly(graph(2, [(0, 1, .rw), (1, 0, .rw)]), all)?.name, "G2")
        // Read committed looks at ww and wr only: a cycle through rw is no anomaly there.
        XCTAssertNil(anomaly(graph(2, [(0, 1, .rw), (1, 0, .rw)]), [.ww, .wr]))
        XCTAssertNil(anomaly(graph(3, [(0, 1, .rw), (1, 2, .wr), (2, 0, .ww)]), [.ww, .wr]))
        // With real time, a cycle that needs it says so.
        let late = graph(2, [(0, 1, .rw), (1, 0, .realtime)])
        XCTAssertNil(anomaly(late, all))
        XCTAssertEqual(anomaly(late, all.union([.realtime]))?.name, "G-single-realtime")
        // No cycle, no anomaly; an edge to itself or twice changes nothing.
        let chain = graph(4, [(0, 1, .ww), (1, 2, .wr), (2, 3, .rw), (0, 3, .rw), (2, 2, .ww), (0, 1, .ww)])
        XCTAssertTrue(chain.components(allowed: all.union([.realtime])).isEmpty)
        XCTAssertEqual(chain.edges[0].count, 2)
        XCTAssertTrue(chain.edges[2].allSatisfy { $0.to != 2 })
    }

    func testTheWorstAnomalyAndAShortCycleAreReported() throws {
        // A long G2 cycle through 0…5, and in the same component a G-single through 2 and 3.
        var edges: [(Int, Int, Dependency)] = (0..<6).map { ($0, ($0 + 1) % 6, Dependency.rw) }
        edges.append((3, 2, .wr))
        let found = try XCTUnwrap(anomaly(graph(6, edges), [.ww, .wr, .rw]))
        XCTAssertEqual(found.name, "G-single")
        XCTAssertEqual(found.cycle.map(\.transaction), [2, 3])
        XCTAssertEqual(found.cycle.map(\.edge.dependency), [.rw, .wr])
        // The cycle closes: each edge leads to the next transaction, the last back to the first.
        for (index, step) in found.cycle.enumerated() {
            XCTAssertEqual(step.edge.to, found.cycle[(index + 1) % found.cycle.count].transaction)
        }
    }

    func testComponentsAreFoundInAnyOrderOfEdgesAndOnDeepChains() {
        // Two separate cycles, found in the order of their smallest transaction.
        let two = graph(6, [(4, 5, .ww), (5, 4, .ww), (1, 2, .ww), (2, 3, .ww), (3, 1, .ww)])
        XCTAssertEqual(two.components(allowed: [.ww]), [[1, 2, 3], [4, 5]])
        // A chain of 100,000 transactions closed into one cycle: no recursion to run out of stack.
        let count = 100_000
        let ring = graph(count, (0..<count).map { ($0, ($0 + 1) % count, Dependency.wr) })
        XCTAssertEqual(ring.components(allowed: [.wr]).first?.count, count)
    }
}
