//! `kairos run` and `kairos publish` logging in to nats-server every way
//! `deploy/nats` shows: a token, an NKey, and TLS with a client
//! certificate (user/password is in `nats_secured.rs`). Each server is
//! configured here, with keys and certificates made for the test.

mod nats;

use nats::{
    kairos_publish, kairos_run_once, pipeline_text, read_actions, write_file, Kairos, NatsServer,
    DEFAULT_CAPS_POLICY, WELCOME_TRIGGER,
};
use std::path::Path;
use std::time::Duration;

fn write_pipeline(dir: &Path) -> String {
    let text = pipeline_text("auth", DEFAULT_CAPS_POLICY, WELCOME_TRIGGER);
    write_file(dir, "auth.toml", &text)
}

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
    let pipeline = write_pipeline(dir.path());
    let mut args = vec!["--pipeline", pipeline.as_str()];
    args.extend_from_slice(login);
    let _kairos = Kairos::start_at(
        server,
        url,
        &dir.path().join("data"),
        &dir.path().join("kairos.log"),
        &args,
    );
    let published = kairos_publish(
        dir.path(),
        url,
        login,
        "{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"u1\",\"messageId\":\"m1\",\"timestamp\":\"2026-11-23T10:00:00Z\"}\n",
    );
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let read = read_actions(&reader, "kairos.actions.email", 1, Duration::from_secs(10)).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].json()["data"]["trigger"], "welcome");
}

/// `kairos run` with `login` cannot connect: exit 1, saying so.
fn refused(url: &str, login: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path());
    let args = [&["--pipeline", pipeline.as_str()], login].concat();
    let output = kairos_run_once(url, &dir.path().join("data"), &args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
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
    let seed = write_file(dir.path(), "user.nk", &user.seed().unwrap());
    let config = write_file(
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
    let stranger = write_file(
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
    let ca_file = write_file(dir.path(), "ca.pem", &ca.pem());
    let server_cert = write_file(dir.path(), "server.pem", &server_cert);
    let server_key = write_file(dir.path(), "server-key.pem", &server_key);
    let client_cert = write_file(dir.path(), "client.pem", &client_cert);
    let client_key = write_file(dir.path(), "client-key.pem", &client_key);
    let config = write_file(
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

/// A JWT as nats-server's operator mode reads them: header and claims in
/// base64url, signed with the issuer's NKey (ed25519).
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{subject}-{name}"),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let signature = encode(&issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

/// A `.creds` file's text: a user's JWT and the NKey seed it was issued to.
fn creds_file_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_in_operator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    // JetStream needs a system account in operator mode.
    let system = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "kairos-op",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "KAIROS",
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "engine",
        serde_json::json!({"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1}),
    );
    let operator_file = write_file(dir.path(), "operator.jwt", &operator_jwt);
    let config = write_file(
        dir.path(),
        "operator.conf",
        &format!(
            "jetstream {{ store_dir: \"./js\" }}\noperator: \"{operator_file}\"\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{ {}: \"{account_jwt}\", {sys}: \"{system_jwt}\" }}\n",
            account.public_key(),
            sys = system.public_key(),
        ),
    );
    let creds_text = creds_file_text(&user_jwt, &user.seed().unwrap());
    let creds = write_file(dir.path(), "engine.creds", &creds_text);
    let server = NatsServer::start_with_config(Path::new(&config));
    let reader = async_nats::ConnectOptions::with_credentials(&creds_text)
        .unwrap()
        .connect(server.url())
        .await
        .unwrap();
    welcome_round_trip(&server, &server.url(), &["--creds", &creds], reader).await;
    let stranger = nkeys::KeyPair::new_user();
    let forged = jwt(
        &stranger,
        &stranger.public_key(),
        "forged",
        serde_json::json!({"type": "user", "version": 2}),
    );
    let forged = write_file(
        dir.path(),
        "forged.creds",
        &creds_file_text(&forged, &stranger.seed().unwrap()),
    );
    refused(&server.url(), &["--creds", &forged]);
}
