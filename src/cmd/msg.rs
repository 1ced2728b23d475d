//! `coord msg send|reply|sent|inbox|read`.

use super::{Ctx, for_each_id, read_text};
use crate::cli::{MsgCmd, MsgSend};
use crate::error::{Error, Result};
use crate::model::*;
use crate::render;

pub fn run(ctx: &Ctx, cmd: MsgCmd) -> Result<()> {
    match cmd {
        MsgCmd::Send(s) => send(ctx, s),
        MsgCmd::Reply {
            id,
            body,
            body_file,
        } => reply(ctx, id, body, body_file.as_deref()),
        MsgCmd::Sent { limit } => sent(ctx, limit),
        MsgCmd::Inbox { all, limit } => inbox(ctx, all, limit),
        MsgCmd::Read { ids } => read(ctx, &ids),
        MsgCmd::Status { id } => super::delivery::status(ctx, id),
    }
}

fn send(ctx: &Ctx, s: MsgSend) -> Result<()> {
    if s.to.trim().is_empty() {
        return Err(Error::Usage("the recipient is empty".into()));
    }
    let body = read_text(s.body, s.body_file.as_deref(), "message body")?;
    let (to, seen) = resolve(ctx, &s.to, s.force)?;
    let closed = super::delivery::not_live(ctx, &to, seen.as_ref(), s.live)?;
    deliver(ctx, to, body, s.subject.filter(|s| !s.is_empty()), None)?;
    // Sent all the same (exit 0): the sender knows it waits.
    if let Some(line) = closed {
        crate::out::note(&format!("note: {line}"));
    }
    Ok(())
}

fn deliver(
    ctx: &Ctx,
    to: String,
    body: String,
    subject: Option<String>,
    in_reply_to: Option<i64>,
) -> Result<()> {
    let w = ctx.message(to, subject, body, in_reply_to);
    ctx.write_and_emit(&w, |written| match written {
        Written::Message(m) => format!(
            "sent message {} to {}\n",
            m.id,
            crate::text::cell(&m.to_session, 80)
        ),
        _ => String::new(),
    })
}

/// Where `to` reaches: a known session or machine (any case), a broadcast,
/// or — only with `--force` — an address nobody has used. An unknown one is
/// a usage error naming the closest known addresses: a message must never
/// go silently where nobody reads.
/// Also answers the session found, as the fleet lists it (None for a
/// broadcast, `--force`, or when sessions cannot be listed).
fn resolve(ctx: &Ctx, to: &str, force: bool) -> Result<(String, Option<Session>)> {
    let expanded = expand_recipient(to);
    // One grammar for everyone, --force included: an address is never
    // anything a shell, a terminal or a reader could take for more.
    if let Some(p) = crate::model::address_problem(&expanded) {
        return Err(Error::Usage(format!(
            "recipient {p}; an address is MACHINE or MACHINE/NAME, or ALL for everyone"
        )));
    }
    if expanded == ALL_SESSIONS || force {
        return Ok((expanded, None));
    }
    let known = match ctx.backend()?.sessions(None) {
        Ok(Some(k)) => k,
        Ok(None) => {
            crate::out::note(&format!(
                "note: the coord API does not list sessions (a v1 server): {expanded} is not checked"
            ));
            return Ok((expanded, None));
        }
        // Offline: the address cannot be checked now; the write waits in
        // the queue (and says so) rather than being lost.
        Err(e) if e.retry() == crate::delivery::Retry::Later => return Ok((expanded, None)),
        Err(e) => return Err(e),
    };
    // What `coord sessions` lists, and nothing else: the sender itself is
    // not "known" to be read by anyone just because it sends.
    let me = ctx.session_id();
    let ids: Vec<String> = known
        .iter()
        .map(|s| s.session_id.clone())
        .filter(|id| !id.eq_ignore_ascii_case(&me))
        .collect();
    let machine_of = |id: &str| {
        id.split_once('/')
            .map_or(id.to_string(), |(m, _)| m.to_string())
    };
    let find = |wanted: &str| {
        ids.iter()
            .find(|id| id.eq_ignore_ascii_case(wanted))
            .cloned()
            .or_else(|| {
                // A bare machine: its claude-main, when any session of that
                // machine is known — or when it is this machine, whose
                // first window is claude-main.
                let (m, n) = wanted.split_once('/')?;
                (n == DEFAULT_SESSION
                    && (machine_of(&me).eq_ignore_ascii_case(m)
                        || ids.iter().any(|id| machine_of(id).eq_ignore_ascii_case(m))))
                .then(|| format!("{}/{DEFAULT_SESSION}", m.to_ascii_uppercase()))
            })
            // Yourself: you read it.
            .or_else(|| wanted.eq_ignore_ascii_case(&me).then(|| me.clone()))
    };
    let seen = |id: String| {
        let s = known
            .iter()
            .find(|s| s.session_id.eq_ignore_ascii_case(&id))
            .cloned();
        (id, s)
    };
    if let Some(found) = find(&expanded) {
        return Ok(seen(found));
    }
    // `$(hostname)` on a machine with a domain: the host name up to the
    // first dot is the machine.
    if let Some((m, n)) = expanded.split_once('/')
        && let Some((short, _)) = m.split_once('.')
        && let Some(found) = find(&format!("{short}/{n}"))
    {
        return Ok(seen(found));
    }
    let mut near: Vec<(usize, String)> = ids
        .iter()
        .map(|id| {
            (
                crate::identity::edit_distance(&id.to_lowercase(), &expanded.to_lowercase()),
                id.clone(),
            )
        })
        .collect();
    near.sort();
    near.dedup_by(|a, b| a.1 == b.1);
    let names: Vec<String> = near.into_iter().take(3).map(|(_, id)| id).collect();
    let machine = machine_of(&expanded);
    let machine_known = ids
        .iter()
        .any(|id| machine_of(id).eq_ignore_ascii_case(&machine));
    let why = if machine_known {
        format!(
            "no session of the fleet has used {}, so nobody would read it",
            crate::text::cell(&expanded, 80)
        )
    } else {
        format!(
            "machine {} has not joined the fleet yet: a machine is known once a Claude Code session with coord-hook starts there",
            crate::text::cell(&machine, 80)
        )
    };
    Err(Error::Usage(format!(
        "{why}; known: {} — check `coord sessions`, or send anyway with --force (it is read when a session of that name starts)",
        if names.is_empty() {
            "none yet".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// Answers message `id`: to its sender, `re: ` its subject (or its first
/// line), marked as a reply.
fn reply(ctx: &Ctx, id: i64, body: Option<String>, file: Option<&std::path::Path>) -> Result<()> {
    let body = read_text(body, file, "reply")?;
    let original = find_message(ctx, id)?;
    let topic = original
        .subject
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| original.body.lines().next().unwrap_or("").to_string());
    let topic = crate::text::clip(topic.trim(), 80);
    let subject = if topic.to_ascii_lowercase().starts_with("re:") {
        topic
    } else {
        format!("re: {topic}")
    };
    deliver(ctx, original.from_session, body, Some(subject), Some(id))?;
    // Answered is acknowledged: it does not come back after /clear, and is
    // not answered twice.
    if !original.read {
        ctx.write(&Write::MarkRead {
            id,
            session: ctx.session_id(),
        })?;
        if !ctx.json {
            crate::out::out(&format!("marked message {id} read\n"));
        }
    }
    Ok(())
}

/// Message `id` among this session's (read or not).
fn find_message(ctx: &Ctx, id: i64) -> Result<Message> {
    let backend = ctx.backend()?;
    let near = backend.messages(&MessageQuery {
        session: ctx.session_id(),
        unread_only: false,
        limit: Some(1),
        after_id: Some(id - 1),
        ..Default::default()
    })?;
    if let Some(m) = near.into_iter().find(|m| m.id == id) {
        return Ok(m);
    }
    // A server that ignores after_id: look through what it gives.
    backend
        .messages(&MessageQuery {
            session: ctx.session_id(),
            unread_only: false,
            limit: Some(MAX_MESSAGE_LIMIT),
            newest_first: true,
            ..Default::default()
        })?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| {
            Error::Usage(format!(
                "message {id} is not among {}'s messages: `coord msg inbox --all` lists them",
                ctx.session_id()
            ))
        })
}

/// What this session sent, newest first, with who has read each.
fn sent(ctx: &Ctx, limit: u32) -> Result<()> {
    let page = ctx.backend()?.messages_page(&MessageQuery {
        session: ctx.session_id(),
        limit: Some(limit),
        newest_first: true,
        sent: true,
        ..Default::default()
    })?;
    let msgs = page.messages;
    // v1.2: what became of each (one small read each; none against a
    // server that cannot say).
    let backend = ctx.backend()?;
    let mut states: Vec<Option<String>> = Vec::new();
    for m in msgs.iter().filter(|_| !ctx.json) {
        match backend.delivery(m.id) {
            Ok(Some(d)) => states.push(Some(super::delivery::summary(&d))),
            _ => break,
        }
    }
    ctx.emit(&msgs, || {
        if msgs.is_empty() {
            return format!("{} has sent no messages\n", ctx.session_id());
        }
        let now = crate::clock::now();
        let mut head = vec!["ID", "TO", "SENT", "READ BY", "TEXT"];
        if !states.is_empty() {
            head.insert(3, "STATE");
        }
        let mut t = render::Table::new(head);
        for (i, m) in msgs.iter().enumerate() {
            let text = match m.subject.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => s.to_string(),
                None => m.body.clone(),
            };
            let read_by = match m.read_by.as_deref() {
                Some([]) | None => ctx.style.dim("nobody yet"),
                Some(r) => crate::text::cell(&r.join(", "), 60),
            };
            let mut row = vec![
                m.id.to_string(),
                crate::text::cell(&m.to_session, 40),
                render::when(&m.created_at, &now),
                read_by,
                crate::text::cell(&text, 60),
            ];
            if !states.is_empty() {
                let st = states
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "-".into());
                row.insert(3, st);
            }
            t.row(row);
        }
        t.render(&ctx.style)
    });
    Ok(())
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
        sent: false,
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
        crate::out::note(&format!("note: {l}"));
    }
    ctx.emit(&msgs, || {
        if msgs.is_empty() {
            return format!("no {what} for {}\n", ctx.session_id());
        }
        let mut s = render::messages(&msgs, &crate::clock::now(), &ctx.style);
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
