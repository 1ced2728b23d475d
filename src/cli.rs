//! The command line, as clap types only; no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::hook::Format;
use crate::model::StatusFilter;

#[derive(Debug, Parser)]
#[command(
    name = "coord",
    version,
    about = "Messages, todos, locks and deploy states for a fleet of Claude Code sessions",
    max_term_width = 80
)]
pub struct Cli {
    /// Read this identity.json instead of searching for one.
    #[arg(long, global = true, value_name = "PATH")]
    pub identity: Option<PathBuf>,
    /// Print the contract's JSON objects instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never colour the output (NO_COLOR does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Show the block a session starting now would get, and change
    /// nothing.
    #[arg(long)]
    pub preview: bool,
    /// The hook's output: text, or json for Claude Code (what install
    /// wires).
    #[arg(long, value_enum, default_value_t = Format::Text, hide_possible_values = true)]
    pub format: Format,
    /// The hook's deadline in milliseconds [default: 2000].
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show who this session is and where it reads and writes.
    Whoami,
    /// Show active locks, component states and workflows.
    Status,
    /// List the sessions the fleet has seen: address, user, project, last
    /// seen, unread (where cheap), and which are active.
    Sessions {
        /// Also sessions not seen for a day or more.
        #[arg(long)]
        all: bool,
    },
    /// Send, list and acknowledge messages.
    #[command(subcommand)]
    Msg(MsgCmd),
    /// Add, list and complete fleet todos.
    #[command(subcommand)]
    Todo(TodoCmd),
    /// Claim, release and list work locks.
    #[command(subcommand)]
    Lock(LockCmd),
    /// Record a component's deploy state.
    #[command(subcommand)]
    Component(ComponentCmd),
    /// Record a workflow's state.
    #[command(subcommand)]
    Workflow(WorkflowCmd),
    /// Deliver the writes queued while the coord API was unreachable.
    Sync {
        /// Show what waits instead of sending it.
        #[arg(long, conflicts_with = "drop")]
        list: bool,
        /// Discard one queued write, by key (a unique prefix will do).
        #[arg(long, value_name = "KEY")]
        drop: Option<String>,
        /// Put the writes the server refused (set aside in
        /// coord-queue.rejected.jsonl) back into the queue, then sync.
        #[arg(long, conflicts_with_all = ["list", "drop"])]
        retry_rejected: bool,
    },
    /// The dashboard of this machine's own store, on 127.0.0.1 (a free
    /// port): prints its address, serves until Ctrl-C.
    Ui,
    /// Move or back up a store.
    #[command(subcommand)]
    Store(StoreCmd),
    /// The waiter Claude Code runs while a session is idle: exits 2 with
    /// new messages on stderr, which wakes the session.
    Wait,
    /// Claude Code's PreToolUse hook for edits: denies an edit inside a
    /// path another session has claimed (`lock claim --path`); after an
    /// edit (PostToolUse) it records that this session touched the file.
    Guard {
        /// Check what is staged in git instead (the pre-commit hook that
        /// `install --git` writes): exit 1 when a staged path is claimed by
        /// another session; COORD_ALLOW_CLAIMED=1 lets the commit through.
        #[arg(long)]
        staged: bool,
    },
    /// Wire coord into Claude Code: the session-start block, the prompt
    /// hook and the waiter in settings.json, the skill beside them, and
    /// permission for coord's everyday commands.
    #[command(after_help = "Examples:\n  \
        coord-hook install                  # ~/.claude, every project\n  \
        coord-hook install --project .      # this project only\n  \
        coord-hook install --print          # show the settings, write nothing")]
    Install {
        /// Install into DIR/.claude/settings.json instead of ~/.claude/settings.json.
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Print the settings snippet instead of writing it.
        #[arg(long)]
        print: bool,
        /// Leave out the waiter, which wakes an idle session when a message
        /// arrives (and remove it if it is installed).
        #[arg(long)]
        no_wait: bool,
        /// Add no permission rules: each coord command the model runs asks
        /// first (and remove ours if they are there).
        #[arg(long)]
        no_allow: bool,
        /// Instead: add a git pre-commit hook to the repository here that
        /// refuses a commit touching a path another session has claimed.
        #[arg(long, conflicts_with_all = ["project", "print", "no_wait", "no_allow"])]
        git: bool,
    },
    /// Remove what install added: our hook entries and permission rules
    /// from settings.json, and our skill; nothing else.
    Uninstall {
        /// Remove it from DIR/.claude/settings.json instead.
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Instead: remove the git pre-commit hook `install --git` added to
        /// the repository here.
        #[arg(long, conflicts_with = "project")]
        git: bool,
    },
    /// Serve the embedded store over the coord API, for a fleet.
    Serve {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8001")]
        listen: String,
        /// The SQLite file to serve (default: the local store of this
        /// identity), or a PostgreSQL URL (postgres://USER@HOST:PORT/DB;
        /// PG* variables fill what it leaves out) that several replicas
        /// may share.
        #[arg(long, value_name = "PATH|URL")]
        db: Option<PathBuf>,
        /// Require `Authorization: Bearer TOKEN` on every request but /health.
        #[arg(long, env = "COORD_SERVE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Allow a non-loopback --listen without a token.
        #[arg(long)]
        insecure: bool,
        /// Delete read messages, broadcasts and done todos older than DAYS
        /// (at start and hourly; at least 7).
        #[arg(long, value_name = "DAYS", default_value_t = 90,
              value_parser = clap::value_parser!(u32).range(7..))]
        retain: u32,
        /// At most this many connections open at once, three quarters of
        /// them from one address [default: 4096, within the file
        /// descriptors].
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u64).range(4..=1_000_000))]
        max_connections: Option<u64>,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy every message (with its read state), session, todo, lock,
    /// component, workflow and recent idempotency key from one store into
    /// another, keeping ids. FROM and TO are SQLite files or postgres://
    /// URLs. Rows already there are kept, so running it twice copies
    /// nothing new; every source row is checked in the target after.
    #[command(after_help = "Examples:\n  \
        coord store copy ~/.claude/coord.db postgres://coord@db.example.internal/coord\n  \
        coord store copy postgres://coord@db.example.internal/coord backup.db")]
    Copy {
        /// The store to copy from.
        from: String,
        /// The store to copy into (made when missing).
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MsgCmd {
    /// Send a message to a session, a machine, or everyone.
    #[command(after_help = "Examples:\n  \
        coord msg send HOWARD-WORK \"the api is deployed\" -s deploy\n  \
        coord msg send HOWARD-WORK/api \"can you run the smoke tests?\"\n  \
        git log -1 | coord msg send fleet -")]
    Send(MsgSend),
    /// Answer a message: to its sender, `re: ` its subject.
    Reply {
        /// The message to answer.
        id: i64,
        /// The answer; `-` reads it from standard input.
        body: Option<String>,
        /// Read the answer from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "body")]
        body_file: Option<PathBuf>,
    },
    /// List what this session sent, newest first, with who has read it.
    Sent {
        /// At most this many (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// List this session's messages (unread by default): the newest N, in
    /// time order.
    Inbox {
        /// Include messages already read.
        #[arg(long)]
        all: bool,
        /// At most this many (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Mark messages read for this session.
    Read {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
    /// What became of a message at each recipient: shown to its model,
    /// read, replied (v1.2 servers and the embedded store).
    Status {
        /// The message (one this session sent, or any other).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct MsgSend {
    /// MACHINE/SESSION, a bare MACHINE (its claude-main), or ALL/fleet/broadcast.
    pub to: String,
    /// The message; `-` reads it from standard input.
    pub body: Option<String>,
    /// A one-line subject.
    #[arg(long, short)]
    pub subject: Option<String>,
    /// Read the body from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "body")]
    pub body_file: Option<PathBuf>,
    /// Send even to an address no session of the fleet has used.
    #[arg(long)]
    pub force: bool,
    /// Send only if the recipient has a window open now (exit 2, nothing
    /// sent, when it is closed or idle).
    #[arg(long, conflicts_with = "force")]
    pub live: bool,
}

#[derive(Debug, Subcommand)]
pub enum TodoCmd {
    /// Add a todo (for everyone unless --user is given).
    Add(TodoAdd),
    /// List todos (pending by default).
    List {
        /// Only todos for this user, and those for everyone.
        #[arg(long)]
        user: Option<String>,
        /// Only this project's todos.
        #[arg(long, value_name = "KEY")]
        project: Option<String>,
        /// Which todos to list.
        #[arg(long, value_enum, default_value_t = StatusFilter::Pending)]
        status: StatusFilter,
    },
    /// Mark todos done.
    Done {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Args)]
pub struct TodoAdd {
    /// The todo; `-` reads it from standard input.
    pub text: Option<String>,
    /// Read the text from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub text_file: Option<PathBuf>,
    /// Whom it is for (default: everyone).
    #[arg(long)]
    pub user: Option<String>,
    /// The project it belongs to.
    #[arg(long, value_name = "KEY")]
    pub project: Option<String>,
    /// Make it a sub-task of this todo.
    #[arg(long, value_name = "ID")]
    pub parent: Option<i64>,
    /// Where it came from (free text).
    #[arg(long, value_name = "TXT")]
    pub source: Option<String>,
    /// Mark it as created by automation.
    #[arg(long)]
    pub auto: bool,
}

#[derive(Debug, Subcommand)]
pub enum LockCmd {
    /// Claim a resource; renewing your own lock extends it.
    #[command(after_help = "Examples:\n  \
        coord lock claim web deploy --ttl 1 --note \"cutting 1.4\"\n  \
        coord lock release web deploy")]
    Claim {
        project: String,
        resource: String,
        /// Hours until it expires (more than 0, at most 168).
        #[arg(long, value_name = "HOURS", default_value_t = 2.0)]
        ttl: f64,
        /// Why you hold it, for the others.
        #[arg(long, value_name = "TXT")]
        note: Option<String>,
        /// A path the claim covers, relative to the repository's root and
        /// written with / (a glob: `*` within a folder, `**` across; a
        /// folder covers what is under it). Repeat for more. Another
        /// session's edit there is stopped by the guard.
        #[arg(long = "path", value_name = "GLOB")]
        paths: Vec<String>,
    },
    /// Release a lock: by id, or by PROJECT RESOURCE.
    Release {
        /// The lock's id, or its project (then give the resource too).
        #[arg(value_name = "ID | PROJECT")]
        what: String,
        /// The resource, when the lock is named by project.
        resource: Option<String>,
        /// Release it even when another session holds it (the holder is
        /// told who broke it).
        #[arg(long)]
        force: bool,
    },
    /// List active locks.
    List {
        /// Only this project's locks.
        #[arg(long, value_name = "KEY")]
        project: Option<String>,
        /// Only this session's locks.
        #[arg(long)]
        mine: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComponentCmd {
    /// Set a component's state.
    Set {
        project: String,
        component: String,
        state: String,
        /// The version now deployed.
        #[arg(long = "version", value_name = "V")]
        version: Option<String>,
        /// Free-text notes.
        #[arg(long, value_name = "TXT")]
        notes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCmd {
    /// Set a workflow's state.
    Set {
        name: String,
        state: String,
        /// Where it is, in words.
        #[arg(long, value_name = "TXT")]
        detail: Option<String>,
    },
}
