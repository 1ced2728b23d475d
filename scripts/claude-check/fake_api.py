#!/usr/bin/env python3
"""A tiny fake of the Anthropic Messages API, enough for Claude Code to run a
session offline against 127.0.0.1. Python 3 standard library only.

    python3 fake_api.py --port 0 --log /tmp/x/requests.jsonl --port-file /tmp/x/port

POST /v1/messages answers with a streamed (SSE) or plain JSON message:

"The newest turn" is every message after the last assistant one: the user
message (a prompt, a wake-up, tool results) and the system-role context
Claude Code 2.1.331 puts beside it (SessionStart hook additional context).

- the newest turn holds a tool_result  -> text "fake-api: tool said: <output, lines joined by ' / '>"
- else, when the request offers the Bash tool and the newest turn holds
    @@bash:CMD@@   -> a tool_use of Bash running CMD
    @@reply@@      -> a tool_use of Bash running `coord msg reply <ID> "on it"`,
                      ID being the coord message whose body carries the marker
- else, when the request offers the Write tool and the newest turn holds
    @@write:PATH@@ -> a tool_use of Write creating PATH (content "fake-api wrote this")
- else text "fake-api answer #N" plus " ack TEXT" for every @@say:TEXT@@ seen.

Every request (path, a few headers, the JSON body) is appended as one JSON
line to --log, with what was answered, so a check can see exactly what
context reached the model. Anything else gets a small JSON answer (404 for
unknown paths) and is logged too.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTER = [0]
ARGS = None

BASH_RE = re.compile(r"@@bash:(.+?)@@", re.S)
WRITE_RE = re.compile(r"@@write:([^@]+?)@@")
SAY_RE = re.compile(r"@@say:([^@]+?)@@")
# A coord block: "--- message #14 · from ..." followed by "| body" lines.
MSG_RE = re.compile(r"--- message #(\d+)[^\n]*\n((?:(?:subject:[^\n]*|\|[^\n]*)\n?)*)")


def texts(content):
    """All text in a message's content (string or blocks), tool results too."""
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            out.append(b.get("text", ""))
        elif b.get("type") == "tool_result":
            out.extend(texts(b.get("content")))
    return out


def newest(body):
    """The messages after the last assistant one: the user turn (or tool
    results) and any system-role context Claude Code put beside it."""
    out = []
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "assistant":
            break
        out.append(m)
    return list(reversed(out))


def decide(body, n):
    """-> list of content blocks (dicts) and the stop reason."""
    msgs = newest(body)
    blocks = [b for m in msgs if isinstance(m.get("content"), list) for b in m["content"]]
    tool_results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    text = "\n".join(t for m in msgs for t in texts(m.get("content")))
    has_bash = any(t.get("name") == "Bash" for t in body.get("tools") or [])
    if tool_results:
        said = "\n".join(texts(tool_results[-1].get("content"))).strip().splitlines()
        said = " / ".join(" ".join(l.split()) for l in said if l.strip())
        return [{"type": "text", "text": "fake-api: tool said: " + said[:300]}], "end_turn"
    if has_bash:
        cmd = None
        m = BASH_RE.search(text)
        if m:
            cmd = m.group(1).strip()
        elif "@@reply@@" in text:
            for mm in MSG_RE.finditer(text):
                if "@@reply@@" in mm.group(2):
                    cmd = 'coord msg reply %s "on it"' % mm.group(1)
                    break
        if cmd:
            return [
                {"type": "text", "text": "fake-api: running a command"},
                {"type": "tool_use", "id": "toolu_fake%06d" % n, "name": "Bash",
                 "input": {"command": cmd, "description": "fake-api command"}},
            ], "tool_use"
    has_write = any(t.get("name") == "Write" for t in body.get("tools") or [])
    m = WRITE_RE.search(text) if has_write else None
    if m:
        return [
            {"type": "text", "text": "fake-api: writing a file"},
            {"type": "tool_use", "id": "toolu_fake%06d" % n, "name": "Write",
             "input": {"file_path": m.group(1).strip(), "content": "fake-api wrote this\n"}},
        ], "tool_use"
    says = SAY_RE.findall(text)
    out = "fake-api answer #%d" % n
    if says:
        out += "".join(" ack " + s for s in says)
    return [{"type": "text", "text": out}], "end_turn"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # keep stderr quiet
        pass

    def _log(self, rec):
        with LOCK:
            with open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._log({"t": time.time(), "method": "GET", "path": self.path})
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake"}})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        t0 = time.time()
        n_bytes = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n_bytes) if n_bytes else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        path = self.path.split("?")[0]
        rec = {"t": t0, "method": "POST", "path": self.path,
               "headers": {k: v for k, v in self.headers.items()
                           if k.lower() in ("user-agent", "anthropic-beta", "x-app")},
               "body": body}
        if path.endswith("/v1/messages/count_tokens"):
            self._log(rec)
            return self._json(200, {"input_tokens": 42})
        if not path.endswith("/v1/messages"):
            self._log(rec)
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake"}})
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
        blocks, stop = decide(body, n)
        rec["n"] = n
        try:  # Claude Code puts its conversation id here
            rec["session_id"] = json.loads(body["metadata"]["user_id"]).get("session_id")
        except Exception:
            rec["session_id"] = None
        rec["answer"] = blocks
        self._log(rec)
        model = body.get("model", "fake-model")
        if ARGS.delay:
            time.sleep(ARGS.delay)
        if not body.get("stream"):
            return self._json(200, {
                "id": "msg_fake%06d" % n, "type": "message", "role": "assistant",
                "model": model, "content": blocks, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(name, obj):
            self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(obj))).encode())
            self.wfile.flush()

        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_fake%06d" % n, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}})
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                ev("content_block_start", {"type": "content_block_start", "index": i,
                                           "content_block": {"type": "text", "text": ""}})
                ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                           "delta": {"type": "text_delta", "text": b["text"]}})
            else:
                ev("content_block_start", {"type": "content_block_start", "index": i,
                                           "content_block": {"type": "tool_use", "id": b["id"],
                                                             "name": b["name"], "input": {}}})
                ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                           "delta": {"type": "input_json_delta",
                                                     "partial_json": json.dumps(b["input"])}})
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        ev("message_delta", {"type": "message_delta",
                             "delta": {"stop_reason": stop, "stop_sequence": None},
                             "usage": {"output_tokens": 5}})
        ev("message_stop", {"type": "message_stop"})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0, help="0: pick a free one")
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    print("fake-api listening on 127.0.0.1:%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
