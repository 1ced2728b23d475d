//! Running the hook: the session start (or its preview) and the prompt,
//! from Claude Code's input to what is printed.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Plain text on stdout.
    #[default]
    Text,
    /// Claude Code's JSON: additionalContext for the model, systemMessage for the person.
    Json,
}

pub struct HookOptions {
    pub identity: Option<PathBuf>,
    pub format: Format,
    pub timeout_ms: Option<u64>,
    pub preview: bool,
    pub no_color: bool,
}

/// Runs the hook (or its preview). Never fails: every problem becomes a
/// note in the output.
pub fn run(opts: HookOptions) {
    let started = Instant::now();
    let input = if opts.preview {
        HookInput::default()
    } else {
        read_input(INPUT_WAIT)
    };
    let cwd = input
        .cwd
        .clone()
        .filter(|p| p.is_dir())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut identity = Identity::load(opts.identity.as_deref(), &cwd);
    let (limit, capped) = timeout(opts.timeout_ms, identity.as_ref().ok());
    let now = crate::clock::now();
    let win = window_id(input.session_id.as_deref());
    let start = input
        .hook_event_name
        .as_deref()
        .is_none_or(|e| e == "SessionStart");
    let mut window_note = None;
    if let Ok(id) = identity.as_mut()
        && !opts.preview
    {
        // At most half the deadline: the reads need the rest.
        window_note = name_this_window(id, &win, start, &cwd, started + limit / 2).err();
    }
    // Without a name the window could be shown another window's mail.
    let unnamed = window_note
        .as_deref()
        .is_some_and(|n| n.starts_with(UNNAMED));
    let resumed = input.source.as_deref() == Some("resume");
    let event = input
        .hook_event_name
        .clone()
        .unwrap_or_else(|| "SessionStart".into());
    if event == "SessionEnd" && !opts.preview {
        // The window ends: the fleet knows it closed (v1.2).
        if let (Ok(id), false) = (&identity, unnamed) {
            report::session_end(id, &win, input.reason.as_deref());
        }
        return;
    }
    if event == "UserPromptSubmit" && !opts.preview {
        // Only what this window has not been shown; nothing at all when
        // nothing is new (a broken identity is the session start's to say).
        if let (Ok(id), false) = (&identity, unnamed) {
            crate::out::out(&prompt::output(
                id,
                &win,
                started,
                limit,
                opts.format == Format::Json,
            ));
        }
        return;
    }
    let snap = match &identity {
        Ok(id) => {
            let queue = if opts.preview {
                waiting_line(id)
            } else {
                drain_queue(id, started, limit)
            };
            let touch = (!opts.preview && !unnamed).then(|| presence(id, &cwd));
            let mut snap = fetch(id, started, limit, touch);
            if unnamed {
                snap.messages = None;
                snap.message_total = None;
            }
            // A resumed conversation still holds what it was shown.
            if resumed
                && win.is_known()
                && let Some(msgs) = snap.messages.as_mut()
                && let Ok(shown) = crate::window::registry(&id.state_dir)
                    .until(started + limit)
                    .shown_of(&win)
            {
                let before = msgs.len();
                msgs.retain(|m| shown.binary_search(&m.id).is_err());
                snap.earlier = before - msgs.len();
            }
            snap.queue = queue;
            if let Some(asked) = capped {
                snap.notes.push(format!(
                    "coord: the hook deadline {asked} ms is outside {MIN_TIMEOUT_MS}–{MAX_TIMEOUT_MS} ms (Claude Code stops the hook at 10 s); {} ms is used",
                    limit.as_millis()
                ));
            }
            snap.notes
                .extend(id.ignored_note().map(|n| format!("coord: {n}")));
            snap.notes
                .extend(id.token_withheld.as_ref().map(|n| format!("coord: {n}")));
            snap.notes
                .extend(id.warnings.iter().map(|w| format!("coord: {w}")));
            snap.notes
                .extend(window_note.map(|n| format!("coord: {n}")));
            snap
        }
        Err(e) => Snapshot {
            session: "this session".into(),
            notes: vec![format!(
                "coord: {}. Fix it; the session goes on without coord messages.",
                crate::text::cell(&e.to_string(), 300)
            )],
            ..Snapshot::default()
        },
    };
    let (text, framed) = match opts.format {
        Format::Json => {
            let (t, ids) = render_json_framed(&snap, &now, &event);
            (format!("{t}\n"), ids)
        }
        Format::Text => render_block_framed(&snap, &now, MAX_OUTPUT),
    };
    // A new context: what this block framed is all it has been shown (the
    // messages only counted or summarised come at the next prompt). A
    // resumed one adds to what it was shown.
    if let (Ok(id), false, true) = (&identity, opts.preview, win.is_known()) {
        let framed = if snap.messages.is_some() {
            framed
        } else {
            Vec::new()
        };
        let _ = crate::window::registry(&id.state_dir)
            .until(started + limit)
            .reset_shown(&win, &framed, resumed);
    }
    if opts.preview {
        let style = Style::detect(opts.no_color, std::io::stdout().is_terminal());
        let from = match &identity {
            Ok(id) => format!(
                "preview for {} (identity: {}), reading from {}; nothing is marked read\n\n",
                id.session_id(),
                match &id.source {
                    Source::File(p) => p.display().to_string(),
                    Source::Defaults => "defaults".into(),
                },
                id.api_shown()
                    .unwrap_or_else(|| id.db_path.display().to_string())
            ),
            Err(_) => "preview: the identity could not be read\n\n".into(),
        };
        crate::out::out(&format!("{}\n\n", style.dim(from.trim_end())));
        crate::out::out(&colourise(&text, &style));
    } else {
        crate::out::out(&text);
        // Windows of this machine that ended without a word (killed, no
        // waiter): the session start that noticed tells the fleet, after
        // its answer, within what is left of its deadline.
        if let Ok(id) = &identity
            && crate::window::registry::closes_pending()
        {
            report::closes_within(id, started + limit);
        }
    }
}

/// Colours a block's structure for a person; text inside is untouched.
pub(crate) fn colourise(block: &str, style: &Style) -> String {
    if !style.color {
        return block.to_string();
    }
    let mut out = String::with_capacity(block.len() + 256);
    for line in block.split_inclusive('\n') {
        let (body, nl) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        let painted = if body.starts_with("===") {
            style.bold(&style.yellow(body))
        } else if body.starts_with(MESSAGE_START) {
            style.cyan(body)
        } else if body.starts_with("note:") {
            style.red(body)
        } else if body.starts_with(BODY_PREFIX) || body == "|" {
            body.to_string()
        } else {
            style.dim(body)
        };
        out.push_str(&painted);
        out.push_str(nl);
    }
    out
}
