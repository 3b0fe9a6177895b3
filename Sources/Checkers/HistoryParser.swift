import Foundation

/// Reads client histories: Jepsen's EDN (one map per line, or a vector of maps), JSON lines
/// with the same fields (`process`, `type`, `f`, `value`, optional `key`), and Jepsen's
/// tab-separated text history (`history.txt`, or the operation lines of a test's log).
/// Processes named rather than numbered: the nemesis (`:nemesis`, "nemesis") is not a client and
/// its entries are left out; any other name is a client of its own, numbered -1, -2, … in the
/// order the names first appear (apart from the integers that other processes use).
struct ProcessNames {
    private var numbers: [String: Int] = [:]
    /// The integers the history uses as processes (`reserve`), which no name may take.
    private var used = Set<Int>()
    private var nextNumber = -1

    mutating func process(named name: String) -> Int? {
        if name == "nemesis" || name == ":nemesis" { return nil }
        if let number = numbers[name] { return number }
        while used.contains(nextNumber) { nextNumber -= 1 }
        let number = nextNumber
        nextNumber -= 1
        numbers[name] = number
        used.insert(number)
        return number
    }

    /// Notes the integer processes of the whole history first, so names keep clear of them.
    mutating func reserve(_ number: Int) { used.insert(number) }
}

public enum HistoryParser {
    public static func parse(_ text: String) throws -> [RawHistoryEntry] {
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "{" && trimmed.dropFirst().drop(while: { $0.isWhitespace }).first == "\"" {
            return try parseJSONLines(text)
        }
        // A JSON array of operation objects.
        let inner = trimmed.dropFirst().drop { $0.isWhitespace }
        if trimmed.first == "[" && inner.first == "{" && inner.dropFirst().drop(while: { $0.isWhitespace }).first == "\"" {
            var reader = JSONReader(bytes: Array(text.utf8))
            guard let node = try? reader.document(), case .array(let items) = node else {
                throw HistoryError(message: "not a JSON array of operation objects", line: 1)
            }
            var objects: [(fields: [String: JSONNode], line: Int)] = []
            for item in items {
                guard case .object(let fields) = item else { throw HistoryError(message: "not a JSON array of operation objects", line: 1) }
                objects.append((fields, 1))
            }
            return try entries(fromJSON: objects)
        }
        if looksLikeJepsenLog(text) { return try parseJepsenLog(text) }
        return try parseEDN(text)
    }

    /// One EDN value (`0`, `nil`, `"x"`, `[1 2]`), for options that take one.
    public static func parseValue(_ text: String) throws -> Value {
        var reader = EDNReader(Array(text.utf8))
        guard let form = try reader.nextForm() else { throw HistoryError(message: "no value in '\(text)'", line: nil) }
        guard try reader.nextForm() == nil else { throw HistoryError(message: "more than one value in '\(text)'", line: nil) }
        return try form.form.value(line: 1)
    }

    // MARK: Jepsen's text history

    /// The operation types of a tab-separated history line.
    private static let logTypes: Set<Substring> = [":invoke", ":ok", ":fail", ":info"]

    /// Whether `text` is Jepsen's text history (`history.txt`, or the operations in a test's
    /// log): a line with a process, a type and a function.
    public static func looksLikeJepsenLog(_ text: String) -> Bool {
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            if logOperation(line) != nil { return true }
        }
        return false
    }

    /// The fields of one operation line: `PROCESS :TYPE :F VALUE [ERROR]`, separated by tabs (as
    /// Jepsen writes them) or spaces, the process perhaps after a log prefix
    /// (`INFO  jepsen.util - 3<tab>:invoke<tab>:read<tab>nil`). A line that starts as EDN or JSON
    /// does (`{`, `[`, `(`, `#`) is not one.
    private static func logOperation(_ line: Substring) -> (process: Substring, type: Substring, function: Substring, value: Substring)? {
        guard let first = line.first(where: { $0 != " " && $0 != "\t" }), !"{[(#".contains(first) else { return nil }
        // The whitespace-separated words, as ranges of the line.
        var words: [Range<Substring.Index>] = []
        var index = line.startIndex
        while index < line.endIndex {
            guard line[index] != " " && line[index] != "\t" else {
                index = line.index(after: index)
                continue
            }
            let start = index
            while index < line.endIndex && line[index] != " " && line[index] != "\t" { index = line.index(after: index) }
            words.append(start..<index)
        }
        for position in words.indices.dropFirst() where position + 1 < words.count {
            let type = line[words[position]]
            let function = line[words[position + 1]]
            // A process is a number, or the nemesis (a word such as :type is not one).
            let process = line[words[position - 1]]
            guard logTypes.contains(type), function.count > 1, function.first == ":",
                  Int(process) != nil || process.hasSuffix("nemesis") else { continue }
            let value = line[words[position + 1].upperBound...].drop { $0 == " " || $0 == "\t" }
            return (process, type, function, value)
        }
        return nil
    }

    /// Reads Jepsen's text history: the operation lines of `history.txt` or of a test's log (the
    /// lines `jepsen.util` logs); every other line of a log is passed over. Values are EDN
    /// (`nil`, `3`, `[1 2]`); a completion's error, after the value, is not needed. The
    /// nemesis's lines are left out, as in EDN.
    public static func parseJepsenLog(_ text: String) throws -> [RawHistoryEntry] {
        var found: [(process: Substring, type: Substring, function: Substring, value: Substring, line: Int)] = []
        // "\r\n" is one Character, which "\n" alone does not match.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            if let operation = logOperation(line) {
                found.append((operation.process, operation.type, operation.function, operation.value, index + 1))
            }
        }
        var names = ProcessNames()
        for operation in found {
            if let number = Int(operation.process) { names.reserve(number) }
        }
        return try found.map { operation in
            let kind = RawHistoryEntry.Kind(rawValue: String(operation.type.dropFirst()))!
            let function = String(operation.function.dropFirst())
            let process = Int(operation.process) ?? names.process(named: String(operation.process))
            guard process != nil else {
                return RawHistoryEntry(process: nil, kind: kind, function: function, value: .none, key: nil, line: operation.line)
            }
            var reader = EDNReader(Array(operation.value.utf8))
            reader.line = operation.line
            let value: Value
            if operation.value.allSatisfy({ $0 == " " || $0 == "\t" }) {
                value = .none
            } else {
                guard let form = try reader.nextForm() else {
                    throw HistoryError(message: "operation has no value after its function", line: operation.line)
                }
                value = try form.form.value(line: operation.line)
            }
            return RawHistoryEntry(process: process, kind: kind, function: function, value: value, key: nil, line: operation.line)
        }
    }

    // MARK: EDN

    public static func parseEDN(_ text: String) throws -> [RawHistoryEntry] {
        var reader = EDNReader(Array(text.utf8))
        // Every operation map with the line it starts on (a history written as one vector of
        // maps has a line per operation too).
        var forms: [(EDNForm, Int)] = []
        while let top = try reader.nextForm() {
            if let operation = tupleOperation(top.form) {
                forms.append((operation, top.line))
                continue
            }
            switch top.form {
            case .map:
                forms.append((top.form, top.line))
            case .vector(let items), .list(let items):
                // Items of a tagged vector (#jepsen/history [...]) come without lines of their own.
                forms += top.items.isEmpty ? items.map { ($0, top.line) } : top.items
            default:
                throw HistoryError(message: "expected an operation map like {:process 0, :type :invoke, :f :read, :value nil}", line: top.line)
            }
        }
        var names = ProcessNames()
        for (form, _) in forms {
            if case .map(let pairs) = form {
                for (key, value) in pairs {
                    if case .keyword("process") = key, case .integer(let number) = value, let number = Int(exactly: number) { names.reserve(number) }
                }
            }
        }
        return try forms.map { try entry(from: $0.0, line: $0.1, names: &names) }
    }

    /// An operation written as a tuple, `[process type f value]` or with an error after it
    /// (`[70 :invoke :read nil]`, `[71 :fail :read nil :conn-lost]`), as
    /// older Knossos histories have them: the map it stands for.
    static func tupleOperation(_ form: EDNForm) -> EDNForm? {
        guard case .vector(let items) = form, items.count == 4 || items.count == 5, case .keyword(let type) = items[1],
              RawHistoryEntry.Kind(rawValue: type) != nil else { return nil }
        switch items[0] {
        case .integer, .keyword: break
        default: return nil
        }
        return .map([(.keyword("process"), items[0]), (.keyword("type"), items[1]), (.keyword("f"), items[2]), (.keyword("value"), items[3])])
    }

    static func entry(from form: EDNForm, line: Int, names: inout ProcessNames) throws -> RawHistoryEntry {
        let form = tupleOperation(form) ?? form
        guard case .map(let pairs) = form else {
            throw HistoryError(message: "expected an operation map, found \(form.kind)", line: line)
        }
        var fields: [String: EDNForm] = [:]
        for (key, value) in pairs {
            if case .keyword(let name) = key { fields[name] = value }
        }
        let process: Int?
        switch fields["process"] {
        case .integer(let value)?: process = Int(value)
        case .keyword(let name)?, .string(let name)?, .symbol(let name)?: process = names.process(named: name)
        case nil: throw HistoryError(message: "operation has no :process", line: line)
        default: throw HistoryError(message: ":process must be an integer, a keyword or a string", line: line)
        }
        let type: String
        switch fields["type"] {
        case .keyword(let name)?, .string(let name)?, .symbol(let name)?: type = name
        default: type = ""
        }
        guard let kind = RawHistoryEntry.Kind(rawValue: type) else {
            throw HistoryError(message: ":type must be :invoke, :ok, :fail or :info", line: line)
        }
        let function: String
        switch fields["f"] {
        case .keyword(let name)?, .symbol(let name)?, .string(let name)?: function = name
        default: throw HistoryError(message: "operation has no :f", line: line)
        }
        // The nemesis's entries are left out: their values (which nodes a partition cut off, as
        // maps) are none of the checker's business.
        guard process != nil else { return RawHistoryEntry(process: nil, kind: kind, function: function, value: .none, key: nil, line: line) }
        let value = try fields["value"].map { try $0.value(line: line) } ?? .none
        let key = try fields["key"].map { try $0.value(line: line) }
        return RawHistoryEntry(process: process, kind: kind, function: function, value: value, key: key, line: line)
    }

    // MARK: JSON lines

    public static func parseJSONLines(_ text: String) throws -> [RawHistoryEntry] {
        var objects: [(fields: [String: JSONNode], line: Int)] = []
        // "\r\n" is one Character, which "\n" alone does not match.
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            var reader = JSONReader(bytes: Array(line.utf8))
            guard let node = try? reader.document(), case .object(let fields) = node else {
                throw HistoryError(message: "not a JSON object", line: index + 1)
            }
            objects.append((fields, index + 1))
        }
        return try entries(fromJSON: objects)
    }

    static func entries(fromJSON objects: [(fields: [String: JSONNode], line: Int)]) throws -> [RawHistoryEntry] {
        var names = ProcessNames()
        for (fields, _) in objects {
            if case .integer(let number)? = fields["process"], let number = Int(exactly: number) { names.reserve(number) }
        }
        var entries: [RawHistoryEntry] = []
        for (object, line) in objects {
            let process: Int?
            switch object["process"] {
            case .integer(let number)?: process = Int(number)
            case .string(let name)?: process = names.process(named: name)
            default: throw HistoryError(message: "\"process\" must be an integer or a string", line: line)
            }
            guard case .string(let type)? = object["type"], let kind = RawHistoryEntry.Kind(rawValue: type) else {
                throw HistoryError(message: "\"type\" must be invoke, ok, fail or info", line: line)
            }
            guard case .string(let function)? = object["f"] else { throw HistoryError(message: "operation has no \"f\"", line: line) }
            guard process != nil else {
                entries.append(RawHistoryEntry(process: nil, kind: kind, function: function, value: .none, key: nil, line: line))
                continue
            }
            let value = try jsonValue(object["value"], line: line)
            let key = try object["key"].map { try jsonValue($0, line: line) }
            entries.append(RawHistoryEntry(process: process, kind: kind, function: function, value: value, key: key, line: line))
        }
        return entries
    }

    static func jsonValue(_ node: JSONNode?, line: Int) throws -> Value {
        switch node {
        case nil, .null?: return .none
        case .bool(let flag)?: return .bool(flag)
        case .integer(let value)?: return .int(value)
        case .otherNumber(let text)?: throw HistoryError(message: "only integer values are supported (64-bit), got \(text)", line: line)
        case .string(let text)?: return .string(text)
        case .array(let items)?: return .list(try items.map { try jsonValue($0, line: line) })
        case .object?: throw HistoryError(message: "objects are not supported as operation values", line: line)
        }
    }
}

/// A JSON value as a history needs it: integers kept apart from booleans and from other numbers
/// (a reader that goes through `Double` takes `true` for 1, 2.0 for 2, and 2⁵³+1 for 2⁵³).
indirect enum JSONNode {
    case null
    case bool(Bool)
    case integer(Int64)
    case otherNumber(String)
    case string(String)
    case array([JSONNode])
    case object([String: JSONNode])
}

struct JSONReader {
    enum Failure: Error { case invalid }
    let bytes: [UInt8]
    var offset = 0
    let maxDepth = 64

    mutating func document() throws -> JSONNode {
        let node = try value(depth: 0)
        skipSpace()
        guard offset == bytes.count else { throw Failure.invalid }
        return node
    }

    mutating func skipSpace() {
        while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
    }

    mutating func expect(_ word: String) throws {
        let expected = Array(word.utf8)
        guard offset + expected.count <= bytes.count, Array(bytes[offset..<offset + expected.count]) == expected else { throw Failure.invalid }
        offset += expected.count
    }

    mutating func value(depth: Int) throws -> JSONNode {
        guard depth < maxDepth else { throw Failure.invalid }
        skipSpace()
        guard offset < bytes.count else { throw Failure.invalid }
        switch bytes[offset] {
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "["):
            offset += 1
            var items: [JSONNode] = []
            skipSpace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard offset < bytes.count else { throw Failure.invalid }
                offset += 1
                if bytes[offset - 1] == UInt8(ascii: "]") { return .array(items) }
                guard bytes[offset - 1] == UInt8(ascii: ",") else { throw Failure.invalid }
            }
        case UInt8(ascii: "{"):
            offset += 1
            var fields: [String: JSONNode] = [:]
            skipSpace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(fields) }
            while true {
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw Failure.invalid }
                let name = try string()
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw Failure.invalid }
                offset += 1
                fields[name] = try value(depth: depth + 1)
                skipSpace()
                guard offset < bytes.count else { throw Failure.invalid }
                offset += 1
                if bytes[offset - 1] == UInt8(ascii: "}") { return .object(fields) }
                guard bytes[offset - 1] == UInt8(ascii: ",") else { throw Failure.invalid }
            }
        default:
            let start = offset
            while offset < bytes.count, (0x30...0x39).contains(bytes[offset]) || [UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                                                                                 UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[offset]) {
                offset += 1
            }
            let text = String(decoding: bytes[start..<offset], as: UTF8.self)
            guard !text.isEmpty, Double(text) != nil else { throw Failure.invalid }
            if let integer = Int64(text) { return .integer(integer) }
            return .otherNumber(text)
        }
    }

    mutating func string() throws -> String {
        guard let text = QuotedString.read(bytes, at: &offset) else { throw Failure.invalid }
        return text
    }
}

/// The subset of EDN a history uses.
indirect enum EDNForm {
    case nilValue
    case boolean(Bool)
    case integer(Int64)
    /// A number that is not a 64-bit integer (2.5, 1/2, 1e3, a big integer): an error only where
    /// an operation's value or key uses it.
    case otherNumber(String)
    case string(String)
    case keyword(String)
    case symbol(String)
    case vector([EDNForm])
    case list([EDNForm])
    case set([EDNForm])
    case map([(EDNForm, EDNForm)])

    var kind: String {
        switch self {
        case .nilValue: "nil"
        case .boolean: "a boolean"
        case .integer: "an integer"
        case .otherNumber: "a number"
        case .string: "a string"
        case .keyword: "a keyword"
        case .symbol: "a symbol"
        case .vector: "a vector"
        case .list: "a list"
        case .set: "a set"
        case .map: "a map"
        }
    }

    func value(line: Int) throws -> Value {
        switch self {
        case .nilValue: .none
        case .boolean(let value): .bool(value)
        case .integer(let value): .int(value)
        case .otherNumber(let text): throw HistoryError(message: "only integer values are supported (64-bit), got \(text)", line: line)
        case .string(let value): .string(value)
        case .keyword(let value): .keyword(value)
        case .symbol(let value): .string(value)
        case .vector(let items), .list(let items), .set(let items): .list(try items.map { try $0.value(line: line) })
        case .map: throw HistoryError(message: "maps are not supported as operation values", line: line)
        }
    }
}

struct EDNReader {
    let bytes: [UInt8]
    var offset = 0
    var line = 1
    /// Nesting limit, so hostile input cannot exhaust the stack.
    let maxDepth = 64

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Skips white space, comments and discarded forms (`#_ form`).
    mutating func skipIgnored(depth: Int) throws {
        skipSpace()
        while offset + 1 < bytes.count && bytes[offset] == UInt8(ascii: "#") && bytes[offset + 1] == UInt8(ascii: "_") {
            offset += 2
            _ = try form(depth: depth + 1)
            skipSpace()
        }
    }

    mutating func skipSpace() {
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\n") { line += 1; offset += 1 }
            else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: ",") { offset += 1 }
            else if byte == UInt8(ascii: ";") { while offset < bytes.count && bytes[offset] != UInt8(ascii: "\n") { offset += 1 } }
            else { return }
        }
    }

    /// The next top-level form and the line it starts on, or nil at the end; for a vector or a
    /// list, its items too, each with the line it starts on.
    mutating func nextForm() throws -> (form: EDNForm, line: Int, items: [(EDNForm, Int)])? {
        try skipIgnored(depth: 0)
        guard offset < bytes.count else { return nil }
        let start = line
        let open = bytes[offset]
        guard open == UInt8(ascii: "[") || open == UInt8(ascii: "(") else { return (try form(depth: 0), start, []) }
        offset += 1
        let close = open == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: ")")
        var items: [(EDNForm, Int)] = []
        while true {
            try skipIgnored(depth: 1)
            guard offset < bytes.count else { throw HistoryError(message: "missing '\(Character(Unicode.Scalar(close)))'", line: line) }
            if bytes[offset] == close {
                offset += 1
                break
            }
            let itemLine = line
            items.append((try form(depth: 1), itemLine))
        }
        return (open == UInt8(ascii: "[") ? .vector(items.map(\.0)) : .list(items.map(\.0)), start, items)
    }

    mutating func form(depth: Int) throws -> EDNForm {
        guard depth < maxDepth else { throw HistoryError(message: "nesting deeper than \(maxDepth)", line: line) }
        skipSpace()
        guard offset < bytes.count else { throw HistoryError(message: "unexpected end of input", line: line) }
        let byte = bytes[offset]
        switch byte {
        case UInt8(ascii: "{"):
            offset += 1
            let items = try sequence(until: UInt8(ascii: "}"), depth: depth)
            guard items.count % 2 == 0 else { throw HistoryError(message: "a map needs an even number of forms", line: line) }
            return .map(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) })
        case UInt8(ascii: "["):
            offset += 1
            return .vector(try sequence(until: UInt8(ascii: "]"), depth: depth))
        case UInt8(ascii: "("):
            offset += 1
            return .list(try sequence(until: UInt8(ascii: ")"), depth: depth))
        case UInt8(ascii: "#"):
            offset += 1
            guard offset < bytes.count else { throw HistoryError(message: "unexpected end of input after '#'", line: line) }
            if bytes[offset] == UInt8(ascii: "{") {
                offset += 1
                return .set(try sequence(until: UInt8(ascii: "}"), depth: depth))
            }
            if bytes[offset] == UInt8(ascii: "#") {
                // ##Inf, ##-Inf, ##NaN
                offset += 1
                return .otherNumber("##" + token())
            }
            // A discarded form (#_ form, nested too): the next one stands in its place.
            if bytes[offset] == UInt8(ascii: "_") {
                offset += 1
                _ = try form(depth: depth + 1)
                return try form(depth: depth)
            }
            // A tagged element (#jepsen.history.Op{…}, #inst "…", #uuid "…"): the tag is dropped
            // and the element read as it is.
            let tag = token()
            guard !tag.isEmpty else {
                throw HistoryError(message: "unexpected character after '#'", line: line)
            }
            return try form(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: ":"):
            offset += 1
            return .keyword(token())
        case UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ")"):
            throw HistoryError(message: "unbalanced '\(Character(Unicode.Scalar(byte)))'", line: line)
        default:
            let text = token()
            guard !text.isEmpty else { throw HistoryError(message: "unexpected character '\(Character(Unicode.Scalar(byte)))'", line: line) }
            if text == "nil" { return .nilValue }
            if text == "true" { return .boolean(true) }
            if text == "false" { return .boolean(false) }
            if let first = text.first, first.isNumber || ((first == "-" || first == "+") && text.count > 1) {
                let digits = text.hasSuffix("N") ? String(text.dropLast()) : text
                guard let value = Int64(digits.hasPrefix("+") ? String(digits.dropFirst()) : digits) else { return .otherNumber(text) }
                return .integer(value)
            }
            return .symbol(text)
        }
    }

    mutating func sequence(until close: UInt8, depth: Int) throws -> [EDNForm] {
        var items: [EDNForm] = []
        while true {
            try skipIgnored(depth: depth)
            guard offset < bytes.count else { throw HistoryError(message: "missing '\(Character(Unicode.Scalar(close)))'", line: line) }
            if bytes[offset] == close {
                offset += 1
                return items
            }
            items.append(try form(depth: depth + 1))
        }
    }

    mutating func token() -> String {
        let start = offset
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte <= 32 || byte == UInt8(ascii: ",") || byte == UInt8(ascii: "{") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "[")
                || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "(") || byte == UInt8(ascii: ")") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: ";") {
                break
            }
            offset += 1
        }
        return String(decoding: bytes[start..<offset], as: UTF8.self)
    }

    mutating func string() throws -> String {
        guard let text = QuotedString.read(bytes, at: &offset, newline: { line += 1 }) else {
            throw HistoryError(message: "unterminated string or bad escape", line: line)
        }
        return text
    }
}

/// A double-quoted string with backslash escapes, as EDN and JSON write them: \n \t \r \b \f,
/// \uXXXX (a surrogate pair joined into one character), any other escaped character as itself.
enum QuotedString {
    /// Reads the string whose opening quote is at `offset` and moves past its closing quote; nil
    /// when it is not closed or an escape is malformed. `newline` hears of each line break in it.
    static func read(_ bytes: [UInt8], at offset: inout Int, newline: () -> Void = {}) -> String? {
        func hex4() -> UInt32? {
            guard offset + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16)
            else { return nil }
            offset += 4
            return code
        }
        offset += 1
        var result: [UInt8] = []
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: result, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { newline() }
            guard byte == UInt8(ascii: "\\") else { result.append(byte); continue }
            guard offset < bytes.count else { return nil }
            let escaped = bytes[offset]
            offset += 1
            switch escaped {
            case UInt8(ascii: "n"): result.append(0x0A)
            case UInt8(ascii: "t"): result.append(0x09)
            case UInt8(ascii: "r"): result.append(0x0D)
            case UInt8(ascii: "b"): result.append(0x08)
            case UInt8(ascii: "f"): result.append(0x0C)
            case UInt8(ascii: "u"):
                guard var code = hex4() else { return nil }
                // A character outside the Basic Multilingual Plane comes as a surrogate pair.
                if (0xD800...0xDBFF).contains(code) {
                    guard offset + 6 <= bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else { return nil }
                    offset += 2
                    guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { return nil }
                result += Array(String(Character(scalar)).utf8)
            default: result.append(escaped)
            }
        }
        return nil
    }
}
