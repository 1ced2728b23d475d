//! The dashboard in a real browser (issue 23): Chromium driven through
//! WebDriver (chromedriver, started here on 127.0.0.1), against a real
//! `coord serve` with a small fleet in it. `.ci/run` installs `chromium`
//! and `chromium-driver`; without them each test says SKIPPED loudly.
//! The WebDriver calls are a few JSON requests, made with ureq.

use std::io::{Read, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Machine, Server, stderr};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn which(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
            .iter()
            .map(|d| format!("{d}/{n}"))
            .find(|p| std::path::Path::new(p).is_file())
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let a = agent();
    let resp = match (method, body) {
        ("GET", _) => a.get(url).call(),
        ("DELETE", _) => a.delete(url).call(),
        (_, b) => a
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string()),
    };
    let text = resp
        .expect("chromedriver answers")
        .body_mut()
        .read_to_string()
        .unwrap_or_default();
    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["value"].take()
}

impl Browser {
    /// Chromium, headless, through a chromedriver of its own; None (after
    /// saying SKIPPED) when this machine has neither.
    fn start(test: &str) -> Option<Browser> {
        if cfg!(windows) {
            eprintln!(
                "SKIPPED {test}: the browser tests run on Linux (Chromium from Debian's packages)"
            );
            return None;
        }
        let (Some(driver), Some(chrome)) = (
            which(&["chromedriver"]),
            which(&["chromium", "chromium-browser", "chrome"]),
        ) else {
            eprintln!(
                "SKIPPED {test}: no chromium and chromedriver here (apt: chromium chromium-driver; .ci/run installs them)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while agent().get(&format!("{base}/status")).call().is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver never answered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,1400", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = call("POST", &format!("{base}/session"), Some(caps));
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_string();
        Some(Browser {
            driver: child,
            base,
            session,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn go(&self, to: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": to})));
    }

    fn find(&self, css: &str) -> String {
        let v = call(
            "POST",
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}\n{}", self.text("body")))
            .to_string()
    }

    fn type_in(&self, css: &str, text: &str) {
        // Focused first, as a person would: the page then holds its live
        // refresh until the form is sent.
        self.click(css);
        let e = self.find(css);
        call(
            "POST",
            &self.url(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        call("POST", &self.url(&format!("/element/{e}/click")), None);
    }

    fn run(&self, script: &str) -> Value {
        call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The visible text of the first element matching `css` ("" if none).
    fn text(&self, css: &str) -> String {
        self.run(&format!(
            "var e = document.querySelector({}); return e ? e.innerText : '';",
            json!(css)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits (up to 15 s) until the element's text contains `what`.
    fn wait_for(&self, css: &str, what: &str) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if self.text(css).contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn screenshot(&self, to: &std::path::Path) {
        let v = call("GET", &self.url("/screenshot"), None);
        if let Some(png) = v.as_str().and_then(base64_decode) {
            let _ = std::fs::write(to, png);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        call("DELETE", &self.url(""), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64, for the screenshot (no crate for one PNG).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// A small fleet on `s`: two machines, messages (one a `<script>`), a
/// lock, todos, a component.
fn small_fleet(s: &Server) -> (Machine, Machine) {
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    a.arrive(None);
    b.arrive(None);
    for (m, args) in [
        (&a, vec!["msg", "send", "BRAVO", "migration 42 is done"]),
        (
            &b,
            vec![
                "msg",
                "send",
                "ALL",
                "<script>alert('x')</script> deploy freeze",
            ],
        ),
        (
            &a,
            vec!["lock", "claim", "web", "deploy", "--note", "cutting 1.4"],
        ),
        (
            &a,
            vec!["todo", "add", "rotate the API token", "--project", "web"],
        ),
        // Expires in about a second: flagged as expired on the page.
        (
            &b,
            vec![
                "lock",
                "claim",
                "web",
                "hotfix",
                "--ttl",
                "0.0003",
                "--note",
                "quick fix",
            ],
        ),
        (
            &b,
            vec![
                "component",
                "set",
                "web",
                "api",
                "deployed",
                "--version",
                "1.4.0",
            ],
        ),
    ] {
        let out = m.coord(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    (a, b)
}

#[test]
fn the_dashboard_shows_the_fleet_updates_live_and_its_form_reaches_a_hook() {
    let Some(br) =
        Browser::start("the_dashboard_shows_the_fleet_updates_live_and_its_form_reaches_a_hook")
    else {
        return;
    };
    let s = Server::start(&[]);
    let (a, b) = small_fleet(&s);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    br.go(&format!("{}/", s.url));
    assert!(
        br.wait_for("#sessions", "ALPHA/claude-main"),
        "{}",
        br.text("body")
    );
    // The lock that ran out is still listed, flagged.
    let expired = br.text("#locks table.expired");
    assert!(
        expired.contains("web/hotfix") && expired.contains("expired"),
        "{expired}"
    );
    assert!(br.text("#sessions").contains("BRAVO/claude-main"));
    assert!(br.text("#messages").contains("migration 42 is done"));
    // The body is text: shown, never run.
    assert!(br.text("#messages").contains("<script>alert('x')</script>"));
    assert_eq!(
        br.run("return document.querySelectorAll('#messages script').length"),
        json!(0)
    );
    assert!(br.text("#locks").contains("cutting 1.4"));
    assert!(br.text("#todos").contains("rotate the API token"));
    assert!(br.text("#state").contains("1.4.0"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    br.screenshot(&shot);

    // A write elsewhere shows without a reload.
    br.run("window.__same_page = 1; return 1");
    let out = b
        .coord(&["msg", "send", "ALPHA", "written from a terminal"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        br.wait_for("#messages", "written from a terminal"),
        "{}",
        br.text("#messages")
    );
    assert_eq!(
        br.run("return window.__same_page"),
        json!(1),
        "the page was reloaded"
    );

    // The form sends; the recipient's hook shows it, from WEB/….
    br.type_in("#compose input[name=to]", "BRAVO");
    br.type_in("#compose textarea[name=body]", "sent from the dashboard");
    br.click("#compose button[type=submit]");
    assert!(br.wait_for("#messages", "sent from the dashboard"));
    let (_, ctx) = b.hook_context(None);
    assert!(ctx.contains("sent from the dashboard"), "{ctx}");
    assert!(ctx.contains("WEB/"), "{ctx}");
    // A todo added and finished from the page.
    br.type_in("#todos input[name=text]", "write the release notes");
    br.click("#todos form.add button");
    assert!(br.wait_for("#todos", "write the release notes"));
    let todos = a.json(None, &["todo", "list", "--status", "all"]);
    assert!(todos.to_string().contains("write the release notes"));

    // A phone-sized screen: nothing wider than the screen but the tables,
    // which scroll inside themselves.
    call(
        "POST",
        &br.url("/window/rect"),
        Some(json!({"width": 390, "height": 844})),
    );
    br.go(&format!("{}/", s.url));
    assert!(br.wait_for("#sessions", "ALPHA/claude-main"));
    let (page, screen) = (
        br.run("return document.documentElement.scrollWidth"),
        br.run("return window.innerWidth"),
    );
    assert!(screen.as_i64().unwrap() <= 400, "a phone: {screen} px");
    assert!(
        page.as_i64().unwrap() <= screen.as_i64().unwrap(),
        "the page is {page} px wide on a {screen} px screen"
    );
}

/// A page of another origin whose form posts to the dashboard on load.
fn hostile_page(target: &str) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}/ui/send\">\
         <input name=csrf value=guess><input name=to value=ALL>\
         <input name=body value=forged></form><script>document.getElementById('f').submit()</script>"
    );
    let h = std::thread::spawn(move || {
        for mut c in l.incoming().flatten().take(3) {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (url, h)
}

#[test]
fn with_a_token_the_page_asks_for_it_and_a_forged_post_applies_nothing() {
    let Some(br) =
        Browser::start("with_a_token_the_page_asks_for_it_and_a_forged_post_applies_nothing")
    else {
        return;
    };
    let s = Server::start(&["--token", "fleet-secret"]);
    let a = Machine::with_identity(
        "ALPHA",
        &json!({"user": "a", "machine": "ALPHA", "coord_api": s.url, "coord_token": "fleet-secret"}),
    );
    a.arrive(None);
    let out = a
        .coord(&["msg", "send", "ALL", "private to the fleet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    br.go(&format!("{}/", s.url));
    // No fleet data before the token.
    assert!(br.wait_for("body", "Fleet token"));
    assert!(!br.text("body").contains("private to the fleet"));
    assert!(!br.text("body").contains("ALPHA"));
    br.type_in("input[name=token]", "wrong");
    br.click("button[type=submit]");
    assert!(br.wait_for("body", "not this server's"));
    br.type_in("input[name=token]", "fleet-secret");
    br.click("button[type=submit]");
    assert!(br.wait_for("#messages", "private to the fleet"));
    // The cookie is not for scripts.
    assert_eq!(br.run("return document.cookie"), json!(""));

    // A page of another origin posts to the dashboard, cookie and all.
    let (evil, h) = hostile_page(&s.url);
    br.go(&evil);
    std::thread::sleep(Duration::from_millis(1500));
    let all = a.json(None, &["msg", "inbox", "--all"]);
    assert!(!all.to_string().contains("forged"), "{all}");
    drop(h);
    // And the API still refuses a browser's cross-site write.
    let r = agent()
        .post(&format!("{}/api/coord/messages", s.url))
        .header("Origin", "http://evil.example")
        .header("Authorization", "Bearer fleet-secret")
        .header("Content-Type", "application/json")
        .send(r#"{"to_session":"ALL_SESSIONS","body":"x","from_session":"E/x","created_by_user":"e","created_by_machine":"E"}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn coord_ui_serves_this_machines_own_store_on_loopback() {
    use std::io::BufRead;
    let m = Machine::new("BOX");
    m.arrive(None);
    let out = m
        .coord(&["msg", "send", "ALL", "from the embedded store"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = m
        .std_bin("coord", None, &["ui"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let page = agent()
        .get(&format!("{url}/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.contains("from the embedded store"), "{page}");
    assert!(page.contains("BOX/claude-main"), "{page}");
    // A person writes as WEB/<the identity's user>.
    assert!(page.contains("WEB/howard"), "{page}");
}

#[test]
fn a_thread_shows_a_message_and_its_replies_only() {
    let s = Server::start(&[]);
    let a = Machine::remote("ALPHA", &s.url);
    let b = Machine::remote("BRAVO", &s.url);
    a.arrive(None);
    b.arrive(None);
    let q = a.json(None, &["msg", "send", "BRAVO", "which port?"]);
    let id = q["id"].to_string();
    b.json(None, &["msg", "reply", &id, "8001"]);
    a.json(None, &["msg", "send", "BRAVO", "unrelated"]);
    let get = |path: &str| {
        agent()
            .get(&format!("{}{path}", s.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let thread = get(&format!("/?thread={id}"));
    assert!(
        thread.contains("which port?") && thread.contains("8001"),
        "{thread}"
    );
    assert!(!thread.contains("unrelated"), "{thread}");
    assert!(get("/").contains("unrelated"));
    // The live part answers alone, with the same filter.
    let part = get(&format!("/ui/main?thread={id}"));
    assert!(part.contains("8001") && !part.contains("<html"), "{part}");
}
