//! `kairos backtest`: replay a file of Segment events through a pipeline with
//! the production engine, offline. At the end of input the clock runs to the
//! end of time (every pending timer fires) unless `--until` stops it.

use crate::cli::BacktestArgs;
use crate::events_file;
use crate::summary;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kairos_engine::decision::Decision;
use kairos_engine::Engine;
use kairos_model::{Span, Timestamp};
use kairos_recommend::{read_catalog, CatalogChange, ItemIndex};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub fn run(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match crate::load_pipeline(&args.pipeline, &args.set) {
        Ok(pipeline) => pipeline,
        Err(code) => return Ok(code),
    };
    if let Err(problem) = check_paths(args) {
        eprintln!("kairos: {problem}");
        return Ok(ExitCode::from(2));
    }
    let reader = match events_file::open(&args.events) {
        Ok(reader) => reader,
        Err(error) => {
            eprintln!("kairos: --events: {error:#}; accepted: a file of Segment calls as JSON lines, a .gz of one, or - for stdin");
            return Ok(ExitCode::from(2));
        }
    };
    // Outputs are created once the input is open, so that a mistake there
    // leaves an existing output file as it was, and before the run, so that
    // a path that cannot be written fails now rather than at the end.
    let to_stdout = args
        .out
        .as_deref()
        .is_some_and(|path| path.as_os_str() == "-");
    let files = create_outputs([
        ("--summary-json", args.summary_json.as_deref()),
        ("--rejected", args.rejected.as_deref()),
        ("--out", args.out.as_deref().filter(|_| !to_stdout)),
    ]);
    let [summary_file, rejected_file, out_file] = match files {
        Ok(files) => files,
        Err(code) => return Ok(code),
    };
    // Unbuffered: the writing thread renders a whole batch into one buffer
    // and writes it with one call, so a `BufWriter` would only copy every
    // byte once more.
    let output: Option<Box<dyn Write + Send>> = if to_stdout {
        Some(Box::new(io::stdout()))
    } else {
        out_file.map(|file| Box::new(file) as Box<dyn Write + Send>)
    };
    let outputs = Outputs {
        summary: summary_file,
        rejected: rejected_file.map(io::BufWriter::new),
        actions: output,
    };
    let catalog = match &args.catalog {
        Some(path) => match Catalog::load(path) {
            Ok(catalog) => Some(catalog),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let replayed = replay(args, pipeline, reader, outputs, catalog);
    if replayed.is_err() {
        // A run that failed part-way (an output that stopped being
        // writable) writes no summary, and leaves no empty summary file
        // that would read as the summary of a run of nothing.
        if let Some(path) = args.summary_json.as_deref().filter(|path| !is_device(path)) {
            let _ = std::fs::remove_file(path);
        }
    }
    replayed
}

/// `--catalog`: its items in an item index of their own, in a temporary
/// directory removed at the end, built the way `kairos run` builds its own.
struct Catalog {
    index: Arc<ItemIndex>,
    _dir: tempfile::TempDir,
}

impl Catalog {
    fn load(path: &Path) -> Result<Catalog, ExitCode> {
        let fail = |problem: String| {
            eprintln!("kairos: --catalog {problem}");
            ExitCode::from(2)
        };
        let items = read_catalog(path).map_err(|error| {
            fail(format!(
                "{error}\naccepted: one item per line, as `kairos catalog load` reads them"
            ))
        })?;
        let dir =
            tempfile::tempdir().map_err(|error| fail(format!("a temporary directory: {error}")))?;
        let index = ItemIndex::open(dir.path()).map_err(|error| fail(error.to_string()))?;
        let applied = index
            .apply(items.into_iter().map(CatalogChange::Upsert))
            .map_err(|error| fail(error.to_string()))?;
        if let Some(refusal) = applied.refused.first() {
            return Err(fail(format!(
                "{}: {refusal} ({} items refused)",
                path.display(),
                applied.refused.len()
            )));
        }
        Ok(Catalog {
            index: Arc::new(index),
            _dir: dir,
        })
    }
}

/// The files a backtest writes, each opened by [`create_outputs`].
struct Outputs {
    summary: Option<File>,
    rejected: Option<io::BufWriter<File>>,
    actions: Option<Box<dyn Write + Send>>,
}

/// The replay itself, once its input and outputs are open.
fn replay(
    args: &BacktestArgs,
    pipeline: kairos_engine::config::Pipeline,
    reader: events_file::EventsReader,
    outputs: Outputs,
    catalog: Option<Catalog>,
) -> anyhow::Result<ExitCode> {
    let Outputs {
        summary: summary_file,
        rejected: mut rejected_file,
        actions: output,
    } = outputs;
    let items = catalog.as_ref().map(|catalog| Arc::clone(&catalog.index));
    let mut sink = ActionSink::open(output, &pipeline.name, args.all_decisions, items.clone())?;
    let progress = progress_bar(args, reader.total_bytes);
    let events_name = args.events.display().to_string();
    let started = Instant::now();
    let mut engine = Engine::new(pipeline);
    engine.hand_back_events();
    if let Some(items) = &items {
        *engine.item_vectors_mut() = kairos_recommend::item_vectors(items)?;
    }
    let (mut events, mut beyond_until) = (0u64, 0u64);
    let mut skipped = events_file::SkippedLines::new(events_name.clone());
    let until = args.until.unwrap_or(Timestamp::MAX);
    for batch in reader.batches.iter() {
        for line in batch.lines {
            match line.parsed {
                Ok(event) if event.time >= until => beyond_until += 1,
                Ok(event) => {
                    events += 1;
                    engine.handle_event(event);
                    sink.drain(&mut engine)?;
                }
                Err(reason) => {
                    if let Some(file) = rejected_file.as_mut() {
                        let entry = serde_json::json!({
                            "line": line.number,
                            "reason": reason.reason(),
                            "message": reason.to_string(),
                        });
                        writeln!(file, "{entry}").context("cannot write --rejected")?;
                    }
                    if let Some(message) = skipped.skip(line.number, &reason) {
                        progress.suspend(|| eprintln!("{message}"));
                    }
                }
            }
        }
        progress.inc(batch.bytes);
        // Freed on the parsing thread; if it has stopped, here.
        let _ = reader.spent.send(engine.take_spent_events());
    }
    drop(reader.spent);
    // A read error ends the input where it happened; the run still finishes
    // with every event read before it, and the exit code says it was cut short.
    let read_error = match reader.reader.join() {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(_) => anyhow::bail!("the parsing thread panicked"),
    };
    run_out_clock(&mut engine, until, |engine| sink.drain(engine))?;
    sink.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    if let Some(file) = rejected_file.as_mut() {
        file.flush().context("cannot write --rejected")?;
    }
    let rejected = skipped.count;
    let all = match &args.rejected {
        Some(path) => format!("; every one is in {}", path.display()),
        None => "; --rejected FILE keeps every one".to_string(),
    };
    if let Some(total) = skipped.total(&all) {
        eprintln!("{total}");
    }
    if beyond_until > 0 {
        eprintln!("{events_name}: {beyond_until} events at or after --until not replayed");
    }
    eprint!(
        "{}",
        summary::to_table(engine.stats(), events, rejected, seconds)
    );
    if let (Some(path), Some(mut file)) = (&args.summary_json, summary_file) {
        let json = summary::to_json(engine.stats(), events, rejected, seconds);
        writeln!(file, "{json:#}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    let code = match read_error {
        Some(error) => {
            eprintln!(
                "kairos: cannot read {events_name} past {error}; the decisions and summary above cover everything before it"
            );
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    };
    // Millions of customers take a while to free, and the process is about
    // to exit anyway: leave that to the OS.
    std::mem::forget(engine);
    Ok(code)
}

/// Ends the input and runs the clock to `until` (the end of time without
/// `--until`) deadline by deadline, handing each step's decisions to
/// `drain` as they come, so that the decisions of the end of time never
/// pile up in memory all at once. The backtest and every point of a sweep
/// end this way.
pub(crate) fn run_out_clock<E>(
    engine: &mut Engine,
    until: Timestamp,
    mut drain: impl FnMut(&mut Engine) -> Result<(), E>,
) -> Result<(), E> {
    engine.close_input();
    while let Some(due) = engine.poll_timeout().filter(|due| *due < until) {
        engine.advance_to(due + Span(1));
        drain(engine)?;
    }
    engine.advance_to(until);
    drain(engine)
}

/// Refuses output paths that would destroy an input or each other:
/// `--out`, `--summary-json` or `--rejected` naming the events or pipeline
/// file (by any name: links and symlinks count) would empty it before it is
/// read, and two outputs naming one file would write over each other.
/// Devices (`/dev/null`) are never a clash; `-` (stdout) is for `--out` only.
fn check_paths(args: &BacktestArgs) -> Result<(), String> {
    let files = [
        ("--summary-json", args.summary_json.as_deref()),
        ("--rejected", args.rejected.as_deref()),
    ];
    for (flag, path) in files {
        if path.is_some_and(|path| path.as_os_str() == "-") {
            return Err(format!(
                "{flag} -: stdout is for --out; accepted: a file path"
            ));
        }
    }
    let outputs: Vec<(&str, &Path)> = [("--out", args.out.as_deref())]
        .into_iter()
        .chain(files)
        .filter_map(|(flag, path)| Some((flag, path?)))
        .filter(|(_, path)| path.as_os_str() != "-" && !is_device(path))
        .collect();
    let inputs = [("--events", &args.events), ("--pipeline", &args.pipeline)];
    for (position, (flag, path)) in outputs.iter().enumerate() {
        for (input_flag, input) in inputs {
            if same_file::is_same_file(path, input).unwrap_or(false) {
                return Err(format!(
                    "{flag} {} is also the {input_flag} file, which writing would destroy; accepted: a different path",
                    path.display()
                ));
            }
        }
        for (other_flag, other) in &outputs[..position] {
            if same_target(path, other) {
                return Err(format!(
                    "{flag} {} is also the {other_flag} file; accepted: a different path",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Whether `path` exists and is not a regular file or directory (a device,
/// a pipe): writing to it empties nothing.
fn is_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_file() && !metadata.is_dir())
}

/// Whether two output paths would write the same file: the same file if
/// both exist, the same place in a directory if neither does.
fn same_target(one: &Path, other: &Path) -> bool {
    match (one.exists(), other.exists()) {
        (true, true) => same_file::is_same_file(one, other).unwrap_or(false),
        (false, false) => {
            let place = |path: &Path| {
                let directory = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                Some(
                    std::fs::canonicalize(directory)
                        .ok()?
                        .join(path.file_name()?),
                )
            };
            place(one).is_some_and(|place_one| Some(place_one) == place(other))
        }
        _ => false,
    }
}

/// Creates the output files the flags name, all or none: a path that
/// cannot be created is a usage error (exit 2), reported before the run,
/// and leaves every output as it was. Files are opened without truncating
/// them, truncated only once all are open, and those this run created are
/// removed again if one fails. (Truncating an opened file failing partway
/// through would leave the existing files truncated before it emptied: a
/// failure `set_len` gives only on a file it just opened for writing.)
fn create_outputs<const N: usize>(
    outputs: [(&str, Option<&Path>); N],
) -> Result<[Option<File>; N], ExitCode> {
    let mut files: [Option<File>; N] = std::array::from_fn(|_| None);
    let mut created = [false; N];
    let fail = |flag: &str, path: &Path, error: io::Error, created: &[bool; N]| {
        eprintln!(
            "kairos: {flag} {}: {error}; accepted: a path where a file can be created",
            path.display()
        );
        for ((_, path), created) in outputs.iter().zip(created) {
            if let (Some(path), true) = (path, created) {
                let _ = std::fs::remove_file(path);
            }
        }
        ExitCode::from(2)
    };
    for (index, (flag, path)) in outputs.iter().enumerate() {
        let Some(path) = path else {
            continue;
        };
        let existed = std::fs::symlink_metadata(path).is_ok();
        match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(file) => (files[index], created[index]) = (Some(file), !existed),
            Err(error) => return Err(fail(flag, path, error, &created)),
        }
    }
    for ((flag, path), file) in outputs.iter().zip(&files) {
        let (Some(path), Some(file)) = (path, file) else {
            continue;
        };
        // A device (`/dev/null`) or a pipe has nothing to truncate.
        if file.metadata().is_ok_and(|metadata| metadata.is_file()) {
            if let Err(error) = file.set_len(0) {
                return Err(fail(flag, path, error, &created));
            }
        }
    }
    Ok(files)
}

/// Where decisions go: the `--out` file (sent actions, or every decision
/// with `--all-decisions`), or nowhere. Rendering and writing happen on a
/// thread of their own, in batches, so the engine thread only hands
/// decisions over; the bounded queue makes a slow disk slow the replay down
/// instead of filling memory.
struct ActionSink {
    batch: Vec<Decision>,
    queue: Option<SyncSender<Vec<Decision>>>,
    writer: Option<JoinHandle<anyhow::Result<()>>>,
}

impl ActionSink {
    const BATCH: usize = 1024;
    const QUEUED_BATCHES: usize = 16;

    fn open(
        output: Option<Box<dyn Write + Send>>,
        pipeline: &str,
        all_decisions: bool,
        items: Option<Arc<ItemIndex>>,
    ) -> anyhow::Result<ActionSink> {
        let (queue, batches) = mpsc::sync_channel::<Vec<Decision>>(Self::QUEUED_BATCHES);
        let pipeline = pipeline.to_string();
        let writer = thread::Builder::new()
            .name("kairos-write".into())
            .spawn(move || write_actions(batches, output, &pipeline, all_decisions, items))
            .context("cannot start the writing thread")?;
        Ok(ActionSink {
            batch: Vec::with_capacity(Self::BATCH),
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Takes every decision the engine has ready.
    fn drain(&mut self, engine: &mut Engine) -> anyhow::Result<()> {
        while let Some(decision) = engine.poll_decision() {
            self.batch.push(decision);
            if self.batch.len() == Self::BATCH {
                self.send()?;
            }
        }
        Ok(())
    }

    fn send(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
        let delivered = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(batch).is_ok());
        if delivered {
            Ok(())
        } else {
            // The writer stopped early: its error says why.
            self.finish()
        }
    }

    /// Writes what is left and waits for the writer.
    fn finish(&mut self) -> anyhow::Result<()> {
        if !self.batch.is_empty() {
            if let Some(queue) = &self.queue {
                // A closed queue means the writer failed; join reports it.
                let _ = queue.send(std::mem::take(&mut self.batch));
            }
        }
        self.queue = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the writing thread panicked"),
            None => anyhow::bail!("cannot write actions"),
        }
    }
}

impl Drop for ActionSink {
    /// A run that stops early (a read error after the last good line) still
    /// writes every decision made before it.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.finish();
        }
    }
}

/// The writing thread: renders and writes each batch, in order.
fn write_actions(
    batches: Receiver<Vec<Decision>>,
    mut output: Option<Box<dyn Write + Send>>,
    pipeline: &str,
    all_decisions: bool,
    items: Option<Arc<ItemIndex>>,
) -> anyhow::Result<()> {
    // A batch is rendered into one buffer and written with one call: the
    // serialiser's many small writes then go to a `Vec`, not through the
    // boxed writer one by one.
    let mut rendered = Vec::new();
    for batch in batches {
        let Some(output) = output.as_mut() else {
            continue;
        };
        rendered.clear();
        for mut decision in batch {
            // Answered here, off the engine's thread, as `kairos run`
            // answers them on the way out.
            if let (Some(request), Some(items)) = (decision.recommend.take(), &items) {
                kairos_recommend::enrich(items, &request, &mut decision.payload);
            }
            if decision.is_sent() || all_decisions {
                decision
                    .into_action_data()
                    .write_action_json(pipeline, &mut rendered);
                rendered.push(b'\n');
            }
        }
        output
            .write_all(&rendered)
            .context("cannot write actions")?;
    }
    match output.as_mut() {
        Some(output) => output.flush().context("cannot write actions"),
        None => Ok(()),
    }
}

fn progress_bar(args: &BacktestArgs, total_bytes: Option<u64>) -> ProgressBar {
    if args.quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total_bytes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    bar
}
