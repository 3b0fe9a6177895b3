import Foundation

/// Reads client histories: Jepsen's EDN (one map per line, or a vector of maps) and JSON lines
/// with the same fields (`process`, `type`, `f`, `value`, optional `key`).
/// Processes named rather than numbered: the nemesis (`:nemesis`, "nemesis") is not a client and
/// its entries are left out; any other name is a client of its own, numbered -1, -2, … in the
/// order the names first appear (apart from the integers that other processes use).
struct ProcessNames {
    private var numbers: [String: Int] = [:]

    mutating func process(named name: String) -> Int? {
        if name == "nemesis" || name == ":nemesis" { return nil }
        if let number = numbers[name] { return number }
        let number = -(numbers.count + 1)
        numbers[name] = number
        return number
    }
}

public enum HistoryParser {
    public static func parse(_ text: String) throws -> [RawHistoryEntry] {
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "{" && trimmed.dropFirst().drop(while: { $0.isWhitespace }).first == "\"" {
            return try parseJSONLines(text)
        }
        return try parseEDN(text)
    }

    // MARK: EDN

    public static func parseEDN(_ text: String) throws -> [RawHistoryEntry] {
        var reader = EDNReader(Array(text.utf8))
        var entries: [RawHistoryEntry] = []
        var names = ProcessNames()
        while let (form, line) = try reader.nextForm() {
            switch form {
            case .map:
                entries.append(try entry(from: form, line: line, names: &names))
            case .vector(let items), .list(let items):
                for item in items { entries.append(try entry(from: item, line: line, names: &names)) }
            default:
                throw HistoryError(message: "expected an operation map like {:process 0, :type :invoke, :f :read, :value nil}", line: line)
            }
        }
        return entries
    }

    static func entry(from form: EDNForm, line: Int, names: inout ProcessNames) throws -> RawHistoryEntry {
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
        guard case .keyword(let type)? = fields["type"], let kind = RawHistoryEntry.Kind(rawValue: type) else {
            throw HistoryError(message: ":type must be :invoke, :ok, :fail or :info", line: line)
        }
        let function: String
        switch fields["f"] {
        case .keyword(let name)?, .symbol(let name)?, .string(let name)?: function = name
        default: throw HistoryError(message: "operation has no :f", line: line)
        }
        let value = try fields["value"].map { try $0.value(line: line) } ?? .none
        let key = try fields["key"].map { try $0.value(line: line) }
        return RawHistoryEntry(process: process, kind: kind, function: function, value: value, key: key, line: line)
    }

    // MARK: JSON lines

    public static func parseJSONLines(_ text: String) throws -> [RawHistoryEntry] {
        var entries: [RawHistoryEntry] = []
        var names = ProcessNames()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw HistoryError(message: "not a JSON object", line: index + 1)
            }
            let process: Int?
            if let number = object["process"] as? Int { process = number }
            else if let name = object["process"] as? String { process = names.process(named: name) }
            else { throw HistoryError(message: "\"process\" must be an integer or a string", line: index + 1) }
            guard let type = object["type"] as? String, let kind = RawHistoryEntry.Kind(rawValue: type) else {
                throw HistoryError(message: "\"type\" must be invoke, ok, fail or info", line: index + 1)
            }
            guard let function = object["f"] as? String else { throw HistoryError(message: "operation has no \"f\"", line: index + 1) }
            let value = try jsonValue(object["value"], line: index + 1)
            let key = object["key"].map { try? jsonValue($0, line: index + 1) } ?? nil
            entries.append(RawHistoryEntry(process: process, kind: kind, function: function, value: value, key: key, line: index + 1))
        }
        return entries
    }

    static func jsonValue(_ any: Any?, line: Int) throws -> Value {
        switch any {
        case nil, is NSNull: return .none
        case let flag as Bool where !(any is Int):
            return .bool(flag)
        case let number as NSNumber:
            guard let value = Int64(exactly: number.doubleValue) else {
                throw HistoryError(message: "only integer values are supported, got \(number)", line: line)
            }
            return .int(value)
        case let text as String: return .string(text)
        case let array as [Any]: return .list(try array.map { try jsonValue($0, line: line) })
        default: throw HistoryError(message: "unsupported value \(String(describing: any))", line: line)
        }
    }
}

/// The subset of EDN a history uses.
indirect enum EDNForm {
    case nilValue
    case boolean(Bool)
    case integer(Int64)
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

    mutating func skipSpace() {
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\n") { line += 1; offset += 1 }
            else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: ",") { offset += 1 }
            else if byte == UInt8(ascii: ";") { while offset < bytes.count && bytes[offset] != UInt8(ascii: "\n") { offset += 1 } }
            else { return }
        }
    }

    /// The next top-level form and the line it starts on, or nil at the end.
    mutating func nextForm() throws -> (EDNForm, Int)? {
        skipSpace()
        guard offset < bytes.count else { return nil }
        let start = line
        return (try form(depth: 0), start)
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
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "{") else {
                throw HistoryError(message: "unsupported tagged literal", line: line)
            }
            offset += 1
            return .set(try sequence(until: UInt8(ascii: "}"), depth: depth))
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
                guard let value = Int64(digits) else { throw HistoryError(message: "number out of range or not an integer: \(text)", line: line) }
                return .integer(value)
            }
            return .symbol(text)
        }
    }

    mutating func sequence(until close: UInt8, depth: Int) throws -> [EDNForm] {
        var items: [EDNForm] = []
        while true {
            skipSpace()
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
        offset += 1
        var result: [UInt8] = []
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: result, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { line += 1 }
            if byte == UInt8(ascii: "\\"), offset < bytes.count {
                let escaped = bytes[offset]
                offset += 1
                switch escaped {
                case UInt8(ascii: "n"): result.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): result.append(UInt8(ascii: "\t"))
                default: result.append(escaped)
                }
                continue
            }
            result.append(byte)
        }
        throw HistoryError(message: "unterminated string", line: line)
    }
}
