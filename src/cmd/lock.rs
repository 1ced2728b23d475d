//! `coord lock claim|release|list`.

use super::Ctx;
use crate::cli::LockCmd;
use crate::error::{Error, Result};
use crate::model::*;
use crate::render;

pub fn run(ctx: &Ctx, cmd: LockCmd) -> Result<()> {
    match cmd {
        LockCmd::Claim {
            project,
            resource,
            ttl,
            note,
        } => claim(ctx, project, resource, ttl, note),
        LockCmd::Release { id, force } => release(ctx, id, force),
        LockCmd::List { project, mine } => list(ctx, project, mine),
    }
}

fn claim(
    ctx: &Ctx,
    project: String,
    resource: String,
    ttl: f64,
    note: Option<String>,
) -> Result<()> {
    if ttl.is_finite() && ttl > 0.0 && (ttl * 3_600_000.0).round() < 1.0 {
        return Err(Error::Usage(format!(
            "--ttl {ttl} hours is under a millisecond: the lock would expire before it is stored; give hours, e.g. --ttl 0.5"
        )));
    }
    let w = Write::ClaimLock(NewLock {
        project,
        resource,
        session_id: ctx.session_id(),
        ttl_hours: Some(ttl),
        note,
    });
    ctx.write_and_emit(&w, |written| match written {
        Written::Lock { lock, created } => format!(
            "{} {}/{} (lock {}) until {}\n",
            if *created { "claimed" } else { "renewed" },
            render::cell(&lock.project, 60),
            render::cell(&lock.resource, 60),
            lock.id,
            render::when(&lock.expires_at, &render::now())
        ),
        _ => String::new(),
    })
}

fn release(ctx: &Ctx, id: i64, force: bool) -> Result<()> {
    let w = Write::ReleaseLock {
        id,
        session_id: ctx.session_id(),
        force,
    };
    ctx.write_and_emit(&w, |written| match written {
        Written::Lock { lock, .. } => format!(
            "released {}/{} (lock {})\n",
            render::cell(&lock.project, 60),
            render::cell(&lock.resource, 60),
            lock.id
        ),
        _ => String::new(),
    })
}

fn list(ctx: &Ctx, project: Option<String>, mine: bool) -> Result<()> {
    let locks = ctx.backend()?.locks(&LockQuery {
        project,
        session_id: mine.then(|| ctx.session_id()),
    })?;
    ctx.emit(&locks, || {
        if locks.is_empty() {
            "no active locks\n".into()
        } else {
            render::locks(&locks, &render::now(), &ctx.style)
        }
    });
    Ok(())
}

/// The line shown when a claim loses: who holds it and until when.
pub fn conflict_line(e: &Error) -> Option<String> {
    match e {
        Error::Conflict { lock: Some(l), .. } => {
            let now = render::now();
            Some(format!(
                "{}/{} is held by {} (lock {}) until {}",
                render::cell(&l.project, 60),
                render::cell(&l.resource, 60),
                render::cell(&l.session_id, 80),
                l.id,
                render::when(&l.expires_at, &now)
            ))
        }
        _ => None,
    }
}
