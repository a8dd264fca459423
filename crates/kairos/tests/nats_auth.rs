//! `kairos run` and `kairos publish` logging in to nats-server every way
//! `deploy/nats` shows: a token, an NKey, and TLS with a client
//! certificate (user/password is in `nats_secured.rs`). Each server is
//! configured here, with keys and certificates made for the test.

mod nats;

use nats::{read_stream, Kairos, NatsServer};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PIPELINE: &str = r#"
name = "auth"
[policy]
holdout_percent = 0
consent_required = []
quiet_hours = false
arbitration_window = "0s"

[[trigger]]
id = "welcome"
kind = "count"
event = "Signed Up"
window = { tumbling = "1d" }
channel = "email"
"#;

/// Starts `kairos run` with `login`, publishes one sign-up with
/// `kairos publish` and the same login, and reads the welcome back with
/// `reader`.
async fn welcome_round_trip(
    server: &NatsServer,
    url: &str,
    login: &[&str],
    reader: async_nats::Client,
) {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("auth.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let mut args = vec!["--pipeline", pipeline.to_str().unwrap()];
    args.extend_from_slice(login);
    let _kairos = Kairos::start_at(
        server,
        url,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &args,
    );
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"u1\",\"messageId\":\"m1\",\"timestamp\":\"2026-11-23T10:00:00Z\"}\n",
    )
    .unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["publish", "--nats", url])
        .args(login)
        .arg(&events)
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let read = read_stream(
        &reader,
        "KAIROS_ACTIONS",
        "kairos.actions.email",
        Duration::from_secs(10),
        |read| !read.is_empty(),
    )
    .await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].json()["data"]["trigger"], "welcome");
}

/// `kairos run` with `login` cannot connect: exit 1, saying so.
fn refused(url: &str, login: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("auth.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "run",
            "--nats",
            url,
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(login)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
    stderr
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "token.conf",
        "jetstream { store_dir: \"./js\" }\nauthorization { token: \"s3cret-token\" }\n",
    );
    let server = NatsServer::start_with_config(Path::new(&config));
    let reader = async_nats::ConnectOptions::with_token("s3cret-token".into())
        .connect(server.url())
        .await
        .unwrap();
    welcome_round_trip(&server, &server.url(), &["--token", "s3cret-token"], reader).await;
    refused(&server.url(), &["--token", "wrong"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey() {
    let dir = tempfile::tempdir().unwrap();
    let user = nkeys::KeyPair::new_user();
    let seed = write(dir.path(), "user.nk", &user.seed().unwrap());
    let config = write(
        dir.path(),
        "nkey.conf",
        &format!("jetstream {{ store_dir: \"./js\" }}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n", user.public_key()),
    );
    let server = NatsServer::start_with_config(Path::new(&config));
    let reader = async_nats::ConnectOptions::with_nkey(user.seed().unwrap())
        .connect(server.url())
        .await
        .unwrap();
    welcome_round_trip(&server, &server.url(), &["--nkey", &seed], reader).await;
    let stranger = write(
        dir.path(),
        "stranger.nk",
        &nkeys::KeyPair::new_user().seed().unwrap(),
    );
    refused(&server.url(), &["--nkey", &stranger]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["localhost".into()]);
    let (client_cert, client_key) = issue(vec!["kairos-engine".into()]);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let server_cert = write(dir.path(), "server.pem", &server_cert);
    let server_key = write(dir.path(), "server-key.pem", &server_key);
    let client_cert = write(dir.path(), "client.pem", &client_cert);
    let client_key = write(dir.path(), "client-key.pem", &client_key);
    let config = write(
        dir.path(),
        "tls.conf",
        &format!(
            "jetstream {{ store_dir: \"./js\" }}\ntls {{ cert_file: \"{server_cert}\", key_file: \"{server_key}\", ca_file: \"{ca_file}\", verify: true, timeout: 2 }}\n"
        ),
    );
    let server = NatsServer::start_with_config(Path::new(&config));
    let url = format!("tls://localhost:{}", server.port);
    let reader = async_nats::ConnectOptions::new()
        .add_root_certificates(ca_file.clone().into())
        .add_client_certificate(client_cert.clone().into(), client_key.clone().into())
        .require_tls(true)
        .connect(url.as_str())
        .await
        .unwrap();
    let login = [
        "--tls-ca",
        &ca_file,
        "--tls-cert",
        &client_cert,
        "--tls-key",
        &client_key,
    ];
    welcome_round_trip(&server, &url, &login, reader).await;
    // The server verifies clients: trusting it is not enough.
    refused(&url, &["--tls-ca", &ca_file]);
}
