//! `coord msg send|inbox|read`.

use super::{Ctx, for_each_id, read_text};
use crate::cli::{MsgCmd, MsgSend};
use crate::error::{Error, Result};
use crate::model::*;
use crate::render;

pub fn run(ctx: &Ctx, cmd: MsgCmd) -> Result<()> {
    match cmd {
        MsgCmd::Send(s) => send(ctx, s),
        MsgCmd::Inbox { all, limit } => inbox(ctx, all, limit),
        MsgCmd::Read { ids } => read(ctx, &ids),
    }
}

fn send(ctx: &Ctx, s: MsgSend) -> Result<()> {
    if s.to.trim().is_empty() {
        return Err(Error::Usage("the recipient is empty".into()));
    }
    let body = read_text(s.body, s.body_file.as_deref(), "message body")?;
    let id = &ctx.identity;
    let w = Write::SendMessage(NewMessage {
        to_session: expand_recipient(&s.to),
        body,
        subject: s.subject.filter(|s| !s.is_empty()),
        from_session: id.session_id(),
        created_by_user: id.user.clone(),
        created_by_machine: id.machine.clone(),
    });
    ctx.write_and_emit(&w, |written| match written {
        Written::Message(m) => format!(
            "sent message {} to {}\n",
            m.id,
            render::cell(&m.to_session, 80)
        ),
        _ => String::new(),
    })
}

fn inbox(ctx: &Ctx, all: bool, limit: u32) -> Result<()> {
    let msgs = ctx.backend()?.messages(&MessageQuery {
        session: ctx.session_id(),
        unread_only: !all,
        limit: Some(limit),
    })?;
    ctx.emit(&msgs, || {
        if msgs.is_empty() {
            let what = if all { "messages" } else { "unread messages" };
            return format!("no {what} for {}\n", ctx.session_id());
        }
        let mut s = render::messages(&msgs, &render::now(), &ctx.style);
        if !all {
            s.push_str(&format!(
                "\n{}\n",
                ctx.style.dim("acknowledge with: coord msg read <id>")
            ));
        }
        s
    });
    Ok(())
}

fn read(ctx: &Ctx, ids: &[i64]) -> Result<()> {
    let session = ctx.session_id();
    let (marked, err) = for_each_id(ids, |id| {
        ctx.write(&Write::MarkRead {
            id,
            session: session.clone(),
        })
    });
    let json: Vec<_> = marked.iter().map(Written::to_json).collect();
    if !marked.is_empty() || ctx.json {
        ctx.emit(&json, || {
            let ids: Vec<String> = marked
                .iter()
                .filter_map(|w| match w {
                    Written::Message(m) => Some(m.id.to_string()),
                    _ => None,
                })
                .collect();
            format!("marked read: {}\n", ids.join(", "))
        });
    }
    err.map_or(Ok(()), Err)
}
