//! `coord lock claim|release|list`.

use super::Ctx;
use crate::cli::LockCmd;
use crate::error::{Error, Result};
use crate::model::*;
use crate::render;
use crate::store::MAX_TTL_HOURS;

pub fn run(ctx: &Ctx, cmd: LockCmd) -> Result<()> {
    match cmd {
        LockCmd::Claim {
            project,
            resource,
            ttl,
            note,
            paths,
        } => claim(ctx, project, resource, ttl, note, paths),
        LockCmd::Release {
            what,
            resource,
            force,
        } => release(ctx, &what, resource.as_deref(), force),
        LockCmd::List { project, mine } => list(ctx, project, mine),
    }
}

fn claim(
    ctx: &Ctx,
    project: String,
    resource: String,
    ttl: f64,
    note: Option<String>,
    paths: Vec<String>,
) -> Result<()> {
    // Written as a person types them on any OS: `\` becomes `/`.
    let paths: Vec<String> = paths.iter().map(|p| p.replace('\\', "/")).collect();
    if let Err(why) = check_paths(&paths) {
        return Err(Error::Usage(format!(
            "--path: {}",
            why.trim_start_matches("paths: ")
        )));
    }
    if !(ttl.is_finite() && ttl > 0.0 && ttl <= MAX_TTL_HOURS) {
        return Err(Error::Usage(format!(
            "--ttl {ttl}: give hours, more than 0 and at most {MAX_TTL_HOURS} (a week), e.g. --ttl 0.5"
        )));
    }
    if (ttl * 3_600_000.0).round() < 1.0 {
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
        paths,
    });
    ctx.write_and_emit(&w, |written| match written {
        Written::Lock { lock, created } => format!(
            "{} {}/{} (lock {}) until {}\n",
            if *created { "claimed" } else { "renewed" },
            crate::text::cell(&lock.project, 60),
            crate::text::cell(&lock.resource, 60),
            lock.id,
            render::when(&lock.expires_at, &crate::clock::now())
        ),
        _ => String::new(),
    })
}

/// Releases by id, or by project and resource (looked up among the active
/// locks). A forced release of another session's lock tells that session
/// who broke it.
fn release(ctx: &Ctx, what: &str, resource: Option<&str>, force: bool) -> Result<()> {
    let id = match (what.trim().parse::<i64>(), resource) {
        (Ok(id), None) => id,
        (_, Some(resource)) => {
            let locks = ctx.backend()?.locks(&LockQuery {
                project: Some(what.to_string()),
                limit: Some(MAX_LIST_LIMIT),
                ..Default::default()
            })?;
            locks
                .iter()
                .find(|l| l.resource == resource)
                .map(|l| l.id)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no active lock on {}/{}: `coord lock list --project {}` shows what is held",
                        crate::text::cell(what, 60),
                        crate::text::cell(resource, 60),
                        crate::text::cell(what, 60)
                    ))
                })?
        }
        (Err(_), None) => {
            return Err(Error::Usage(format!(
                "{} is not a lock id; give an id, or PROJECT RESOURCE",
                crate::text::cell(what, 60)
            )));
        }
    };
    let me = ctx.session_id();
    let w = Write::ReleaseLock {
        id,
        session_id: me.clone(),
        force,
    };
    // Another session's lock without --force is that session's: exit 3, as
    // for a claim it holds.
    let written = match ctx.write(&w) {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(()),
        Err(Error::Rejected {
            status: 403,
            detail,
        }) => {
            return Err(Error::Conflict {
                detail: format!(
                    "{detail}; release it with --force (its holder is told) or ask its holder"
                ),
                lock: None,
            });
        }
        Err(e) => return Err(e),
    };
    if let Written::Lock { lock, .. } = &written
        && force
        && !lock.session_id.eq_ignore_ascii_case(&me)
    {
        let note = ctx.message(
            lock.session_id.clone(),
            Some(format!(
                "lock {}/{} released by {me}",
                lock.project, lock.resource
            )),
            format!(
                "{me} force-released your lock {}/{} (lock {}, which was to expire {}). \
                 Claim it again with `coord lock claim {} {}` when it is free.",
                lock.project,
                lock.resource,
                lock.id,
                render::when(&lock.expires_at, &crate::clock::now()),
                lock.project,
                lock.resource
            ),
            None,
        );
        if let Err(e) = ctx.write(&note) {
            crate::out::note(&format!(
                "warning: the lock was released, but {} could not be told: {e}",
                crate::text::cell(&lock.session_id, 80)
            ));
        }
    }
    ctx.emit(&written.to_json(), || match &written {
        Written::Lock { lock, .. } => {
            let broke = if lock.session_id.eq_ignore_ascii_case(&me) {
                String::new()
            } else {
                format!(
                    "; {} held it and has been sent a message saying so",
                    crate::text::cell(&lock.session_id, 80)
                )
            };
            format!(
                "released {}/{} (lock {}){broke}\n",
                crate::text::cell(&lock.project, 60),
                crate::text::cell(&lock.resource, 60),
                lock.id
            )
        }
        _ => String::new(),
    });
    Ok(())
}

fn list(ctx: &Ctx, project: Option<String>, mine: bool) -> Result<()> {
    let locks = ctx.backend()?.locks(&LockQuery {
        project,
        session_id: mine.then(|| ctx.session_id()),
        limit: Some(MAX_LIST_LIMIT),
        after_id: None,
    })?;
    ctx.emit(&locks, || {
        if locks.is_empty() {
            "no active locks\n".into()
        } else {
            render::locks(&locks, &crate::clock::now(), &ctx.style)
        }
    });
    Ok(())
}

/// The line shown when a claim loses: who holds it and until when.
pub fn conflict_line(e: &Error) -> Option<String> {
    match e {
        Error::Conflict { lock: Some(l), .. } => {
            let now = crate::clock::now();
            Some(format!(
                "{}/{} is held by {} (lock {}) until {}",
                crate::text::cell(&l.project, 60),
                crate::text::cell(&l.resource, 60),
                crate::text::cell(&l.session_id, 80),
                l.id,
                render::when(&l.expires_at, &now)
            ))
        }
        _ => None,
    }
}
