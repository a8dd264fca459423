//! `kairos pipeline push | history | rollback`: the versions of a pipeline
//! in the `kairos_pipelines` KV bucket, which running engines follow
//! without a restart (see `kairos_nats::pipelines`).

use crate::cli::{PipelineCommand, PipelineNameArgs, PipelinePushArgs, PipelineRollbackArgs};
use crate::nats::{connect_settings, runtime, FIRST_CONNECT};
use kairos_nats::connect::connect;
use kairos_nats::pipelines::{self, StoredPipeline, PIPELINES_BUCKET};
use std::process::ExitCode;

pub fn run(command: &PipelineCommand) -> anyhow::Result<ExitCode> {
    match command {
        PipelineCommand::Push(args) => push(args),
        PipelineCommand::History(args) => history(args),
        PipelineCommand::Rollback(args) => rollback(args),
    }
}

/// Connects and opens the bucket, then runs `work` with it.
fn with_bucket<T>(
    connection: &crate::cli::NatsArgs,
    work: impl AsyncFnOnce(&async_nats::jetstream::kv::Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    runtime()?.block_on(async {
        let client = connect(
            &connect_settings(connection, "kairos-pipeline"),
            FIRST_CONNECT,
        )
        .await?;
        let store = pipelines::bucket(&async_nats::jetstream::new(client)).await?;
        work(&store).await
    })
}

fn push(args: &PipelinePushArgs) -> anyhow::Result<ExitCode> {
    let stored = match StoredPipeline::from_file(&args.file, &args.set, "kairos pipeline push") {
        Ok(stored) => stored,
        Err(problem) => {
            eprintln!("kairos: {}: {problem}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    // Refused here, before anything is stored: the running version stays.
    // The text checked is the text stored (the file is read once).
    let name = match kairos_pipeline::compile(&stored.file, &stored.source, &args.set) {
        Ok(pipeline) => pipeline.name.to_string(),
        Err(diagnostics) => {
            crate::report_diagnostics(&diagnostics);
            eprintln!(
                "kairos: {}: {}; nothing was stored; the running version stays",
                args.file.display(),
                crate::errors_found(&diagnostics)
            );
            return Ok(ExitCode::from(2));
        }
    };
    let (before, revision) = with_bucket(&args.connection, async |store| {
        let before = pipelines::latest(store, &name).await?;
        let revision = pipelines::put(store, &name, &stored).await?;
        Ok((before, revision))
    })?;
    let was = before.map_or_else(
        || "its first".to_string(),
        |before| format!("after revision {}", before.revision),
    );
    println!(
        "pipeline {name}: revision {revision} stored ({was}); running engines switch to it after the events already in the stream"
    );
    Ok(ExitCode::SUCCESS)
}

fn history(args: &PipelineNameArgs) -> anyhow::Result<ExitCode> {
    let revisions = with_bucket(&args.connection, async |store| {
        pipelines::history(store, &args.name).await
    })?;
    if revisions.is_empty() {
        eprintln!(
            "kairos: {PIPELINES_BUCKET} holds no pipeline named {:?}",
            args.name
        );
        return Ok(ExitCode::from(1));
    }
    println!("revision  stored at                       from");
    let newest = revisions.last().map(|newest| newest.revision);
    for revision in &revisions {
        let mut from = format!("{} ({})", revision.pipeline.file, revision.pipeline.note);
        if !revision.pipeline.overrides.is_empty() {
            from.push_str(&format!(
                " --set {}",
                revision.pipeline.overrides.join(" --set ")
            ));
        }
        let mark = if Some(revision.revision) == newest {
            "  <- newest: what engines run (if it compiles)"
        } else {
            ""
        };
        println!(
            "{:>8}  {:<30}  {from}{mark}",
            revision.revision, revision.stored_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rollback(args: &PipelineRollbackArgs) -> anyhow::Result<ExitCode> {
    let outcome = with_bucket(&args.connection, async |store| {
        let revisions = pipelines::history(store, &args.name).await?;
        let known: Vec<u64> = revisions.iter().map(|revision| revision.revision).collect();
        let target = match args.to {
            Some(wanted) => revisions
                .iter()
                .find(|revision| revision.revision == wanted),
            None => revisions.iter().rev().nth(1),
        };
        let Some(target) = target else {
            return Ok(Err(known));
        };
        let again = StoredPipeline {
            note: format!("rollback to revision {}", target.revision),
            ..target.pipeline.clone()
        };
        if let Err(problems) = again.compile(&args.name) {
            anyhow::bail!(
                "revision {} does not compile with this kairos: {}",
                target.revision,
                pipelines::problems_text(&problems)
            );
        }
        let revision = pipelines::put(store, &args.name, &again).await?;
        Ok(Ok((target.revision, revision)))
    })?;
    match outcome {
        Ok((to, revision)) => {
            println!(
                "pipeline {}: revision {revision} stored, the same as revision {to}; running engines switch to it",
                args.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(known) => {
            let wanted = match args.to {
                Some(wanted) => format!("revision {wanted}"),
                None => "an earlier revision".to_string(),
            };
            let known: Vec<String> = known.iter().map(u64::to_string).collect();
            eprintln!(
                "kairos: pipeline {:?} has no {wanted}; accepted: --to one of [{}] (kairos pipeline history lists them)",
                args.name,
                known.join(", ")
            );
            Ok(ExitCode::from(2))
        }
    }
}
