//! `kairos run` and `kairos publish`: the command-line side of `kairos_nats`.

use crate::cli::{CatalogPublishArgs, CollectArgs, NatsArgs, PublishArgs, RunArgs};
use crate::events_file::CallLines;
use anyhow::Context as _;
use kairos_engine::Engine;
use kairos_nats::connect::{connect, ConnectSettings};
use kairos_nats::pipelines::{StoredPipeline, PIPELINES_BUCKET};
use kairos_nats::snapshots::SnapshotStore;
use kairos_nats::streams::{ensure_streams, StreamSettings, EVENTS_STREAM};
use kairos_nats::worker::{self, Health, Resumed, WorkerSettings};
use kairos_nats::{admin, publisher::Publisher};
use std::io::{self, BufReader};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long the first connection may take before `run` or `publish` gives
/// up with a message (reconnections afterwards never give up).
pub const FIRST_CONNECT: Duration = Duration::from_secs(10);

/// Bad lines `publish` prints individually before only counting them.
const REPORTED_BAD_LINES: u64 = 100;

pub fn connect_settings(args: &NatsArgs, name: &str) -> ConnectSettings {
    ConnectSettings {
        url: args.nats.clone(),
        user_password: args.user.clone().zip(args.password.clone()),
        token: args.token.clone(),
        nkey_seed_file: args.nkey.clone(),
        creds_file: args.creds.clone(),
        tls_ca: args.tls_ca.clone(),
        tls_client: args.tls_cert.clone().zip(args.tls_key.clone()),
        name: name.to_string(),
        inbox_prefix: args.inbox_prefix.clone(),
    }
}

/// The engine's reply prefix unless told otherwise (see
/// `ConnectSettings::inbox_prefix`).
const ENGINE_INBOX: &str = "_INBOX_engine";

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match crate::load_pipeline(&args.pipeline, &args.set) {
        Ok(pipeline) => pipeline,
        Err(code) => return Ok(code),
    };
    if args.duplicate_window.millis() <= args.snapshot_every.millis() {
        eprintln!(
            "kairos: --duplicate-window {} must be longer than --snapshot-every {}: actions republished after a crash would be stored twice; accepted: a window longer than the interval",
            args.duplicate_window, args.snapshot_every
        );
        return Ok(ExitCode::from(2));
    }
    init_logging(args.log_json);
    let streams = StreamSettings {
        events_max_age: span_duration(args.events_max_age),
        events_max_bytes: match args.events_max_bytes {
            0 => -1,
            bytes => i64::try_from(bytes).unwrap_or(i64::MAX),
        },
        actions_max_age: span_duration(args.actions_max_age),
        dlq_max_age: span_duration(args.dlq_max_age),
        catalog_max_age: StreamSettings::default().catalog_max_age,
        replicas: usize::from(args.replicas),
        duplicate_window: span_duration(args.duplicate_window),
    };
    let settings = WorkerSettings {
        snapshot_every: span_duration(args.snapshot_every),
        max_ack_pending: i64::from(args.max_ack_pending),
        max_publishes_in_flight: args.max_in_flight as usize,
        max_event_bytes: args.max_event_bytes as usize,
    };
    // Held until the run ends (and released by the OS however it ends).
    let _lock = match crate::data_dir::lock(&args.data_dir, "kairos run")? {
        Ok(lock) => lock,
        Err(in_use) => {
            eprintln!("kairos: --data-dir: {in_use}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = runtime()?;
    runtime.block_on(async {
        // Signals are caught from the first moment: one during start-up
        // stops it cleanly too (exit 0), instead of killing the process.
        let mut stopping = stop_on_signals()?;
        let start = start(args, pipeline, &streams);
        let started = tokio::select! {
            started = start => started?,
            _ = stopping.changed() => {
                tracing::info!("stopped during start-up");
                return anyhow::Ok(());
            }
        };
        let Started {
            client,
            resumed,
            store,
            items,
            listener,
            metrics,
        } = started;
        let health = Arc::new(Health::default());
        if let Some(listener) = listener {
            let (metrics, health, client) = (metrics, Arc::clone(&health), client.clone());
            tokio::spawn(async move {
                if let Err(error) = admin::serve(listener, metrics, health, client).await {
                    tracing::error!(error = %format!("{error:#}"), "the admin server stopped");
                }
            });
        }
        worker::run(client, resumed, store, settings, items, health, stopping).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What start-up prepares for the worker.
struct Started {
    client: async_nats::Client,
    resumed: Resumed,
    store: SnapshotStore,
    items: Arc<kairos_recommend::ItemIndex>,
    listener: Option<tokio::net::TcpListener>,
    metrics: admin::PrometheusHandle,
}

/// Connects, creates the streams, and restores the engine from the latest
/// snapshot (or starts it empty, or rebuilds it, as the flags say).
async fn start(
    args: &RunArgs,
    pipeline: kairos_engine::config::Pipeline,
    streams: &StreamSettings,
) -> anyhow::Result<Started> {
    let metrics = admin::install_metrics()?;
    let listener = match args.admin {
        Some(address) => Some(admin::bind(address).await?),
        None => None,
    };
    let mut connection = connect_settings(&args.connection, "kairos-run");
    connection
        .inbox_prefix
        .get_or_insert_with(|| ENGINE_INBOX.to_string());
    let client = connect(&connection, FIRST_CONNECT).await?;
    let js = async_nats::jetstream::new(client.clone());
    ensure_streams(&js, streams).await?;
    let pipelines = kairos_nats::pipelines::bucket(&js).await?;
    let (pipeline, pipeline_revision, pipeline_stored) =
        running_pipeline(&pipelines, args, pipeline).await?;
    let store = SnapshotStore::open(&args.data_dir)?;
    let items_dir = crate::catalog::index_dir(&args.data_dir);
    let items = kairos_recommend::ItemIndex::open(&items_dir)
        .with_context(|| format!("opening the item index in {}", items_dir.display()))?;
    let events_end = || async {
        let mut stream = js.get_stream(EVENTS_STREAM).await?;
        anyhow::Ok(stream.info().await?.state.last_sequence)
    };
    // The store is not cleared for a reset or rebuild: the first snapshot
    // of this run replaces the record in one transaction, so a run stopped
    // before it leaves the old one, never an empty store (which would replay
    // the whole stream and publish it again).
    let previous = store.latest()?;
    let resumed = if args.reset_state || args.rebuild_state {
        let last = events_end().await?;
        // Where the run before got to: its events' actions went out. Events
        // after that (published while it was down) are handled now.
        let covered = previous
            .as_ref()
            .map_or(last, |old| old.meta.covers_sequence.min(last));
        let read_back = previous.as_ref().map(|old| old.meta);
        if args.rebuild_state {
            // Replays what the stream still holds into the new state,
            // publishing nothing for what the run before covered.
            Resumed {
                engine: Engine::new(pipeline),
                next_sequence: 1,
                snapshot: None,
                read_back,
                mute_through: covered,
                pipeline_revision,
                pipeline_stored,
            }
        } else {
            Resumed {
                engine: Engine::new(pipeline),
                next_sequence: covered + 1,
                snapshot: None,
                read_back,
                mute_through: 0,
                pipeline_revision,
                pipeline_stored,
            }
        }
    } else {
        match previous {
            Some(snapshot) => {
                let started = std::time::Instant::now();
                // Restored under the pipeline it was taken with (saved
                // beside it); a newer one is switched to by the stream's
                // markers or, once the replay is done, by the worker.
                let (pipeline, pipeline_revision, pipeline_stored) =
                    match snapshot_pipeline(&snapshot, &pipeline.name, &args.data_dir)? {
                        Some((taken_with, stored)) => {
                            (taken_with, snapshot.meta.pipeline_revision, stored)
                        }
                        None => (pipeline, pipeline_revision, pipeline_stored),
                    };
                let engine = Engine::restore(pipeline, &snapshot.engine).map_err(|error| {
                    anyhow::anyhow!(
                        "the snapshot in {} cannot be used: {error}; accepted: the pipeline and kairos build it was taken with, or --rebuild-state (state rebuilt from the events the stream still holds, nothing published for those the last run handled) or --reset-state (empty state, from the first event the last run did not handle)",
                        args.data_dir.display()
                    )
                })?;
                tracing::info!(
                    covers_sequence = snapshot.meta.covers_sequence,
                    bytes = snapshot.engine.len(),
                    took = ?started.elapsed(),
                    customers = engine.customer_count(),
                    "snapshot loaded"
                );
                Resumed {
                    engine,
                    next_sequence: snapshot.meta.covers_sequence + 1,
                    mute_through: snapshot.meta.mute_through,
                    snapshot: Some(snapshot.meta),
                    read_back: Some(snapshot.meta),
                    pipeline_revision,
                    pipeline_stored,
                }
            }
            None => Resumed {
                engine: Engine::new(pipeline),
                next_sequence: 1,
                snapshot: None,
                read_back: None,
                mute_through: 0,
                pipeline_revision,
                pipeline_stored,
            },
        }
    };
    Ok(Started {
        client,
        resumed,
        store,
        items: Arc::new(items),
        listener,
        metrics,
    })
}

/// The pipeline to run, its revision in `kairos_pipelines` and its
/// content: the newest stored revision of the file's pipeline name that
/// compiles; the file itself (stored as the first revision) when there is
/// none. A file that differs from the stored revision is not used: changes
/// go through `kairos pipeline push`, which every running engine follows.
async fn running_pipeline(
    pipelines: &async_nats::jetstream::kv::Store,
    args: &RunArgs,
    from_file: kairos_engine::config::Pipeline,
) -> anyhow::Result<(kairos_engine::config::Pipeline, u64, StoredPipeline)> {
    let name = from_file.name.to_string();
    let file = StoredPipeline::from_file(&args.pipeline, &args.set, "kairos run (first revision)")
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", args.pipeline.display()))?;
    let mut revisions = kairos_nats::pipelines::history(pipelines, &name).await?;
    if revisions.is_empty() {
        // Two engines starting at once: one stores it, the other finds it.
        match pipelines
            .create(&name, serde_json::to_vec(&file)?.into())
            .await
        {
            Ok(revision) => {
                tracing::info!(pipeline = %name, revision, "pipeline stored in {PIPELINES_BUCKET} as its first revision");
                return Ok((from_file, revision, file));
            }
            Err(_) => revisions = kairos_nats::pipelines::history(pipelines, &name).await?,
        }
    }
    let newest = revisions.last().map(|newest| newest.revision);
    // The newest that compiles: one stored by other means that does not is
    // refused by running engines, and must not stop a restart either.
    for stored in revisions.into_iter().rev() {
        match stored.pipeline.compile(&name) {
            Ok(pipeline) => {
                if Some(stored.revision) != newest {
                    tracing::error!(pipeline = %name, revision = stored.revision, "the newest revisions in {PIPELINES_BUCKET} do not compile; running the newest that does");
                }
                if !stored.pipeline.same_content(&file) {
                    tracing::warn!(
                        pipeline = %name,
                        revision = stored.revision,
                        file = %args.pipeline.display(),
                        "running the pipeline's stored revision in {PIPELINES_BUCKET}, which differs from the file: to run the file, `kairos pipeline push` it"
                    );
                }
                return Ok((pipeline, stored.revision, stored.pipeline));
            }
            Err(problems) => tracing::error!(
                pipeline = %name,
                revision = stored.revision,
                problems = %kairos_nats::pipelines::problems_text(&problems),
                "a stored revision does not compile"
            ),
        }
    }
    anyhow::bail!("no revision of pipeline {name:?} in {PIPELINES_BUCKET} compiles; accepted: `kairos pipeline push` a valid file")
}

/// The pipeline a snapshot was taken under, as saved beside it (`None`
/// for a record from before pipelines were saved with snapshots).
fn snapshot_pipeline(
    snapshot: &kairos_nats::snapshots::Snapshot,
    name: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<(kairos_engine::config::Pipeline, StoredPipeline)>> {
    let Some(bytes) = &snapshot.pipeline else {
        return Ok(None);
    };
    let stored: StoredPipeline = serde_json::from_slice(bytes).map_err(|error| {
        anyhow::anyhow!("the pipeline saved with the snapshot in {} cannot be read: {error}; accepted: --rebuild-state or --reset-state", data_dir.display())
    })?;
    let pipeline = stored.compile(name).map_err(|problems| {
        anyhow::anyhow!(
            "the pipeline the snapshot in {} was taken under does not compile with this kairos ({}); accepted: --rebuild-state or --reset-state",
            data_dir.display(),
            kairos_nats::pipelines::problems_text(&problems)
        )
    })?;
    Ok(Some((pipeline, stored)))
}

/// Turns true on SIGTERM or SIGINT.
fn stop_on_signals() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("catching SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });
    Ok(stopping)
}

fn span_duration(span: kairos_model::Span) -> Duration {
    Duration::from_millis(span.millis().max(0) as u64)
}

pub fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let input = match crate::events_file::open_input(&args.events) {
        Ok((input, _)) => BufReader::with_capacity(1 << 16, input),
        Err(error) => {
            eprintln!("kairos: {error:#}; accepted: a file of Segment calls as JSON lines, a .gz of one, or - for stdin");
            return Ok(ExitCode::from(2));
        }
    };
    init_logging(false);
    let runtime = runtime()?;
    runtime.block_on(async {
        let client = connect(
            &connect_settings(&args.connection, "kairos-publish"),
            FIRST_CONNECT,
        )
        .await?;
        let mut publisher = Publisher::new(client.clone(), args.partitions, args.window as usize);
        let mut skipped = 0u64;
        let mut lines = CallLines::new(input);
        while let Some(line) = lines
            .next_line()
            .with_context(|| format!("reading {}", args.events.display()))?
        {
            let published = match line.call {
                Ok([]) => continue,
                Ok(call) => publisher.publish(call).await?,
                Err(size) => Err(kairos_model::InvalidEvent::TooLarge {
                    size,
                    limit: kairos_model::Event::MAX_BYTES,
                }),
            };
            if let Err(invalid) = published {
                skipped += 1;
                if skipped <= REPORTED_BAD_LINES {
                    eprintln!(
                        "{}:{}: skipped ({}): {invalid}",
                        args.events.display(),
                        line.number,
                        invalid.reason()
                    );
                }
            }
        }
        let published = publisher.flush().await?;
        client.flush().await?;
        eprintln!("published {published} events, skipped {skipped} lines");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `kairos catalog publish`: every item of the file, checked, then sent as
/// an upsert to `kairos.catalog.upsert`. No `Nats-Msg-Id`: an upsert
/// replaces, so one stored twice does no harm, while an id made of the
/// item would drop a deliberate re-publish (undoing a change) as a
/// duplicate.
pub fn publish_catalog(args: &CatalogPublishArgs) -> anyhow::Result<ExitCode> {
    let items = match kairos_recommend::read_catalog(&args.file) {
        Ok(items) => items,
        Err(error) => {
            eprintln!("{error}");
            eprintln!("kairos: nothing was published; accepted: one item per line, as `kairos catalog load` reads them");
            return Ok(ExitCode::from(2));
        }
    };
    init_logging(false);
    let runtime = runtime()?;
    runtime.block_on(async {
        let client = connect(
            &connect_settings(&args.connection, "kairos-catalog"),
            FIRST_CONNECT,
        )
        .await?;
        let js = async_nats::jetstream::new(client.clone());
        let subject = format!("{}.upsert", kairos_nats::catalog::CATALOG_PREFIX);
        let mut acks = futures::stream::FuturesOrdered::new();
        for item in &items {
            let body = serde_json::to_vec(item)?;
            let ack = js.publish(subject.clone(), body.into()).await.context(
                "publishing to kairos.catalog.upsert (a `kairos run` creates its stream)",
            )?;
            acks.push_back(std::future::IntoFuture::into_future(ack));
            if acks.len() >= 256 {
                if let Some(ack) = futures::StreamExt::next(&mut acks).await {
                    ack.context(
                        "kairos.catalog.upsert was not stored (a `kairos run` creates its stream)",
                    )?;
                }
            }
        }
        while let Some(ack) = futures::StreamExt::next(&mut acks).await {
            ack.context(
                "kairos.catalog.upsert was not stored (a `kairos run` creates its stream)",
            )?;
        }
        eprintln!("published {} items to {subject}", items.len());
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn collect(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let keys = match kairos_collector::keys::Keys::load(&args.keys) {
        Ok(keys) => keys,
        Err(problem) => {
            eprintln!("kairos: --keys {problem}");
            return Ok(ExitCode::from(2));
        }
    };
    init_logging(args.log_json);
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut stopping = stop_on_signals()?;
        let metrics = admin::install_metrics()?;
        let admin_listener = match args.admin {
            Some(address) => Some(admin::bind(address).await?),
            None => None,
        };
        // Connected first: once the port is open, requests are served.
        let client = connect(
            &connect_settings(&args.connection, "kairos-collect"),
            FIRST_CONNECT,
        )
        .await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot listen on {} for --listen: {error}", args.listen)
            })?;
        if let Some(admin_listener) = admin_listener {
            // Ready whenever connected: the collector has no state to load.
            let health = Arc::new(Health::default());
            health
                .ready
                .store(true, std::sync::atomic::Ordering::Release);
            let client = client.clone();
            tokio::spawn(async move {
                if let Err(error) = admin::serve(admin_listener, metrics, health, client).await {
                    tracing::error!(error = %format!("{error:#}"), "the admin server stopped");
                }
            });
        }
        let collector = Arc::new(kairos_collector::server::Collector {
            js: async_nats::jetstream::new(client),
            keys,
            partitions: args.partitions,
        });
        tracing::info!(listen = %args.listen, "collecting");
        axum::serve(listener, kairos_collector::server::router(collector))
            .with_graceful_shutdown(async move {
                let _ = stopping.changed().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
