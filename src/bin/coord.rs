//! `coord`: the everyday CLI (the same library as `coord-hook`).

fn main() -> std::process::ExitCode {
    coord_hook::run(std::env::args_os())
}
