//! Questions put to the running engine over NATS request/reply (see
//! `kairos_nats::requests`): what `kairos report`, `inspect` and `forget`
//! share.

use crate::cli::NatsArgs;
use crate::nats::{connect_settings, runtime, FIRST_CONNECT};
use kairos_model::Span;
use kairos_nats::connect::connect;
use serde_json::Value;

/// What came of a request.
pub enum Asked {
    /// The engine's answer.
    Answered(Value),
    /// The engine answered with an error (said on stderr).
    Refused,
    /// No engine answered in time (said on stderr).
    Unanswered,
}

/// Sends `body` to `subject` and waits up to `timeout` for the engine's
/// answer; what went wrong is said on stderr.
pub fn ask(
    connection: &NatsArgs,
    client_name: &str,
    subject: &'static str,
    body: String,
    timeout: Span,
) -> anyhow::Result<Asked> {
    let runtime = runtime()?;
    let payload = runtime.block_on(async {
        let client = connect(&connect_settings(connection, client_name), FIRST_CONNECT).await?;
        let asked = client.request(subject, body.into());
        let timeout = std::time::Duration::from_millis(timeout.millis().max(1) as u64);
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(message)) => anyhow::Ok(Some(message.payload)),
            Ok(Err(error)) => {
                eprintln!("kairos: no running `kairos run` answered on {subject}: {error}");
                Ok(None)
            }
            Err(_) => {
                eprintln!(
                    "kairos: no running `kairos run` answered on {subject} within {timeout:?}"
                );
                Ok(None)
            }
        }
    })?;
    let Some(payload) = payload else {
        return Ok(Asked::Unanswered);
    };
    let answer: Value = serde_json::from_slice(&payload)
        .map_err(|error| anyhow::anyhow!("the engine's answer is not JSON: {error}"))?;
    if let Some(error) = answer["error"].as_str() {
        eprintln!("kairos: the engine refused: {error}");
        return Ok(Asked::Refused);
    }
    Ok(Asked::Answered(answer))
}
