import Foundation
import XCTest
@testable import TraceStore

/// A small deterministic generator for test data.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// A fresh directory per test, removed afterwards.
func temporaryDirectory(_ name: String = #function) -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("chaostrace-tests-\(getpid())-\(safe)-\(UInt32.random(in: 0...UInt32.max))")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Random events of every kind, with times that never decrease.
func randomEvents(count: Int, random: inout TestRandom) -> [Event] {
    var time: UInt64 = random.below(1_000_000)
    var events: [Event] = []
    events.reserveCapacity(count)
    for _ in 0..<count {
        switch random.below(4) {
        case 0: break
        case 1: time += random.below(1_000) * 1_000
        case 2: time += random.below(1_000_000)
        default: time += random.below(UInt64(1) << 40)
        }
        let kind = EventKind.allCases[Int(random.below(UInt64(EventKind.allCases.count)))]
        let node = random.below(3) == 0 ? UInt32.max - UInt32(random.below(3)) : UInt32(random.below(9))
        let peer = random.below(2) == 0 ? 0 : UInt32(random.below(UInt64(UInt32.max)))
        let id: UInt64 = switch random.below(4) {
        case 0: 0
        case 1: random.below(10)
        case 2: UInt64.max - random.below(10)
        default: random.next()
        }
        let payloadSize = random.below(3) == 0 ? Int(random.below(300)) : 0
        events.append(Event(kind: kind, time: time, node: node, peer: peer, id: id, payload: random.bytes(payloadSize)))
    }
    return events
}

func record(_ events: [Event], in store: TraceStore, seed: UInt64 = 1, finish: Bool = true) throws -> UInt64 {
    let recorder = try store.beginRun(seed: seed, configuration: "{}", toolVersion: "test")
    for event in events { try recorder.append(event) }
    if finish { try recorder.finish(verdict: "pass", virtualEndTime: events.last?.time ?? 0) }
    return recorder.runID
}
