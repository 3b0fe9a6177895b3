#!/usr/bin/env python3
"""A small Maelstrom node: echo, unique-ids, broadcast, g-set, g-counter, pn-counter, and a
single-copy lin-kv, kafka log and transaction store (txn-rw-register, txn-list-append).

It reads one JSON message per line on stdin and writes JSON lines on stdout, like any node that
Maelstrom drives. `chaostrace run --node-cmd 'python3 examples/maelstrom/node.py' --workload W`
runs a cluster of them under faults.

Flags:
  --tso-ids          take unique ids from the lin-tso timestamp service

Flags (planted bugs, to see ChaosTrace find them):
  --lose-broadcasts  forward a broadcast (or g-set element) to neighbours once and never retry
                     (lost under partitions)
  --bad-ids          generate ids from a per-node counter only (duplicates across nodes)
  --local-kv         serve lin-kv from each node's own copy (stale reads across nodes)
  --local-counter    g-counter reads return this node's own adds only (lost increments);
                     implies --g-counter
  --local-kafka      serve kafka from each node's own log (the same offset handed out twice)
  --reads-first      run a txn's reads before its writes (a txn misses its own writes: found
                     with --option isolation=2)
  --snapshot-txn     run a txn on n0 in two phases, its reads (a snapshot) and then its writes,
                     with others' writes free to come in between (every read is clean, but lost
                     updates and write skew make cycles, found with --option isolation=3; a txn
                     that appends to a list it reads runs whole)
  --dirty-txn        run txns on each node's own registers, copying every write to the other
                     nodes at once, and abort a txn whose last step writes k0 after applying the
                     steps before it (other txns read aborted and overwritten writes: fine for
                     read uncommitted, found with --option isolation=1, as are lists that end up
                     in different orders on different nodes)

g-counter and pn-counter (run with --g-counter: their read looks like broadcast's) keep each
node's total under its own key in the seq-kv service, and a read sums them. g-set (run with
--g-set) spreads its elements as broadcast does.

The lin-kv store, the kafka logs and the txn registers are one in-memory copy on n0 (other nodes forward to it):
correct under the network suite, but a crash of n0 loses them, so the nodes suite finds that too.
"""
import json
import sys

flags = set(sys.argv[1:])
node_id = None
node_ids = []
next_id = 0
counter = 0
messages = set()
neighbours = []
# Broadcasts not yet acknowledged by a neighbour: (message, peer) -> msg_id.
unacked = {}
kv = {}
# lin-kv: requests forwarded to the leader n0, by the msg_id used there.
forwarded = {}
# lin-kv on n0: the response to each forwarded request, by (sender, msg_id).
applied = {}
# g-counter: this node's total, and client requests waiting on seq-kv replies, by msg_id sent.
total = 0
waiting = {}


def send(dest, body):
    global next_id
    next_id += 1
    body.setdefault("msg_id", next_id)
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}, sort_keys=True) + "\n")
    sys.stdout.flush()
    return body["msg_id"]


def reply(message, body):
    body["in_reply_to"] = message["body"].get("msg_id")
    send(message["src"], body)


def gossip():
    for (value, peer), _ in sorted(unacked.items()):
        send(peer, {"type": "gossip", "message": value})


logs = {}
committed = {}


def kafka_apply(body):
    kind = body["type"]
    if kind == "send":
        log = logs.setdefault(body["key"], [])
        log.append(body["msg"])
        return {"type": "send_ok", "offset": len(log) - 1}
    if kind == "poll":
        msgs = {}
        for key, start in body["offsets"].items():
            log = logs.get(key, [])
            msgs[key] = [[offset, log[offset]] for offset in range(max(0, start), len(log))]
        return {"type": "poll_ok", "msgs": msgs}
    if kind == "commit_offsets":
        for key, offset in body["offsets"].items():
            committed[key] = max(committed.get(key, -1), offset)
        return {"type": "commit_offsets_ok"}
    offsets = {key: committed[key] for key in body["keys"] if key in committed}
    return {"type": "list_committed_offsets_ok", "offsets": offsets}


registers = {}


def write(key, value, append):
    if append:
        registers[key] = registers.get(key, []) + [value]
    else:
        registers[key] = value


def txn_apply(body):
    steps = body["txn"]
    order = range(len(steps))
    if "--reads-first" in flags:
        order = sorted(order, key=lambda index: steps[index][0] != "r")
    result = [list(step) for step in steps]
    for index in order:
        function, key, value = steps[index]
        if "--dirty-txn" in flags and index == len(steps) - 1 and function != "r" and key == 0:
            return {"type": "error", "code": 30, "text": "txn aborted"}
        if function == "r":
            current = registers.get(key)
            result[index][2] = list(current) if isinstance(current, list) else current
        else:
            write(key, value, function == "append")
            if "--dirty-txn" in flags:
                for peer in neighbours:
                    send(peer, {"type": "txn_copy", "key": key, "value": value, "append": function == "append"})
    return {"type": "txn_ok", "txn": result}


# --snapshot-txn: transactions in two phases on the leader, by forwarded msg_id: their reads at
# once, then their writes at once, with nothing to stop another's writes coming in between.
snapshots = {}


def snapshot_txn(message):
    steps = message["body"]["txn"]
    keys = sorted({step[1] for step in steps if step[0] == "r"})
    written = {step[1] for step in steps if step[0] != "r"}
    state = {"client": message, "steps": steps, "snapshot": None}
    # A txn that reads a list it appends to runs whole (two phases would put others' appends
    # between its own read and its appends); the others read, then write blindly.
    appends = any(step[0] == "append" for step in steps)
    if keys and not (appends and written.intersection(keys)):
        request = {"type": "txn", "txn": [["r", key, None] for key in keys]}
    else:
        state["snapshot"] = {}
        request = {"type": "txn", "txn": [list(step) for step in steps]}
    snapshots[send(node_ids[0], {"type": "forward", "request": request})] = state


def snapshot_answer(state, response):
    if response.get("type") != "txn_ok":
        reply(state["client"], dict(response))
        return
    steps = state["steps"]
    if state["snapshot"] is None:
        # The reads came back: each read step sees the snapshot and the txn's own writes so far.
        state["snapshot"] = {step[1]: step[2] for step in response["txn"]}
        view = dict(state["snapshot"])
        result = []
        for function, key, value in steps:
            if function == "r":
                current = view.get(key)
                result.append([function, key, list(current) if isinstance(current, list) else current])
            else:
                view[key] = (view.get(key) or []) + [value] if function == "append" else value
                result.append([function, key, value])
        state["result"] = result
        writes = [list(step) for step in steps if step[0] != "r"]
        if writes:
            snapshots[send(node_ids[0], {"type": "forward", "request": {"type": "txn", "txn": writes}})] = state
            return
        reply(state["client"], {"type": "txn_ok", "txn": result})
    else:
        reply(state["client"], {"type": "txn_ok", "txn": state.get("result") or response["txn"]})


def kv_apply(body):
    if body["type"] == "txn":
        return txn_apply(body)
    if body["type"] in ("send", "poll", "commit_offsets", "list_committed_offsets"):
        return kafka_apply(body)
    key = str(body.get("key"))
    kind = body["type"]
    if kind == "read":
        if key not in kv:
            return {"type": "error", "code": 20, "text": "no such key"}
        return {"type": "read_ok", "value": kv[key]}
    if kind == "write":
        kv[key] = body["value"]
        return {"type": "write_ok"}
    if kind == "cas":
        if key not in kv:
            return {"type": "error", "code": 20, "text": "no such key"}
        if kv[key] != body["from"]:
            return {"type": "error", "code": 22, "text": "expected %r" % kv[key]}
        kv[key] = body["to"]
        return {"type": "cas_ok"}
    return {"type": "error", "code": 10, "text": "unsupported " + kind}


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    message = json.loads(line)
    body = message["body"]
    kind = body["type"]
    if kind == "init":
        # msg_ids unique across this node's restarts too (each init has its own msg_id), so the
        # leader's table of forwarded requests never mistakes a new request for an old one.
        next_id = body["msg_id"] * 1000000
        node_id = body["node_id"]
        node_ids = body["node_ids"]
        neighbours = [n for n in node_ids if n != node_id]
        reply(message, {"type": "init_ok"})
    elif kind == "echo":
        reply(message, {"type": "echo_ok", "echo": body["echo"]})
    elif kind == "generate" and "--tso-ids" in flags:
        waiting[send("lin-tso", {"type": "ts"})] = {"client": message}
    elif message["src"] == "lin-tso":
        state = waiting.pop(body.get("in_reply_to"), None)
        if state is not None and kind == "ts_ok":
            reply(state["client"], {"type": "generate_ok", "id": body["ts"]})
    elif kind == "generate":
        counter += 1
        if "--bad-ids" in flags:
            reply(message, {"type": "generate_ok", "id": counter})
        else:
            reply(message, {"type": "generate_ok", "id": "%s-%d" % (node_id, counter)})
    elif kind == "topology":
        neighbours = [n for n in body["topology"].get(node_id, []) if n != node_id]
        reply(message, {"type": "topology_ok"})
    elif kind == "broadcast" or kind == "gossip":
        value = body["message"]
        if value not in messages:
            messages.add(value)
            for peer in neighbours:
                if peer != message["src"]:
                    if "--lose-broadcasts" in flags:
                        send(peer, {"type": "gossip", "message": value})
                    else:
                        unacked[(value, peer)] = True
                        send(peer, {"type": "gossip", "message": value})
        if kind == "broadcast":
            reply(message, {"type": "broadcast_ok"})
        else:
            reply(message, {"type": "gossip_ok", "message": value})
    elif kind == "gossip_ok":
        unacked.pop((body.get("message"), message["src"]), None)
    elif kind == "add" and "element" in body:
        value = body["element"]
        if value not in messages:
            messages.add(value)
            for peer in neighbours:
                if "--lose-broadcasts" not in flags:
                    unacked[(value, peer)] = True
                send(peer, {"type": "gossip", "message": value})
        reply(message, {"type": "add_ok"})
    elif kind == "read" and "key" not in body and "--g-set" in flags:
        reply(message, {"type": "read_ok", "value": sorted(messages)})
        gossip()
    elif kind == "add":
        total += body["delta"]
        write_id = send("seq-kv", {"type": "write", "key": node_id, "value": total})
        waiting[write_id] = {"client": message, "left": 1, "sum": 0, "kind": "add"}
    elif kind == "read" and "key" not in body and ("--g-counter" in flags or "--local-counter" in flags):
        if "--local-counter" in flags:
            reply(message, {"type": "read_ok", "value": total})
        else:
            state = {"client": message, "left": len(node_ids), "sum": 0, "kind": "read"}
            for node in node_ids:
                waiting[send("seq-kv", {"type": "read", "key": node})] = state
    elif message["src"] == "seq-kv":
        state = waiting.pop(body.get("in_reply_to"), None)
        if state is not None:
            if kind == "read_ok":
                state["sum"] += body["value"]
            state["left"] -= 1
            if state["left"] == 0:
                if state["kind"] == "add":
                    reply(state["client"], {"type": "add_ok"})
                else:
                    reply(state["client"], {"type": "read_ok", "value": state["sum"]})
    elif kind == "read" and "key" not in body:
        reply(message, {"type": "read_ok", "messages": sorted(messages)})
        # Reads come often: a good moment to retry what is unacknowledged.
        gossip()
    elif kind == "txn_copy":
        write(body["key"], body["value"], body.get("append"))
    elif kind == "txn" and "--snapshot-txn" in flags and node_id != node_ids[0]:
        snapshot_txn(message)
    elif kind == "forward_ok" and body.get("in_reply_to") in snapshots:
        snapshot_answer(snapshots.pop(body["in_reply_to"]), body["response"])
    elif kind in ("read", "write", "cas", "send", "poll", "commit_offsets", "list_committed_offsets", "txn"):
        leader = node_ids[0]
        if "--local-kv" in flags or "--local-kafka" in flags or "--dirty-txn" in flags or node_id == leader:
            reply(message, kv_apply(body))
        else:
            # Forward to the leader, answer the client when it answers.
            forwarded_id = send(leader, {"type": "forward", "request": body})
            forwarded[forwarded_id] = message
    elif kind == "forward":
        # The network may deliver a message twice: apply each forwarded request once.
        key = (message["src"], body.get("msg_id"))
        if key not in applied:
            applied[key] = kv_apply(body["request"])
        reply(message, {"type": "forward_ok", "response": applied[key]})
    elif kind == "forward_ok":
        original = forwarded.pop(body.get("in_reply_to"), None)
        if original is not None:
            reply(original, dict(body["response"]))
