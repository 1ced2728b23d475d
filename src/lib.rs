//! coord-hook: the session-start hook and `coord` CLI for a fleet of Claude
//! Code sessions. `run` parses the command line, dispatches, and maps errors
//! to exit codes; everything else lives in the modules below.

pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cmd;
pub mod connect;
pub mod delivery;
pub mod error;
pub mod fsx;
pub mod hook;
pub mod identity;
pub mod install;
pub mod model;
pub mod out;
pub mod pgstore;
pub mod presence;
pub mod render;
pub mod server;
pub mod store;
pub mod text;
pub mod window;
pub mod wire;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use cmd::Ctx;
use error::{Error, exit};
use identity::Identity;
use out::note;

/// Entry point for both binaries.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let name = program_name(args.first());
    if name == "coord-hook"
        && let Some(opts) = hook_fast_path(&args[1..])
    {
        run_hook(opts);
        return ExitCode::from(exit::OK);
    }
    let matches = command_for(name).try_get_matches_from(&args);
    let cli = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(exit::OK); // --help, --version
            }
            if name == "coord-hook" && !names_a_subcommand(&args[1..]) {
                // A hook command line in settings.json that we do not
                // understand: exit 0 and say so, or the session would start
                // with nothing and no word why.
                crate::out::out(&format!(
                    "coord: coord-hook was started with arguments it does not understand ({}); \
                     fix the hook command in Claude Code's settings.json (coord-hook install writes a working one). \
                     The session goes on without coord messages.\n",
                    crate::text::cell(&e.kind().to_string(), 120)
                ));
                return ExitCode::from(exit::OK);
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    match dispatch(cli, name) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let line = cmd::lock::conflict_line(&e).unwrap_or_else(|| e.to_string());
            note(&format!("error: {}", crate::text::cell(&line, 2000)));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The commands every coord user runs, in `coord --help`'s examples.
const COORD_EXAMPLES: &str = "Examples:
  coord msg send HOWARD-WORK \"api is deployed\"  # to that machine's first window
  coord msg inbox                               # what is unread here
  coord msg reply 12 \"on it\"                   # answer, and mark it read
  coord lock claim web deploy --ttl 1           # exit 3 if someone holds it
  coord sessions                                # who the fleet has seen

Exit codes: 0 done, 1 failed, 2 usage, 3 lock held by another session.
Wire it into Claude Code with `coord-hook install`.";

const HOOK_ABOUT: &str = "The Claude Code side of coord. With no subcommand it IS the hook: it reads Claude Code's JSON on stdin and prints the block of unread messages, todos and locks (at session start) or what is new (before a prompt). It always exits 0.";

const HOOK_EXAMPLES: &str = "Examples:
  coord-hook install      # wire it into ~/.claude, with the skill
  coord-hook --preview    # the block a session starting now would get
  coord-hook uninstall    # take it all out again

Every coord command works here too (coord-hook msg inbox); see coord --help.";

/// The command line of `name`: `coord` shows the fleet commands, with the
/// hook's flags and subcommands hidden; `coord-hook` shows the hook, its
/// flags, install, uninstall and wait, with the fleet commands hidden (they
/// still work).
fn command_for(name: &'static str) -> clap::Command {
    const HOOK_ARGS: [&str; 3] = ["preview", "format", "timeout"];
    const HOOK_COMMANDS: [&str; 4] = ["install", "uninstall", "wait", "guard"];
    let mut cmd = Cli::command().name(name).bin_name(name);
    if name == "coord-hook" {
        let fleet: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|s| !HOOK_COMMANDS.contains(&s.as_str()))
            .collect();
        for s in fleet {
            cmd = cmd.mut_subcommand(s, |c| c.hide(true));
        }
        cmd.about(HOOK_ABOUT).after_help(HOOK_EXAMPLES)
    } else {
        for a in HOOK_ARGS {
            cmd = cmd.mut_arg(a, |a| a.hide(true));
        }
        for s in HOOK_COMMANDS {
            cmd = cmd.mut_subcommand(s, |c| c.hide(true));
        }
        cmd.after_help(COORD_EXAMPLES)
    }
}

/// `coord-hook` or `coord`, from argv[0]; `coord` when unknown.
fn program_name(arg0: Option<&OsString>) -> &'static str {
    let stem = arg0
        .map(Path::new)
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str());
    match stem {
        Some(s) if s.starts_with("coord-hook") => "coord-hook",
        _ => "coord",
    }
}

/// Whether any argument is one of our subcommands (then a usage error is
/// a person's or a script's, not the hook's).
fn names_a_subcommand(args: &[OsString]) -> bool {
    let cmd = Cli::command();
    args.iter()
        .filter_map(|a| a.to_str())
        .any(|a| cmd.get_subcommands().any(|s| s.get_name() == a))
}

/// The command lines `install` writes (`--format json`, maybe `--timeout`)
/// skip clap: building the whole command tree is ~10% of a hook run, which
/// happens at every session start. Anything else goes through clap, and
/// `tests/hook_run.rs` checks that both paths answer the same.
fn hook_fast_path(args: &[OsString]) -> Option<hook::HookOptions> {
    let mut opts = hook::HookOptions {
        identity: None,
        format: hook::Format::Text,
        timeout_ms: None,
        preview: false,
        no_color: false,
    };
    let mut it = args.iter().map(|a| a.to_str());
    while let Some(arg) = it.next() {
        match arg? {
            "--format" => {
                opts.format = match it.next()?? {
                    "json" => hook::Format::Json,
                    "text" => hook::Format::Text,
                    _ => return None,
                }
            }
            "--timeout" => opts.timeout_ms = Some(it.next()??.parse().ok()?),
            _ => return None,
        }
    }
    Some(opts)
}

/// The hook must exit 0 and say something even if a bug panics.
fn run_hook(opts: hook::HookOptions) {
    std::panic::set_hook(Box::new(|_| {}));
    if std::panic::catch_unwind(move || hook::run(opts)).is_err() {
        crate::out::out(
            "coord: the coord hook failed unexpectedly; the session goes on without coord messages.\n",
        );
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// `--listen`: an address and port, or a name (`localhost:8001`) resolved
/// here.
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, Error> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || {
        Error::Usage(format!(
            "--listen {}: give ADDR:PORT, e.g. 127.0.0.1:8001, localhost:8001, [::1]:8001, or 0.0.0.0:8001 with --token",
            crate::text::cell(s, 80)
        ))
    };
    let mut addrs: Vec<std::net::SocketAddr> = s.to_socket_addrs().map_err(|_| bad())?.collect();
    // localhost may name both families: the IPv4 one, as clients try first.
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().ok_or_else(bad)
}

/// An unreachable API, with where its address came from and what to do.
fn explain_unreachable(e: Error, identity: Option<&Path>) -> Error {
    let Error::Unreachable { .. } = &e else {
        return e;
    };
    let from = if identity::env_var("COORD_API").is_some() {
        "COORD_API".to_string()
    } else {
        match Identity::load(identity, &cwd()).map(|id| id.source) {
            Ok(identity::Source::File(p)) => format!("coord_api in {}", p.display()),
            _ => "coord_api".to_string(),
        }
    };
    Error::Failed(format!(
        "{e} (the address is {from}): start `coord serve` there, or correct the address"
    ))
}

fn dispatch(cli: Cli, name: &'static str) -> Result<(), Error> {
    let identity = cli.identity.clone();
    dispatch_command(cli, name).map_err(|e| explain_unreachable(e, identity.as_deref()))
}

fn dispatch_command(cli: Cli, name: &'static str) -> Result<(), Error> {
    let Some(command) = cli.command else {
        if name == "coord-hook" || cli.preview {
            run_hook(hook::HookOptions {
                identity: cli.identity,
                format: cli.format,
                timeout_ms: cli.timeout,
                preview: cli.preview,
                no_color: cli.no_color,
            });
        } else {
            let _ = command_for(name).print_help();
        }
        return Ok(());
    };
    if let Command::Guard { staged } = command {
        let identity = cli.identity.clone();
        if staged {
            // git's pre-commit hook: 1 refuses the commit; a failure of
            // ours lets it through (a note says why).
            let code = std::panic::catch_unwind(move || hook::commit::run(identity.as_deref()))
                .unwrap_or(0);
            std::process::exit(code);
        }
        // Before every edit: whatever happens, exit 0 (an answer only to
        // deny; nothing printed allows).
        let _ = std::panic::catch_unwind(move || hook::guard::run(identity.as_deref()));
        std::process::exit(0);
    }
    if let Command::Wait = command {
        // Exit 2 is how Claude Code is told to wake the session; a panic
        // or any failure must never look like it.
        let identity = cli.identity.clone();
        let code = std::panic::catch_unwind(move || hook::wait::run(identity.as_deref()))
            .unwrap_or(hook::wait::QUIET);
        std::process::exit(i32::from(code));
    }
    let load = || Identity::load(cli.identity.as_deref(), &cwd());
    let ctx = || load().map(|id| Ctx::new(id, cli.json, cli.no_color));
    match command {
        Command::Install { git: true, .. } => install::git::install(),
        Command::Uninstall { git: true, .. } => install::git::uninstall(),
        Command::Install {
            project,
            print,
            no_wait,
            no_allow,
            git: false,
        } => install::install(project.as_deref(), print, !no_wait, !no_allow),
        Command::Uninstall { project, .. } => install::uninstall(project.as_deref()),
        Command::Serve {
            listen,
            db,
            token,
            insecure,
            retain,
            max_connections,
            tls_cert,
            tls_key,
        } => {
            let db = match db.or_else(|| identity::env_var("COORD_DB").map(PathBuf::from)) {
                Some(db) => db,
                None => load()?.db_path,
            };

            server::serve(server::ServeOptions {
                listen: listen_addr(&listen)?,
                db: server::Db::from_arg(db),
                token: token.filter(|t| !t.is_empty()),
                insecure,
                retain_days: retain,
                max_connections: max_connections.and_then(|n| usize::try_from(n).ok()),
                tls: tls_cert.zip(tls_key),
                ui_user: load().map(|i| i.user).unwrap_or_else(|_| "person".into()),
                on_listen: None,
            })
        }
        Command::Ui => {
            let id = load()?;
            if let Some(api) = &id.api {
                let first = identity::fleet_urls(api)
                    .next()
                    .unwrap_or_default()
                    .to_string();
                note(&format!(
                    "this machine uses the coord API at {}: its dashboard is {}/ (open it there)",
                    identity::redact_url(&first),
                    identity::redact_url(&first)
                ));
                return Ok(());
            }
            server::serve(server::ServeOptions {
                listen: listen_addr("127.0.0.1:0")?,
                db: server::Db::Sqlite(id.db_path.clone()),
                token: None,
                insecure: false,
                // The machine's own store: nothing is deleted by looking.
                retain_days: 0,
                max_connections: Some(256),
                tls: None,
                ui_user: id.user.clone(),
                on_listen: Some(Box::new(|url: &str| {
                    note(&format!(
                        "coord ui: the dashboard of this machine's store is at {url}/ (Ctrl-C stops it)"
                    ));
                })),
            })
        }
        Command::Store(cli::StoreCmd::Copy { from, to }) => cmd::copy::run(cli.json, &from, &to),
        Command::Whoami => cmd::state::whoami(&ctx()?),
        Command::Status => cmd::state::status(&ctx()?),
        Command::Sessions { all } => cmd::sessions::run(&ctx()?, all),
        Command::Msg(c) => cmd::msg::run(&ctx()?, c),
        Command::Todo(c) => cmd::todo::run(&ctx()?, c),
        Command::Lock(c) => cmd::lock::run(&ctx()?, c),
        Command::Component(c) => cmd::state::component(&ctx()?, c),
        Command::Workflow(c) => cmd::state::workflow(&ctx()?, c),
        Command::Wait | Command::Guard { .. } => Ok(()),
        Command::Sync {
            list,
            drop,
            retry_rejected,
        } => cmd::sync::run(&ctx()?, list, drop, retry_rejected),
    }
}
