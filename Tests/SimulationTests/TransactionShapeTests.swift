import Simulation
import XCTest

/// The packed form of a transaction's steps and the step results a completion carries.
final class TransactionShapeTests: XCTestCase {
    func testAShapeSurvivesPacking() {
        let shapes = [
            TransactionShape([.init(write: false, key: 0)]),
            TransactionShape([.init(write: true, key: 4095), .init(write: false, key: 255), .init(write: true, key: 1), .init(write: false, key: 7)]),
            TransactionShape([.init(write: true, key: 3), .init(write: true, key: 3)]),
            TransactionShape([.init(write: true, key: 2), .init(write: false, key: 2)], appends: true),
        ]
        for shape in shapes {
            XCTAssertEqual(TransactionShape(packed: shape.packed), shape)
        }
        XCTAssertEqual(shapes[1].text, "w k4095, r k255, w k1, r k7")
        XCTAssertEqual(shapes[3].text, "append k2, r k2")
        XCTAssertEqual(shapes[3].describe(step: 1, requestID: 3, result: .some([4, 13])), "r k2 [4 13]")
        XCTAssertEqual(shapes[1].describe(step: 1, requestID: 3, result: .some(nil)), "r k255 nil")
        // No steps, more than four, or bits beyond the last step: not a transaction.
        XCTAssertNil(TransactionShape(packed: 0))
        XCTAssertNil(TransactionShape(packed: 5))
        XCTAssertNil(TransactionShape(packed: shapes[0].packed | 1 << 40))
        XCTAssertEqual(TransactionShape(packed: shapes[3].packed)?.appends, true)
    }

    func testWrittenValuesAreUniqueAcrossRequestsAndSteps() {
        var seen = Set<Int64>()
        for request in UInt64(1)...200 {
            for index in 0..<TransactionShape.maxSteps {
                XCTAssertTrue(seen.insert(TransactionShape.writtenValue(requestID: request, index: index)).inserted)
            }
        }
    }

    func testACompletionCarriesItsStepResults() {
        let reply = Reply(outcome: .ok, results: [nil, [5], [-3, Int64.max, 0], []], resultsAreLists: true)
        XCTAssertEqual(Reply.decodeResults(reply.encoded())?.results ?? [], [nil, [5], [-3, Int64.max, 0], []])
        XCTAssertEqual(Reply.decodeResults(reply.encoded())?.lists, true)
        XCTAssertEqual(Reply.decodeResults(Reply(outcome: .ok, results: [[1]]).encoded())?.lists, false)
        // Other operations' completions have none, and a truncated payload is refused.
        XCTAssertNil(Reply.decodeResults(Reply.ok(4).encoded()))
        XCTAssertNil(Reply.decodeResults(Array(reply.encoded().dropLast())))
    }
}
