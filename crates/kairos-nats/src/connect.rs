//! Connecting to NATS: where, as whom, and over what.

use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the server and prove who we are. At most one of
/// user/password, token, NKey seed file and credentials file.
#[derive(Clone, Debug, Default)]
pub struct ConnectSettings {
    /// `nats://host:port`, or several comma-separated (a cluster).
    pub url: String,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// A token.
    pub token: Option<String>,
    /// A file holding an NKey seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (operator/JWT mode).
    pub creds_file: Option<PathBuf>,
    /// CA certificate(s) to trust (PEM); implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// The connection's name, as the server's monitoring shows it.
    pub name: String,
    /// The prefix of this client's reply subjects (`_INBOX` when `None`).
    /// Pulled events arrive on replies: a server that lets publishers
    /// subscribe to `_INBOX.>` would let them read those, so the engine
    /// uses a prefix of its own that only it may subscribe to
    /// (`deploy/nats/accounts.conf`).
    pub inbox_prefix: Option<String>,
}

/// Connects. The client reconnects by itself for as long as the process
/// runs (a restarted server is picked up again); the first connection must
/// succeed within `first_attempt`, so that a wrong URL fails fast with a
/// clear message instead of hanging.
pub async fn connect(
    settings: &ConnectSettings,
    first_attempt: Duration,
) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(&settings.name)
        .max_reconnects(None)
        .connection_timeout(first_attempt)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                other => tracing::info!(event = %other, "NATS"),
            }
        });
    if let Some((user, password)) = &settings.user_password {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(prefix) = &settings.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    if let Some(path) = &settings.nkey_seed_file {
        let seed = std::fs::read_to_string(path)
            .with_context(|| format!("reading the NKey seed file {}", path.display()))?;
        options = options.nkey(seed.trim().to_string());
    }
    if let Some(path) = &settings.creds_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading the credentials file {}", path.display()))?;
    }
    if let Some(ca) = &settings.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &settings.tls_client {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    // Several servers (a cluster) come comma-separated; the client tries
    // them in turn and reconnects to whichever answers.
    let servers: Vec<&str> = settings
        .url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    let attempt = tokio::time::timeout(first_attempt, options.connect(servers));
    match attempt.await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(anyhow::anyhow!(
            "cannot connect to NATS at {}: {error}",
            settings.url
        )),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to NATS at {}: no answer within {:?}",
            settings.url,
            first_attempt
        )),
    }
}
