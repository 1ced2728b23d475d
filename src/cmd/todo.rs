//! `coord todo add|list|done`.

use super::{Ctx, for_each_id, read_text};
use crate::cli::{TodoAdd, TodoCmd};
use crate::error::Result;
use crate::model::*;
use crate::render;

pub fn run(ctx: &Ctx, cmd: TodoCmd) -> Result<()> {
    match cmd {
        TodoCmd::Add(a) => add(ctx, a),
        TodoCmd::List {
            user,
            project,
            status,
        } => list(
            ctx,
            TodoQuery {
                include_unassigned: user.is_some(),
                user,
                project,
                status,
                limit: Some(MAX_LIST_LIMIT),
                after_id: None,
            },
        ),
        TodoCmd::Done { ids } => done(ctx, &ids),
    }
}

fn add(ctx: &Ctx, a: TodoAdd) -> Result<()> {
    let text = read_text(a.text, a.text_file.as_deref(), "todo text")?;
    let w = Write::AddTodo(NewTodo {
        text,
        user: a.user,
        project: a.project,
        parent_id: a.parent,
        source: a.source,
        auto: a.auto,
        created_by_user: ctx.identity.user.clone(),
        created_by_machine: ctx.identity.machine.clone(),
    });
    ctx.write_and_emit(&w, |written| match written {
        Written::Todo(t) => format!(
            "added todo {} for {}\n",
            t.id,
            crate::text::cell(t.user.as_deref().unwrap_or("everyone"), 40)
        ),
        _ => String::new(),
    })
}

fn list(ctx: &Ctx, q: TodoQuery) -> Result<()> {
    let todos = ctx.backend()?.todos(&q)?;
    ctx.emit(&todos, || {
        if todos.is_empty() {
            format!("no {} todos\n", q.status.as_str())
        } else {
            render::todos(&todos, &crate::clock::now(), &ctx.style)
        }
    });
    Ok(())
}

fn done(ctx: &Ctx, ids: &[i64]) -> Result<()> {
    let by = ctx.session_id();
    let (completed, err) = for_each_id(ids, |id| {
        ctx.write(&Write::CompleteTodo {
            id,
            completed_by: by.clone(),
        })
    });
    if !completed.is_empty() || ctx.json {
        let json: Vec<_> = completed.iter().map(Written::to_json).collect();
        ctx.emit(&json, || {
            let ids: Vec<String> = completed
                .iter()
                .filter_map(|w| match w {
                    Written::Todo(t) => Some(t.id.to_string()),
                    _ => None,
                })
                .collect();
            format!("done: {}\n", ids.join(", "))
        });
    }
    err.map_or(Ok(()), Err)
}
