//! `coord-hook`: with no subcommand, the Claude Code session-start hook.

fn main() -> std::process::ExitCode {
    coord_hook::run(std::env::args_os())
}
