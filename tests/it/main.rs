//! The integration suite, as one test binary: every module runs the real
//! binaries (and a real `coord serve`) through the helpers in `common`.
//! One binary is one link, on Linux and in the Windows build.

mod common;
mod env;

mod abuse;
mod addresses;
mod browser;
mod cli_local;
mod contract;
mod delivery;
mod fleet;
mod guard;
mod history;
mod hook_block;
mod hook_run;
mod http;
mod install;
mod pg;
mod properties;
mod queue;
mod render_tables;
mod retention;
mod running;
mod tls;
mod trust;
