#!/usr/bin/env python3
"""The obvious alternative to coord-hook, for the benchmark: a minimal
standard-library script that makes the hook's three reads and prints a
similar block. Usage: hook_baseline.py API_BASE SESSION USER"""
import json
import sys
import urllib.parse
import urllib.request


def get(base, path, query):
    url = base + "/api/coord" + path + "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def main():
    base, session, user = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.stdin.read()
    try:
        msgs = get(base, "/messages", {"session": session, "unread": "true"})
        todos = get(base, "/todos", {"user": user, "include_unassigned": "true", "status": "pending"})
        locks = get(base, "/locks", {"session_id": session})
    except Exception as e:  # the session must go on
        print(f"coord: API unreachable at {base}: {e}")
        return
    out = [f"=== UNREAD COORD MESSAGES: {len(msgs)} for {session} ==="]
    for m in reversed(msgs):
        out.append(f"--- message #{m['id']} · from {m['from_session']} · {m['created_at']}")
        out.extend("| " + line for line in m["body"].split("\n"))
    out.append(f"OPEN TODOS ({len(todos)})")
    out.extend(f"- #{t['id']} {t['text']}" for t in todos)
    out.append(f"YOUR LOCKS ({len(locks)})")
    out.extend(f"- #{l['id']} {l['project']}/{l['resource']} until {l['expires_at']}" for l in locks)
    out.append("=== END COORD MESSAGES ===")
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": "\n".join(out)}}))


if __name__ == "__main__":
    main()
