//! Integration-test support for `kairos run`: a private `nats-server` per
//! test (own port, own storage, stopped on drop), `kairos` processes that
//! can be killed with SIGKILL, and readers of what reached the streams.
#![allow(dead_code)]

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A `[policy]` that holds nothing back, with caps no test comes near: every
/// match is sent at once, whatever the hour.
pub const UNCAPPED_POLICY: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
weekly_marketing_cap = 100000
daily_caps = { targeted = 100000, content = 100000 }
arbitration_window = "0s"
"#;

/// A `[policy]` that holds nothing back but leaves the caps at their
/// defaults, enough for tests that welcome each customer once.
pub const DEFAULT_CAPS_POLICY: &str = r#"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
arbitration_window = "0s"
"#;

/// A welcome email on a customer's first sign-up of the day, sent at once:
/// the action most tests cause and then look for in the actions stream.
pub const WELCOME_TRIGGER: &str = r#"
[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "email"
"#;

/// A cart reminder 2 s after the last add unless an order comes: short
/// enough to wait for on the wall clock.
pub const CART_TRIGGER: &str = r#"
[[trigger]]
id = "cart"
kind = "absence"
key = "cart_id"
start = "Product Added"
cancel = ["Order Completed"]
after = "2s"
channel = "push"
"#;

/// Pipeline TOML named `name`, with a policy section and triggers.
pub fn pipeline_text(name: &str, policy: &str, triggers: &str) -> String {
    format!("name = \"{name}\"\n{policy}\n{triggers}")
}

/// Writes `text` to `dir/name`; returns the path as text, as command lines
/// and server configurations take it.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The wall clock in RFC 3339: live events carry the time they happen, or
/// `kairos run` would see them as late or ahead of its clock.
pub fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    kairos_model::Timestamp(ms).to_rfc3339()
}

/// A Segment track call, timed now.
pub fn call(user: &str, name: &str, message_id: &str, properties: Value) -> Value {
    json!({"type": "track", "event": name, "userId": user, "messageId": message_id,
           "timestamp": now_rfc3339(), "properties": properties})
}

/// A `Signed Up` track call without properties, timed now.
pub fn sign_up(user: &str, message_id: &str) -> Value {
    json!({"type": "track", "event": "Signed Up", "userId": user, "messageId": message_id, "timestamp": now_rfc3339()})
}

/// A client of `server` without a login.
pub async fn client(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url()).await.expect("connect")
}

/// Publishes one raw payload with its message id (JetStream's duplicate
/// check), waiting for JetStream's acknowledgement.
pub async fn publish_raw(client: &async_nats::Client, subject: &str, id: &str, payload: Vec<u8>) {
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject.to_string(), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// Publishes a call the way a publisher must: on its customer's partition
/// subject, with its `messageId` as the message id.
pub async fn publish_call(client: &async_nats::Client, call: &Value) {
    let user = call["userId"].as_str().unwrap();
    let subject = format!(
        "kairos.events.{}",
        kairos_nats::partition::partition_of(user, 16)
    );
    publish_call_on(client, &subject, call).await;
}

/// Publishes a call on `subject`, whichever customer it is for.
pub async fn publish_call_on(client: &async_nats::Client, subject: &str, call: &Value) {
    let id = call["messageId"].as_str().unwrap();
    publish_raw(client, subject, id, call.to_string().into_bytes()).await;
}

/// How many times each action id is among `actions`: more than once is a
/// duplicate.
pub fn count_action_ids(actions: &[Stored]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for action in actions {
        *counts
            .entry(action.json()["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// Writes `events` (Segment calls, one JSON line each) to
/// `dir/events.jsonl` and runs `kairos publish --nats URL LOGIN...` on that
/// file to its end.
pub fn kairos_publish(dir: &Path, url: &str, login: &[&str], events: &str) -> Output {
    let file = write_file(dir, "events.jsonl", events);
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["publish", "--nats", url])
        .args(login)
        .arg(file)
        .output()
        .unwrap()
}

/// Runs `kairos run --nats URL --data-dir DATA ARGS...` to its end: for a
/// run expected to be refused, which exits rather than serving.
pub fn kairos_run_once(url: &str, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["run", "--nats", url, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

/// The `nats-server` binary: `$KAIROS_NATS_SERVER`, else on `PATH`, else
/// Debian's `/usr/sbin` (not on a normal user's `PATH`).
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KAIROS_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file())
        .expect("nats-server not found (KAIROS_NATS_SERVER, PATH, /usr/sbin): `deploy/test.sh` installs it")
}

/// A free TCP port on 127.0.0.1 (free when asked; taken by whoever binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

pub fn port_open_within(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A nats-server with JetStream, for one test.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: tempfile::TempDir,
    config: Option<PathBuf>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with(None)
    }

    /// A server run from a configuration file of `deploy/nats` (its
    /// storage relative to a temporary working directory, its port and
    /// monitoring port free ones).
    pub fn start_with_config(config: &Path) -> NatsServer {
        NatsServer::start_with(Some(config.to_path_buf()))
    }

    fn start_with(config: Option<PathBuf>) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("a temporary directory"),
            config,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(nats_server_binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        match &self.config {
            Some(config) => {
                command
                    .arg("-c")
                    .arg(config)
                    .args(["-m", &free_port().to_string()])
                    .current_dir(self.store.path());
            }
            None => {
                command.args(["-js", "-sd"]).arg(self.store.path());
            }
        }
        let log_path = self.store.path().join("nats-server.log");
        let log = std::fs::File::create(&log_path).expect("the server's log");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        if !port_open_within(self.port, Duration::from_secs(10)) {
            panic!(
                "nats-server is not listening on {} after 10 s; its log:\n{}",
                self.port,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL), leaving its storage.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts a stopped server again, on the same port and storage.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and
    /// storage, after `down` without a server.
    pub fn restart(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `kairos run` process.
pub struct Kairos {
    child: Option<Child>,
    pub admin: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl Kairos {
    /// Starts `kairos run --nats URL --admin ... ARGS...` and waits until
    /// `/readyz` answers 200. stderr goes to `log` (appended).
    pub fn start(nats: &NatsServer, data_dir: &Path, log: &Path, args: &[&str]) -> Kairos {
        Kairos::start_at(nats, &nats.url(), data_dir, log, args)
    }

    /// Like [`Kairos::start`], with the data directory and the log in `dir`
    /// (`data/`, `kairos.log`).
    pub fn start_in(nats: &NatsServer, dir: &Path, args: &[&str]) -> Kairos {
        Kairos::start(nats, &dir.join("data"), &dir.join("kairos.log"), args)
    }

    /// Like [`Kairos::start`], with the server's URL as given (`tls://...`).
    pub fn start_at(
        _nats: &NatsServer,
        url: &str,
        data_dir: &Path,
        log: &Path,
        args: &[&str],
    ) -> Kairos {
        let admin = free_port();
        let mut all: Vec<String> = vec![
            "run".into(),
            "--nats".into(),
            url.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--admin".into(),
            format!("127.0.0.1:{admin}"),
        ];
        all.extend(args.iter().map(|arg| arg.to_string()));
        let mut kairos = Kairos {
            child: None,
            admin,
            args: all,
            log: log.to_path_buf(),
        };
        kairos.spawn();
        kairos
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kairos"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting kairos run");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30));
    }

    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "kairos run exited with {status} before it was ready; log: {}",
                    self.log_text()
                );
            }
            if http_get(self.admin, "/readyz").is_some_and(|(status, _)| status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kairos run not ready after {within:?}; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9, then start again with the same arguments.
    pub fn kill_and_restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for kairos") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kairos did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .expect("/metrics answers")
            .1
    }
}

impl Drop for Kairos {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The metrics the README's tables name (lines `| \`kairos_…\``) that start
/// with `prefix` (e.g. `kairos_collector_`).
pub fn readme_metrics(prefix: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Panics naming each of `names` that no line of `metrics` (a Prometheus
/// page) starts with.
pub fn assert_exported(names: &[String], metrics: &str) {
    for name in names {
        assert!(
            metrics.lines().any(|line| line.starts_with(name.as_str())),
            "{name} is in the README but not in /metrics:\n{metrics}"
        );
    }
}

/// A minimal HTTP/1.1 GET: (status, body), or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())?;
    Some((status, body))
}

/// One message read back from a stream.
pub struct Stored {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// When this test read it.
    pub read_at: Instant,
}

impl Stored {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("a JSON payload")
    }
}

/// Reads the actions stream (filtered to `subject`) until `at_least`
/// actions are read, or `within` passes; returns what was read.
pub async fn read_actions(
    client: &async_nats::Client,
    subject: &str,
    at_least: usize,
    within: Duration,
) -> Vec<Stored> {
    read_stream(client, "KAIROS_ACTIONS", subject, within, |read| {
        read.len() >= at_least
    })
    .await
}

/// Reads every action that reaches the actions stream within `within`:
/// for counting, where one more than expected (a duplicate) must be seen.
pub async fn read_all_actions(client: &async_nats::Client, within: Duration) -> Vec<Stored> {
    read_stream(client, "KAIROS_ACTIONS", "kairos.actions.>", within, |_| {
        false
    })
    .await
}

/// Reads `stream` (filtered to `subject`) until `done` says so, or
/// `within` passes; returns what was read.
pub async fn read_stream(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    within: Duration,
    mut done: impl FnMut(&[Stored]) -> bool,
) -> Vec<Stored> {
    let js = jetstream::new(client.clone());
    let deadline = tokio::time::Instant::now() + within;
    let stream = loop {
        match js.get_stream(stream).await {
            Ok(stream) => break stream,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("no stream {stream}: {error}"),
        }
    };
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut read = Vec::new();
    while !done(&read) {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(message))) => read.push(Stored {
                subject: message.subject.to_string(),
                headers: message
                    .headers
                    .iter()
                    .flat_map(|headers| headers.iter())
                    .flat_map(|(name, values)| {
                        values
                            .iter()
                            .map(move |value| (name.to_string(), value.to_string()))
                    })
                    .collect(),
                payload: message.payload.to_vec(),
                read_at: Instant::now(),
            }),
            Ok(Some(Err(error))) => panic!("reading {subject}: {error}"),
            Ok(None) | Err(_) => break,
        }
    }
    read
}

/// A minimal HTTP/1.1 request: (status, the response's head, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}
