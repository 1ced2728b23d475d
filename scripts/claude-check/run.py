#!/usr/bin/env python3
"""Drive the real Claude Code CLI (interactive, under tmux) offline against
fake_api.py and check what coord-hook does in it. Python 3 stdlib, tmux, and
Claude Code installed from npm (see README.md). Not part of CI.

    python3 scripts/claude-check/run.py [--bin DIR] [--claude PATH] [--only 1,2,3] [--runs 5] [--keep]

Prints one PASS/FAIL line per check, with numbers; exits 1 if any failed.
Everything it starts (fake API, tmux server on its own socket, load
processes) it stops by pid / socket; scratch folders are under /tmp
(cc-check-*), removed unless --keep or a check failed.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "sk-ant-fake-0123456789abcdefghij"  # any key; Claude Code only asks to approve it
ARGS = None
RESULTS = []  # (ok, line)
FACTS = []  # what Claude Code passed to hooks, for the report
KEEP_ROOTS = []


def log(*a):
    if ARGS.verbose:
        print("   ..", *a, flush=True)


def result(ok, name, detail):
    line = "%s %s: %s" % ("PASS" if ok else "FAIL", name, detail)
    RESULTS.append((ok, line))
    print(line, flush=True)


def wait_for(pred, timeout, step=0.2):
    """Poll pred() until it returns something truthy or timeout; -> value or None."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            return None
        time.sleep(step)


def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError, TypeError):
        return False


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COORD_", "CLAUDE", "ANTHROPIC_", "TMUX"))}
    return env


class World:
    """One scratch machine: HOME with identity + coord-hook install, project
    folders, a fake API, and a tmux server on its own socket."""

    def __init__(self, label, projects=("proj",), install_args=()):
        self.label = label
        self.root = tempfile.mkdtemp(prefix="cc-check-%s-" % label, dir="/tmp")
        self.home = os.path.join(self.root, "home")
        self.claude_dir = os.path.join(self.home, ".claude")
        os.makedirs(self.claude_dir)
        with open(os.path.join(self.claude_dir, "identity.json"), "w") as f:
            json.dump({"user": "tester", "machine": "TESTBOX"}, f)
        self.projects = {}
        for p in projects:
            d = os.path.join(self.root, p)
            os.makedirs(d)
            self.projects[p] = d
        self.api_log = os.path.join(self.root, "api.jsonl")
        self.spy_log = os.path.join(self.root, "hooks.jsonl")
        self.sock = "cc-check-%d-%s" % (os.getpid(), label)
        self.api = None
        self.port = None
        self._start_api()
        r = self.run([os.path.join(ARGS.bin, "coord-hook"), "install", *install_args])
        if r.returncode != 0:
            raise SystemExit("coord-hook install failed: %s%s" % (r.stdout, r.stderr))
        self._add_spy()
        self._write_claude_json()

    # -- setup -------------------------------------------------------------
    def _add_spy(self):
        """An extra hook on every event that records Claude Code's stdin and
        the env vars it passes (CLAUDE_PID, CLAUDE_ENV_FILE). It is a separate
        entry: coord-hook's own entries are left exactly as install wrote them."""
        spy = os.path.join(self.root, "spy_hook.py")
        with open(spy, "w") as f:
            f.write(
                "import json, os, sys, time\n"
                "raw = sys.stdin.read()\n"
                "try:\n    inp = json.loads(raw)\nexcept ValueError:\n    inp = raw\n"
                "rec = {'event': sys.argv[1], 't': time.time(), 'stdin': inp,\n"
                "       'env': {k: v for k, v in os.environ.items() if k.startswith(('CLAUDE', 'COORD'))}}\n"
                "with open(%r, 'a') as f:\n    f.write(json.dumps(rec) + '\\n')\n" % self.spy_log)
        path = os.path.join(self.claude_dir, "settings.json")
        with open(path) as f:
            s = json.load(f)
        for ev in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"):
            s.setdefault("hooks", {}).setdefault(ev, []).append(
                {"hooks": [{"type": "command", "timeout": 5,
                            "command": "%s %s %s" % (shlex.quote(sys.executable), shlex.quote(spy), ev)}]})
        with open(path, "w") as f:
            json.dump(s, f, indent=2)

    def _write_claude_json(self):
        cfg = {
            "hasCompletedOnboarding": True,
            "numStartups": 3,
            "theme": "dark",
            # Claude Code asks once whether to use ANTHROPIC_API_KEY; it keys
            # the answer by the key's last 20 characters.
            "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []},
            "projects": {d: {"hasTrustDialogAccepted": True,
                             "hasCompletedProjectOnboarding": True,
                             "allowedTools": []}
                         for d in self.projects.values()},
        }
        with open(os.path.join(self.home, ".claude.json"), "w") as f:
            json.dump(cfg, f)

    def _start_api(self):
        pf = os.path.join(self.root, "api.port")
        self.api_out = open(os.path.join(self.root, "api.out"), "w")
        self.api = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_api.py"), "--port", "0",
             "--log", self.api_log, "--port-file", pf],
            stdout=self.api_out, stderr=subprocess.STDOUT, env=clean_env())
        if not wait_for(lambda: os.path.exists(pf), 10):
            raise SystemExit("fake API did not start")
        with open(pf) as f:
            self.port = int(f.read())

    # -- environment -------------------------------------------------------
    def env(self, **extra):
        env = clean_env()
        env.update({
            "HOME": self.home,
            "PATH": "%s:%s:%s" % (ARGS.bin, os.path.dirname(ARGS.claude), env.get("PATH", "")),
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.port,
            "ANTHROPIC_API_KEY": KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "NO_COLOR": "1",
        })
        env.update(extra)
        return env

    def run(self, argv, timeout=30, **extra):
        return subprocess.run(argv, env=self.env(**extra), capture_output=True, text=True, timeout=timeout)

    def peer(self, *argv):
        """coord as a session on another machine (same HOME, same store)."""
        return self.run([os.path.join(ARGS.bin, "coord"), *argv], COORD_SESSION="OTHERBOX/peer")

    # -- tmux --------------------------------------------------------------
    def tmux(self, *a, check=False):
        return subprocess.run(["tmux", "-L", self.sock, *a], capture_output=True, text=True,
                              timeout=15, env=clean_env(), check=check)

    def start(self, name, project, claude_args=()):
        envfile = os.path.join(self.root, "env-%s.sh" % name)
        with open(envfile, "w") as f:
            for k, v in self.env().items():
                f.write("export %s=%s\n" % (k, shlex.quote(v)))
        cmd = ". %s; cd %s; %s %s; echo \"[claude exited $?]\"; sleep 600" % (
            shlex.quote(envfile), shlex.quote(self.projects[project]),
            shlex.quote(ARGS.claude), " ".join(shlex.quote(a) for a in claude_args))
        self.tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50", "bash", "-c", cmd, check=True)
        return Window(self, name)

    def api_requests(self, since=0.0):
        out = []
        try:
            with open(self.api_log) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if r.get("t", 0) >= since and r.get("n"):
                        out.append(r)
        except FileNotFoundError:
            pass
        return out

    def spy(self):
        out = []
        try:
            with open(self.spy_log) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return out

    def registry(self):
        try:
            with open(os.path.join(self.claude_dir, "coord-windows.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def window_entry(self, pid):
        for w in self.registry().get("windows", []):
            if w.get("pid") == pid:
                return w
        return None

    def close(self, failed):
        self.tmux("kill-server")
        if self.api and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(5)
            except subprocess.TimeoutExpired:
                self.api.kill()
        self.api_out.close()
        if failed or ARGS.keep:
            KEEP_ROOTS.append(self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class Window:
    def __init__(self, world, name):
        self.w = world
        self.name = name
        self.pid = None  # CLAUDE_PID: the claude process under the pane's bash

    def pane(self, history=True):
        a = ["capture-pane", "-p", "-J", "-t", self.name]
        if history:
            a += ["-S", "-1000"]
        return self.w.tmux(*a).stdout

    def claude_pid(self):
        r = self.w.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}")
        try:
            bash = int(r.stdout.strip())
        except ValueError:
            return None
        kids = children(bash)
        return kids[0] if kids else None

    def idle(self):
        """The input box shows an empty prompt and no turn is running."""
        screen = self.pane(history=False)
        if "esc to interrupt" in screen:
            return False
        return any(re.match(r"^❯\s*$", l) for l in screen.splitlines())

    def wait_idle(self, timeout=60):
        ok = wait_for(self.idle, timeout, 0.1)
        self.pid = self.pid or self.claude_pid()
        return ok

    def type(self, text):
        self.w.tmux("send-keys", "-t", self.name, "-l", text)
        time.sleep(0.3)
        self.w.tmux("send-keys", "-t", self.name, "Enter")

    def exit(self, timeout=20):
        self.type("/exit")
        return wait_for(lambda: "[claude exited" in self.pane(), timeout)

    def session_start(self, source=None):
        for r in self.w.spy():
            if (r["event"] == "SessionStart" and str(r["env"].get("CLAUDE_PID")) == str(self.pid)
                    and (source is None or (isinstance(r["stdin"], dict) and r["stdin"].get("source") == source))):
                return r
        return None


def newest_text(req):
    """The text of the messages after the last assistant one (what this turn added)."""
    msgs = req["body"].get("messages") or []
    out = []
    for m in reversed(msgs):
        if m.get("role") == "assistant":
            break
        out.append(m)
    return "\n".join(t for m in out for t in texts(m.get("content")))


def context_text(req):
    """All non-assistant text of a request: everything the model was shown."""
    return "\n".join(t for m in req["body"].get("messages") or [] if m.get("role") != "assistant"
                     for t in texts(m.get("content")))


def texts(content):
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or []:
        if isinstance(b, dict):
            if b.get("type") == "text":
                out.append(b.get("text", ""))
            elif b.get("type") == "tool_result":
                out.extend(texts(b.get("content")))
    return out


def main_requests(reqs, session_id=None):
    """The conversation's own requests (they offer tools), of one conversation."""
    return [r for r in reqs if r["body"].get("tools")
            and (session_id is None or r.get("session_id") == session_id)]


def excerpt(text, n=12):
    lines = [l.rstrip() for l in text.splitlines() if l.strip()]
    return "\n      | " + "\n      | ".join(lines[-n:])


def sent_id(r):
    m = re.search(r"sent message (\d+)", r.stdout + r.stderr)
    return int(m.group(1)) if m else None


# -- check 1 ---------------------------------------------------------------
def check_wake():
    n = ARGS.runs
    load = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)]
    woken, lat, shown, notes = 0, [], 0, []
    again, lat2, labels = 0, [], {}
    try:
        for i in range(1, n + 1):
            w = World("wake%d" % i)
            failed = True
            try:
                win = w.start("idle", "proj")
                t_start = time.time()
                if not win.wait_idle(90):
                    notes.append("run %d: UI never idle:%s" % (i, excerpt(win.pane())))
                    continue
                t_idle = time.time()
                ss = win.session_start()
                entry = win.w.window_entry(win.pid) or {}
                token = "WAKE%d_%d" % (i, int(time.time() * 1000) % 100000)
                t_send = time.time()
                r = w.peer("msg", "send", "TESTBOX", "hello idle window @@say:%s@@" % token, "--force")
                if r.returncode != 0:
                    notes.append("run %d: send failed: %s" % (i, r.stderr.strip()))
                    continue
                req = wait_for(lambda: next((q for q in main_requests(w.api_requests(t_send))
                                             if token in newest_text(q)), None), ARGS.wake_timeout, 0.05)
                seen_pane = wait_for(lambda: ("ack " + token) in win.pane(), 10 if req else 0.1)
                log("run %d: start->idle %.1fs, SessionStart hook %s, waiter at send %s, api %s, pane %s" % (
                    i, t_idle - t_start, "logged" if ss else "NOT YET", entry.get("waiter"),
                    "%.2fs" % (req["t"] - t_send) if req else "-", bool(seen_pane)))
                if req:
                    woken += 1
                    lat.append(req["t"] - t_send)
                else:
                    notes.append("run %d: no request with the message within %ss (waiter at send: %s; hook ran: %s):%s" % (
                        i, ARGS.wake_timeout, entry.get("waiter"), bool(ss), excerpt(win.pane())))
                if seen_pane:
                    shown += 1
                elif req:
                    notes.append("run %d: API saw it, pane shows no answer:%s" % (i, excerpt(win.pane())))
                # A second message after the woken turn: the waiter Stop
                # started must wake it again.
                req2 = None
                if seen_pane and wait_for(win.idle, 10):
                    time.sleep(0.5)
                    token2 = token + "B"
                    t2 = time.time()
                    w.peer("msg", "send", "TESTBOX", "second one @@say:%s@@" % token2, "--force")
                    req2 = wait_for(lambda: next((q for q in main_requests(w.api_requests(t2))
                                                  if token2 in newest_text(q)), None), ARGS.wake_timeout, 0.05)
                    if req2:
                        again += 1
                        lat2.append(req2["t"] - t2)
                    else:
                        notes.append("run %d: second message did not wake it:%s" % (i, excerpt(win.pane())))
                for q in (req, req2):
                    m = re.search(r'Stop hook blocking error from command "([^"]*)"', newest_text(q) if q else "")
                    if m:
                        labels[m.group(1)] = labels.get(m.group(1), 0) + 1
                entry = win.w.window_entry(win.pid) or entry
                ended = win.exit()
                waiter = entry.get("waiter")
                left = wait_for(lambda: not alive(waiter), 5) if waiter else True
                if not ended or not left:
                    notes.append("run %d: after /exit: exited %s, waiter %s gone %s" % (i, bool(ended), waiter, bool(left)))
                failed = not (req and seen_pane and req2)
            finally:
                w.close(failed)
    finally:
        for p in load:
            p.kill()
            p.wait()
    ok = woken == n and shown == n and again == n

    def stats(xs):
        return ("min %.2fs median %.2fs max %.2fs" % (min(xs), sorted(xs)[len(xs) // 2], max(xs))) if xs else "-"
    result(ok, "1 idle window woken before its first prompt (2x yes load)",
           "woken %d/%d, answer in pane %d/%d, latency send->API %s; woken again after that turn %d/%d (%s); "
           "wake-ups labelled %s" % (woken, n, shown, n, stats(lat), again, n, stats(lat2),
                                     ", ".join("%r x%d" % kv for kv in sorted(labels.items()))))
    for x in notes:
        print("   " + x)


# -- check 2 ---------------------------------------------------------------
def check_resume():
    w = World("resume", projects=("proja", "projb"))
    failed = True
    problems, facts = [], []
    summary, ok = None, False
    try:
        a = w.start("a", "proja")
        if not a.wait_idle(90):
            problems.append("window A never idle:" + excerpt(a.pane()))
            return
        name_a = (wait_for(lambda: w.window_entry(a.pid), 10) or {}).get("name")
        b = w.start("b", "projb")
        if not b.wait_idle(90):
            problems.append("window B never idle:" + excerpt(b.pane()))
            return
        eb = wait_for(lambda: w.window_entry(b.pid), 10) or {}
        name_b = eb.get("name")
        ss_b = wait_for(lambda: b.session_start("startup"), 10)
        sid = ss_b["stdin"].get("session_id") if ss_b else None
        facts.append("A pid %s -> %s; B pid %s -> %s, conversation %s" % (a.pid, name_a, b.pid, name_b, sid))
        if name_a != "claude-main" or name_b != "projb" or not sid:
            problems.append("names before resume: A %r, B %r, session id %r" % (name_a, name_b, sid))
        # M1 reaches B while it is open (a wake-up), so B's history holds it.
        # (Sent without --force: wait until the fleet knows the address; the
        # registry names the window a moment before the presence lands.)
        def known():
            q = w.peer("sessions", "--json")
            try:
                return any(x.get("session_id") == "TESTBOX/projb" for x in json.loads(q.stdout or "[]"))
            except ValueError:
                return False
        if not wait_for(known, 10, 0.2):
            problems.append("coord sessions never listed TESTBOX/projb")
        r1 = w.peer("msg", "send", "TESTBOX/projb", "while open @@say:OPEN1@@")
        m1 = sent_id(r1)
        if r1.returncode != 0 or m1 is None:
            problems.append("send to B while open: rc %d %s" % (r1.returncode, r1.stderr.strip()))
        if not wait_for(lambda: "ack OPEN1" in b.pane(), ARGS.wake_timeout + 5):
            problems.append("B not woken by message %s (%s):%s" % (m1, r1.stderr.strip(), excerpt(b.pane())))
        if not wait_for(b.idle, 20):
            problems.append("B not idle after the wake-up")
        b.type("who are you @@bash:coord whoami@@")
        said = wait_for(lambda: re.search(r"tool said: .*?session (\S+)", b.pane()), 30)
        before = said.group(1) if said else None
        if before != "TESTBOX/projb":
            problems.append("coord whoami in B before exit said %r:%s" % (before, excerpt(b.pane())))
        transcript = ss_b["stdin"].get("transcript_path") if ss_b else None
        waiter_b = (w.window_entry(b.pid) or {}).get("waiter")
        if not b.exit():
            problems.append("B did not exit:" + excerpt(b.pane()))
        gone = wait_for(lambda: not alive(waiter_b), 5) if waiter_b else True
        # M2 is sent while B is closed.
        r2 = w.peer("msg", "send", "TESTBOX/projb", "while closed @@say:CLOSED2@@")
        m2 = sent_id(r2)
        if r2.returncode != 0 or m2 is None:
            problems.append("send to the closed address: rc %d %s" % (r2.returncode, r2.stderr.strip()))
        time.sleep(2)
        # Resume in a new process.
        t_resume = time.time()
        b2 = w.start("b2", "projb", ["--resume", sid or "none"])
        if not b2.wait_idle(90):
            problems.append("resumed window never idle:" + excerpt(b2.pane()))
            return
        e2 = wait_for(lambda: w.window_entry(b2.pid), 10) or {}
        ss2 = wait_for(lambda: b2.session_start(), 10)
        src = ss2["stdin"].get("source") if ss2 else None
        sid2 = ss2["stdin"].get("session_id") if ss2 else None
        # Claude Code gives each SessionStart hook its own file
        # (session-env/<conversation>/sessionstart-hook-<index>.sh) and
        # sources them all; read every one of them.
        envfile = (ss2 or {}).get("env", {}).get("CLAUDE_ENV_FILE")

        def env_exports():
            if not envfile:
                return ""
            d = os.path.dirname(envfile)
            out = []
            for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                try:
                    with open(os.path.join(d, fn)) as f:
                        out += [l.strip() for l in f if "COORD_SESSION" in l]
                except OSError:
                    pass
            return " | ".join(out)
        env_text = wait_for(env_exports, 5) or ""
        facts.append("resumed: pid %s -> %s; SessionStart source=%r session_id %s (%s the old one); env file: %s" % (
            b2.pid, e2.get("name"), src, sid2, "same as" if sid2 == sid else "DIFFERENT from", env_text or "-"))
        time.sleep(4)  # give a (wrong) wake-up its chance before typing
        woke = [q for q in main_requests(w.api_requests(t_resume)) if "message #%s " % m2 in newest_text(q)]
        b2.type("who are you now @@bash:coord whoami@@")
        said2 = wait_for(lambda: re.search(r"tool said: .*?session (\S+)", b2.pane()), 30)
        after = said2.group(1) if said2 else None
        time.sleep(1)
        reqs = main_requests(w.api_requests(t_resume))
        last = reqs[-1] if reqs else None
        ctx = context_text(last) if last else ""
        c1 = ctx.count("message #%s " % m1)
        c2 = ctx.count("message #%s " % m2)
        turns2 = sum(1 for q in reqs if "message #%s " % m2 in newest_text(q))
        carrier = next((q for q in reqs if "message #%s " % m2 in newest_text(q)), None)
        how = "-"
        if carrier:
            for t in newest_text(carrier).split("\n\n"):
                if "message #%s " % m2 in t or "hook additional context" in t:
                    m = re.search(r"(\w+ hook additional context|Stop hook blocking error)", t)
                    if m and "message #%s " % m2 in t[m.start():]:
                        how = m.group(1)
                        break
        ss_a = a.session_start("startup")
        sid_a = ss_a["stdin"].get("session_id") if ss_a else None
        in_a = sum(1 for q in main_requests(w.api_requests(), sid_a)
                   if "message #%s " % m1 in context_text(q) or "message #%s " % m2 in context_text(q))
        if in_a:
            problems.append("window A (claude-main) was shown messages sent to projb in %d requests" % in_a)
        facts.append("the closed-time message reached the model as: %s; A's requests carrying B's messages: %d" % (how, in_a))
        facts.append("after resume: %d requests; in the last one message #%s (seen before exit) x%d, "
                     "#%s (sent while closed) x%d; turns that newly carried #%s: %d (of which before the prompt: %d)" % (
                         len(reqs), m1, c1, m2, c2, m2, turns2, len(woke)))
        ok = (e2.get("name") == "projb" and after == "TESTBOX/projb" and env_text.endswith("COORD_SESSION='TESTBOX/projb'")
              and c1 == 1 and c2 == 1 and turns2 == 1 and not problems)
        if not ok and last is not None:
            facts.append("last request's context, message lines:" + excerpt(
                "\n".join(l for l in ctx.splitlines() if "message #" in l or l.startswith("| ")), 10))
        if after != "TESTBOX/projb":
            problems.append("coord whoami after resume said %r:%s" % (after, excerpt(b2.pane())))
        for win in (b2, a):
            win.exit()
        summary = ("B named %s before, %s after resume (registry) / %s (whoami via model); message sent while "
                   "closed in the resumed context x%d (want 1), message B saw before exit x%d (want 1: history "
                   "only, not re-shown); B's waiter gone after /exit: %s" % (
                       name_b, e2.get("name"), after, c2, c1, bool(gone)))
    finally:
        ok = ok and not problems
        failed = not ok
        result(ok, "2 resumed conversation keeps its address",
               summary if summary and not problems else "; ".join(x.splitlines()[0] for x in problems))
        for x in problems:
            print("   " + x)
        for f in facts:
            print("   " + f)
        w.close(failed or bool(problems))


# -- check 3 ---------------------------------------------------------------
PROMPT_RE = re.compile(r"Do you want to proceed|Do you want to allow|Esc to cancel · Tab to amend")


def check_reply(label, mode_args, install_args=(), expect_prompt=False):
    w = World("reply-" + label, install_args=install_args)
    failed = True
    try:
        win = w.start("r", "proj", mode_args)
        if not win.wait_idle(90):
            result(False, "3%s" % label, "UI never idle:" + excerpt(win.pane()))
            return
        t_send = time.time()
        r = w.peer("msg", "send", "TESTBOX", "please answer @@reply@@", "--force")
        mid = sent_id(r)
        prompt_seen = [None]

        def landed():
            pane = win.pane(history=False)
            if prompt_seen[0] is None and PROMPT_RE.search(pane):
                prompt_seen[0] = (time.time() - t_send, pane)
                if expect_prompt:
                    return "prompt"
            q = w.peer("msg", "inbox", "--json")
            try:
                msgs = json.loads(q.stdout or "[]")
            except ValueError:
                msgs = []
            return next((m for m in msgs if m.get("in_reply_to") == mid), None)

        got = wait_for(landed, ARGS.reply_timeout, 0.3)
        t_got = time.time() - t_send
        mode = " ".join(mode_args) or "(Claude Code's default: auto mode)"
        if expect_prompt:
            ok = bool(prompt_seen[0])
            result(ok, "3%s control: --no-allow install, %s" % (label, mode),
                   "approval prompt %s (%s), reply landed: %s" % (
                       "shown" if ok else "NOT shown", "%.1fs after send" % prompt_seen[0][0] if ok else "-",
                       "yes" if isinstance(got, dict) else "no"))
            failed = not ok
        else:
            ok = isinstance(got, dict) and not prompt_seen[0]
            result(ok, "3%s coord msg reply without a prompt, %s" % (label, mode),
                   "reply to #%s in the store: %s (#%s, %.1fs after send, body %r), approval prompt seen: %s" % (
                       mid, "yes" if isinstance(got, dict) else "NO", (got or {}).get("id") if isinstance(got, dict) else "-",
                       t_got, (got or {}).get("body") if isinstance(got, dict) else None,
                       "YES" if prompt_seen[0] else "no"))
            failed = not ok
            if prompt_seen[0]:
                print("   prompt:" + excerpt(prompt_seen[0][1], 14))
            elif not ok:
                print("   pane:" + excerpt(win.pane(), 14))
                tu = [q.get("answer") for q in main_requests(w.api_requests(t_send))]
                print("   fake API answered: %s" % json.dumps(tu)[:600])
        if expect_prompt and prompt_seen[0]:
            win.w.tmux("send-keys", "-t", win.name, "Escape")
            time.sleep(1)
        win.exit()
    finally:
        w.close(failed)


def check_guard():
    """Issue 24: a Write inside a path another session claimed is denied and
    the reason reaches the model; a file another session edited lately is
    written, with the guard's note in the model's context."""
    w = World("guard", projects=("shop",))
    failed = True
    try:
        repo = w.projects["shop"]
        os.makedirs(os.path.join(repo, ".git"))
        os.makedirs(os.path.join(repo, "db"))
        r = w.peer("lock", "claim", "shop", "schema", "--path", "db", "--note", "renaming users")
        if r.returncode != 0:
            result(False, "g claim", r.stderr)
            return
        # The peer edited notes.md a moment ago (its PostToolUse said so).
        touched = {"session_id": "peer-conv", "cwd": repo, "hook_event_name": "PostToolUse",
                   "tool_name": "Write", "tool_input": {"file_path": os.path.join(repo, "notes.md")}}
        subprocess.run([os.path.join(ARGS.bin, "coord-hook"), "guard"], input=json.dumps(touched),
                       env=w.env(COORD_SESSION="OTHERBOX/peer"), capture_output=True, text=True, timeout=30)
        win = w.start("g", "shop", ["--permission-mode", "acceptEdits"])
        if not win.wait_idle(90):
            result(False, "g guard", "UI never idle:" + excerpt(win.pane()))
            return
        claimed = os.path.join(repo, "db", "0042.sql")
        t0 = time.time()
        win.type("please @@write:%s@@" % claimed)

        def said(marker):
            for q in main_requests(w.api_requests(t0)):
                text = context_text(q)
                if marker in text:
                    return text
            return None

        denied = wait_for(lambda: said("claimed by OTHERBOX/peer"), 40, 0.3)
        ok1 = bool(denied) and not os.path.exists(claimed)
        result(ok1, "g a denied Write's reason reaches the model",
               "reason in the next request: %s; file written: %s%s" % (
                   "yes" if denied else "NO", "YES" if os.path.exists(claimed) else "no",
                   "" if ok1 else excerpt(win.pane(), 14)))
        wait_for(win.idle, 20)
        notes = os.path.join(repo, "notes.md")
        t1 = time.time()
        t0 = t1
        win.type("please @@write:%s@@" % notes)
        noted = wait_for(lambda: said("was edited by OTHERBOX/peer"), 40, 0.3)
        ok2 = bool(noted) and os.path.exists(notes)
        result(ok2, "g a file another session edited lately: written, with the note",
               "note in the model's context: %s; file written: %s%s" % (
                   "yes" if noted else "NO", "yes" if os.path.exists(notes) else "NO",
                   "" if ok2 else excerpt(win.pane(), 14)))
        failed = not (ok1 and ok2)
        win.exit()
    finally:
        w.close(failed)


def check_delivery():
    """Issue 25: what a wake-up put into the model's context is recorded
    shown (and how soon); a window that exits is closed (and how soon); the
    same conversation resumed in a new process is live again."""
    w = World("delivery")
    failed = True
    try:
        win = w.start("d", "proj")
        if not win.wait_idle(90):
            result(False, "d delivery", "UI never idle:" + excerpt(win.pane()))
            return

        def sessions():
            q = w.peer("sessions", "--all", "--json")
            try:
                return {x["session_id"]: x for x in json.loads(q.stdout or "[]")}
            except ValueError:
                return {}

        wait_for(lambda: "TESTBOX/claude-main" in sessions(), 10, 0.2)
        t0 = time.time()
        r = w.peer("msg", "send", "TESTBOX", "status check @@say:SHOWN1@@")
        mid = sent_id(r)
        req = wait_for(lambda: next((q for q in main_requests(w.api_requests(t0))
                                     if "status check" in context_text(q)), None), ARGS.wake_timeout + 5)
        t_model = req["t"] if req else None

        def shown_at():
            q = w.peer("msg", "status", str(mid), "--json")
            try:
                rows = json.loads(q.stdout or "{}").get("recipients") or []
            except ValueError:
                return None
            return next((x.get("shown_at") for x in rows if x.get("shown_at")), None)

        at = wait_for(shown_at, 10, 0.1)
        t_rec = time.time() if at else None
        ok1 = bool(req and at)
        result(ok1, "d a wake-up is recorded shown",
               "model got message #%s: %s; shown_at %s, seen by the sender %.2fs after the model's request" % (
                   mid, "yes" if req else "NO", at, (t_rec - t_model) if (t_rec and t_model) else -1))
        wait_for(win.idle, 20)
        ss = wait_for(lambda: win.session_start("startup"), 10)
        sid = ss["stdin"].get("session_id") if ss else None
        pid = win.pid
        win.type("/exit")
        seen = {}

        def watch():
            now = time.time()
            if "dead" not in seen and pid and not alive(pid):
                seen["dead"] = now
            if "closed" not in seen and sessions().get("TESTBOX/claude-main", {}).get("state") == "closed":
                seen["closed"] = now
            return "dead" in seen and "closed" in seen

        wait_for(watch, 20, 0.05)
        closed = "closed" in seen
        lag = seen["closed"] - seen["dead"] if closed and "dead" in seen else None
        result(closed, "d an exited window is closed",
               "state closed %s, %s the claude process ended (SessionEnd runs before it exits)" % (
                   "yes" if closed else "NO",
                   "%.2fs after" % lag if lag is not None and lag >= 0 else
                   ("%.2fs before" % -lag if lag is not None else "-")))
        b2 = w.start("d2", "proj", ["--resume", sid or "none"])
        live = b2.wait_idle(90) and wait_for(
            lambda: sessions().get("TESTBOX/claude-main", {}).get("state") == "live", 20, 0.2)
        result(bool(live), "d resumed in a new process: live again under its old address",
               "state %s" % sessions().get("TESTBOX/claude-main", {}).get("state"))
        failed = not (ok1 and closed and live)
        b2.exit()
    finally:
        w.close(failed)


def hook_facts():
    """Run one short session and report what Claude Code passed to the hooks."""
    w = World("facts")
    try:
        win = w.start("f", "proj")
        if not win.wait_idle(90):
            print("   facts: UI never idle")
            return
        win.type("hi @@say:FACTS@@")
        wait_for(lambda: "ack FACTS" in win.pane(), 20)
        wait_for(win.idle, 10)
        win.exit()
        time.sleep(1)
        ours = set(w.env())
        for r in w.spy():
            s = r["stdin"] if isinstance(r["stdin"], dict) else {}
            keys = sorted(k for k in s if k not in ("transcript_path", "cwd", "prompt", "last_assistant_message"))
            env = []
            for k, v in sorted(r["env"].items()):
                if k in ours:
                    continue
                if k == "CLAUDE_PID":
                    v = "the claude process" if str(v) == str(win.pid) else v
                elif k == "CLAUDE_CODE_SESSION_ID":
                    v = "= session_id" if v == s.get("session_id") else v
                elif k != "CLAUDE_ENV_FILE":
                    continue
                env.append("%s (%s)" % (k, v) if k != "CLAUDE_ENV_FILE" else k)
            FACTS.append("%s: source/reason=%s; env %s; stdin %s" % (
                r["event"], s.get("source", s.get("reason", "-")), ", ".join(env), ",".join(keys)))
    finally:
        w.close(False)


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("COORD_BIN_DIR", "/tmp/cc-bin"),
                   help="folder holding coord and coord-hook (default /tmp/cc-bin, or $COORD_BIN_DIR)")
    p.add_argument("--claude", default=os.environ.get("CLAUDE_BIN", "/tmp/cc-cli/node_modules/.bin/claude"),
                   help="the claude executable (default: npm install --prefix /tmp/cc-cli)")
    p.add_argument("--only", default="1,2,3,g,d",
                   help="which checks, e.g. 1,3 (g: the edit guard, d: delivery states, f: hook facts)")
    p.add_argument("--runs", type=int, default=5, help="check 1 repetitions")
    p.add_argument("--wake-timeout", type=float, default=8.0, help="seconds a wake-up may take")
    p.add_argument("--reply-timeout", type=float, default=30.0)
    p.add_argument("--keep", action="store_true", help="keep scratch folders")
    p.add_argument("-v", "--verbose", action="store_true")
    ARGS = p.parse_args()
    ARGS.claude = os.path.abspath(ARGS.claude)
    ARGS.bin = os.path.abspath(ARGS.bin)
    for exe in (ARGS.claude, os.path.join(ARGS.bin, "coord"), os.path.join(ARGS.bin, "coord-hook")):
        if not os.access(exe, os.X_OK):
            raise SystemExit("missing %s (see README.md)" % exe)
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed")
    ver = subprocess.run([ARGS.claude, "--version"], capture_output=True, text=True, timeout=60,
                         env=clean_env()).stdout.strip()
    print("claude %s; coord from %s" % (ver, ARGS.bin), flush=True)
    only = set(ARGS.only.split(","))
    t0 = time.time()
    if "1" in only:
        check_wake()
    if "2" in only:
        check_resume()
    if "3" in only:
        check_reply("a", ["--permission-mode", "default"])
        check_reply("b", [])
        check_reply("c", ["--permission-mode", "default"], install_args=["--no-allow"], expect_prompt=True)
    if "g" in only:
        check_guard()
    if "d" in only:
        check_delivery()
    if "f" in only:
        hook_facts()
        for f in FACTS:
            print("   " + f)
    bad = sum(1 for ok, _ in RESULTS if not ok)
    print("%d checks, %d failed, %.0fs%s" % (len(RESULTS), bad, time.time() - t0,
                                             "; kept: " + " ".join(KEEP_ROOTS) if KEEP_ROOTS else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
