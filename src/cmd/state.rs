//! `coord whoami`, `coord status`, `coord component set`, `coord workflow set`.

use serde_json::json;

use super::Ctx;
use crate::cli::{ComponentCmd, WorkflowCmd};
use crate::error::Result;
use crate::identity::Source;
use crate::model::*;
use crate::out::note;
use crate::render;

pub fn whoami(ctx: &Ctx) -> Result<()> {
    let id = &ctx.identity;
    let file = match &id.source {
        Source::File(p) => Some(p.display().to_string()),
        Source::Defaults => {
            note("note: no identity.json found; using defaults from the environment and host name");
            None
        }
    };
    let (backend, location) = match id.api_shown() {
        Some(url) => ("http", url),
        None => ("local", id.db_path.display().to_string()),
    };
    let (deadline, capped) = crate::hook::timeout(None, Some(id));
    let deadline_ms = deadline.as_millis() as u64;
    let deadline_text = match capped {
        Some(asked) => format!(
            "{deadline_ms} ms (asked for {asked} ms; kept within {}–{} ms, inside Claude Code's 10 s)",
            50,
            crate::hook::MAX_TIMEOUT_MS
        ),
        None => format!("{deadline_ms} ms"),
    };
    if let Some(n) = id.ignored_note() {
        note(&format!("warning: {n}"));
    }
    if let Some(n) = &id.token_withheld {
        note(&format!("warning: {n}"));
    }
    let value = json!({
        "user": id.user,
        "machine": id.machine,
        "session_id": id.session_id(),
        "identity_file": file,
        "project_identity_file": id.project_file.as_ref().map(|p| p.display().to_string()),
        "ignored_fields": id.ignored,
        "backend": backend,
        "location": location,
        "queue": id.queue_path().display().to_string(),
        "hook_deadline_ms": deadline_ms,
        "hook_deadline_asked_ms": capped,
    });
    ctx.emit(&value, || {
        let mut t = render::Table::new(vec!["", ""]);
        let mut rows = vec![
            ("user", id.user.clone()),
            ("machine", id.machine.clone()),
            ("session", id.session_id()),
            (
                "identity",
                file.clone().unwrap_or_else(|| "(defaults)".into()),
            ),
            ("backend", format!("{backend}: {location}")),
            ("hook deadline", deadline_text.clone()),
        ];
        if let Some(p) = &id.project_file {
            let ignored = if id.ignored.is_empty() {
                String::new()
            } else {
                format!(" (ignored: {})", id.ignored.join(", "))
            };
            rows.insert(4, ("project identity", format!("{}{ignored}", p.display())));
        }
        for (k, v) in rows {
            t.row(vec![k.to_string(), crate::text::cell(&v, 200)]);
        }
        let s = t.render(&ctx.style);
        // Drop the empty header line.
        s.split_once('\n').map(|x| x.1.to_string()).unwrap_or(s)
    });
    Ok(())
}

pub fn status(ctx: &Ctx) -> Result<()> {
    let backend = ctx.backend()?;
    let queue = crate::delivery::Queue::new(ctx.identity.queue_path());
    let waiting = queue.len().unwrap_or(0);
    let st = backend.status().inspect_err(|_| {
        // Down is exactly when the queue matters: say so before the error.
        if waiting > 0 {
            note(&format!(
                "note: {waiting} write(s) waiting in the offline queue — run coord sync when the API answers"
            ));
        }
    })?;
    ctx.emit(&st, || {
        let mut s = render::status(&st, &crate::clock::now(), &ctx.style);
        if !backend.is_remote() && waiting == 0 {
            // The embedded store never queues: nothing to say.
            return s;
        }
        let head = ctx.style.bold(&format!("QUEUE ({waiting})"));
        s.push_str(&format!("\n{head}\n"));
        if waiting == 0 {
            s.push_str("  no writes waiting\n");
        } else {
            s.push_str(&format!(
                "  {waiting} write(s) waiting in {} — run coord sync\n",
                queue.path().display()
            ));
        }
        s
    });
    Ok(())
}

pub fn component(ctx: &Ctx, cmd: ComponentCmd) -> Result<()> {
    let ComponentCmd::Set {
        project,
        component,
        state,
        version,
        notes,
    } = cmd;
    let w = Write::SetComponent {
        project,
        component,
        update: ComponentUpdate {
            state,
            version,
            notes,
            updated_by: ctx.session_id(),
        },
    };
    ctx.write_and_emit(&w, |written| match written {
        Written::Component(c) => format!(
            "{}/{} is {}\n",
            crate::text::cell(&c.project, 60),
            crate::text::cell(&c.component, 60),
            crate::text::cell(&c.state, 60)
        ),
        _ => String::new(),
    })
}

pub fn workflow(ctx: &Ctx, cmd: WorkflowCmd) -> Result<()> {
    let WorkflowCmd::Set {
        name,
        state,
        detail,
    } = cmd;
    let w = Write::SetWorkflow {
        name,
        update: WorkflowUpdate {
            state,
            detail,
            updated_by: ctx.session_id(),
        },
    };
    ctx.write_and_emit(&w, |written| match written {
        Written::Workflow(w) => format!(
            "workflow {} is {}\n",
            crate::text::cell(&w.name, 60),
            crate::text::cell(&w.state, 60)
        ),
        _ => String::new(),
    })
}
