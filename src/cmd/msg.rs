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

/// The newest `limit` (unread, or all), shown in time order, and how many
/// more there are.
fn inbox(ctx: &Ctx, all: bool, limit: u32) -> Result<()> {
    let page = ctx.backend()?.messages_page(&MessageQuery {
        session: ctx.session_id(),
        unread_only: !all,
        limit: Some(limit),
        newest_first: true,
        after_id: None,
    })?;
    let mut msgs = page.messages;
    // The newest `limit`, in time order.
    msgs.sort_by_key(|m| std::cmp::Reverse(m.id));
    msgs.truncate(limit as usize);
    msgs.sort_by_key(|m| m.id);
    let more = match page.total {
        Some(t) => t.saturating_sub(msgs.len() as u64).to_string(),
        // A server that does not count: there may be more.
        None if msgs.len() >= limit as usize => "possibly".into(),
        None => "0".into(),
    };
    let what = if all { "messages" } else { "unread messages" };
    let more_line = (more != "0").then(|| {
        format!(
            "{more} older {what} not shown (the newest {} are): `coord msg inbox{} --limit N` shows more",
            msgs.len(),
            if all { " --all" } else { "" }
        )
    });
    if ctx.json
        && let Some(l) = &more_line
    {
        super::note(&format!("note: {l}"));
    }
    ctx.emit(&msgs, || {
        if msgs.is_empty() {
            return format!("no {what} for {}\n", ctx.session_id());
        }
        let mut s = render::messages(&msgs, &render::now(), &ctx.style);
        if let Some(l) = &more_line {
            s.push_str(&format!("\n{}\n", ctx.style.dim(l)));
        }
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
