/// What a queued entry will do when its time comes.
enum ScheduledKind: UInt8 {
    case deliver
    case timer
    case request
    case clientTimeout
    case clientNext
    case nemesisTick
    case heal
    case livenessPhase
    case digest
    case end
}

/// One entry of the event queue. Entries are ordered by the total key (time, sequence): the
/// sequence number is unique, so ties never depend on heap layout or memory addresses.
struct Scheduled {
    var time: UInt64
    var sequence: UInt64
    var kind: ScheduledKind
    var node: UInt32
    var a: UInt32
    var incarnation: UInt32
    var b: UInt64

    @inline(__always)
    func precedes(_ other: Scheduled) -> Bool {
        time < other.time || (time == other.time && sequence < other.sequence)
    }
}

/// A binary min-heap of scheduled entries by (time, sequence).
struct EventQueue {
    private(set) var entries: [Scheduled] = []
    private var nextSequence: UInt64 = 0

    init() { entries.reserveCapacity(1024) }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// - Complexity: O(log n).
    @inline(__always)
    mutating func push(time: UInt64, kind: ScheduledKind, node: UInt32 = 0, a: UInt32 = 0, incarnation: UInt32 = 0, b: UInt64 = 0) {
        let entry = Scheduled(time: time, sequence: nextSequence, kind: kind, node: node, a: a, incarnation: incarnation, b: b)
        nextSequence += 1
        pushEntry(entry)
    }

    /// Puts back an entry that was taken out, keeping its sequence number.
    @inline(__always)
    mutating func pushEntry(_ entry: Scheduled) {
        entries.append(entry)
        var child = entries.count - 1
        entries.withUnsafeMutableBufferPointer { heap in
            let item = heap[child]
            while child > 0 {
                let parent = (child - 1) / 2
                if !item.precedes(heap[parent]) { break }
                heap[child] = heap[parent]
                child = parent
            }
            heap[child] = item
        }
    }

    var first: Scheduled? { entries.first }

    /// - Complexity: O(log n).
    @inline(__always)
    mutating func pop() -> Scheduled? {
        guard let last = entries.popLast() else { return nil }
        if entries.isEmpty { return last }
        let top = entries[0]
        entries.withUnsafeMutableBufferPointer { heap in
            let count = heap.count
            var index = 0
            while true {
                let left = 2 * index + 1
                if left >= count { break }
                let right = left + 1
                let smaller = right < count && heap[right].precedes(heap[left]) ? right : left
                if !heap[smaller].precedes(last) { break }
                heap[index] = heap[smaller]
                index = smaller
            }
            heap[index] = last
        }
        return top
    }
}
