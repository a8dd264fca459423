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
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Bad lines printed individually before only counting them.
const REPORTED_BAD_LINES: u64 = 100;

pub fn run(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match kairos_pipeline::load(&args.pipeline, &args.set) {
        Ok(pipeline) => pipeline,
        Err(diagnostics) => {
            crate::report_diagnostics(&diagnostics);
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(problem) = check_paths(args) {
        eprintln!("kairos: {problem}");
        return Ok(ExitCode::from(2));
    }
    // Opened now, so that a path that cannot be written fails before the
    // run rather than after it.
    let summary_file = match &args.summary_json {
        Some(path) => match File::create(path) {
            Ok(file) => Some(file),
            Err(error) => {
                eprintln!(
                    "kairos: --summary-json {}: {error}; accepted: a path where a file can be created",
                    path.display()
                );
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let mut rejected_file = match &args.rejected {
        Some(path) => match File::create(path) {
            Ok(file) => Some(io::BufWriter::new(file)),
            Err(error) => {
                eprintln!(
                    "kairos: --rejected {}: {error}; accepted: a path where a file can be created",
                    path.display()
                );
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let mut sink = match ActionSink::open(args, &pipeline.name) {
        Ok(sink) => sink,
        Err(error) => {
            eprintln!("kairos: --out: {error:#}; accepted: a path where a file can be created, or - for stdout");
            return Ok(ExitCode::from(2));
        }
    };
    let reader = match events_file::open(&args.events) {
        Ok(reader) => reader,
        Err(error) => {
            eprintln!("kairos: --events: {error:#}; accepted: a file of Segment calls as JSON lines, a .gz of one, or - for stdin");
            return Ok(ExitCode::from(2));
        }
    };
    let progress = progress_bar(args, reader.total_bytes);
    let events_name = args.events.display().to_string();
    let started = Instant::now();
    let mut engine = Engine::new(pipeline);
    engine.hand_back_events();
    let (mut events, mut rejected, mut beyond_until) = (0u64, 0u64, 0u64);
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
                    rejected += 1;
                    if let Some(file) = rejected_file.as_mut() {
                        let entry = serde_json::json!({
                            "line": line.number,
                            "reason": reason.reason(),
                            "message": reason.to_string(),
                        });
                        writeln!(file, "{entry}").context("cannot write --rejected")?;
                    }
                    if rejected <= REPORTED_BAD_LINES {
                        progress.suspend(|| {
                            eprintln!("{events_name}:{}: skipped: {reason}", line.number)
                        });
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
    // Run the clock deadline by deadline, writing as we go, so the decisions
    // of the end of time never pile up in memory all at once.
    while let Some(due) = engine.poll_timeout().filter(|due| *due < until) {
        engine.advance_to(due + Span(1));
        sink.drain(&mut engine)?;
    }
    engine.advance_to(until);
    sink.drain(&mut engine)?;
    sink.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    if let Some(file) = rejected_file.as_mut() {
        file.flush().context("cannot write --rejected")?;
    }
    if rejected > REPORTED_BAD_LINES {
        let all = match &args.rejected {
            Some(path) => format!("; every one is in {}", path.display()),
            None => "; --rejected FILE keeps every one".to_string(),
        };
        eprintln!(
            "{events_name}: {rejected} lines skipped in all ({REPORTED_BAD_LINES} shown{all})"
        );
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
    if let Some(error) = read_error {
        eprintln!(
            "kairos: cannot read {events_name} past {error}; the decisions and summary above cover everything before it"
        );
        std::mem::forget(engine);
        return Ok(ExitCode::from(1));
    }
    // Millions of customers take a while to free, and the process is about
    // to exit anyway: leave that to the OS.
    std::mem::forget(engine);
    Ok(ExitCode::SUCCESS)
}

/// Refuses output paths that would overwrite an input: `--out` or
/// `--summary-json` naming the events or pipeline file (or each other) would
/// empty it before it is read.
fn check_paths(args: &BacktestArgs) -> Result<(), String> {
    let inputs = [("--events", &args.events), ("--pipeline", &args.pipeline)];
    let outputs = [
        ("--out", args.out.as_ref()),
        ("--summary-json", args.summary_json.as_ref()),
        ("--rejected", args.rejected.as_ref()),
    ];
    let mut written: Vec<(&str, PathBuf)> = Vec::new();
    for (flag, path) in outputs {
        let Some(path) = path.filter(|path| path.as_os_str() != "-") else {
            continue;
        };
        // A file that does not exist yet is nobody's input.
        let Ok(resolved) = std::fs::canonicalize(path) else {
            continue;
        };
        for (input_flag, input) in inputs {
            if std::fs::canonicalize(input).is_ok_and(|input| input == resolved) {
                return Err(format!(
                    "{flag} {} is also the {input_flag} file, which writing would destroy; accepted: a different path",
                    path.display()
                ));
            }
        }
        if let Some((other, _)) = written.iter().find(|(_, other)| *other == resolved) {
            return Err(format!(
                "{flag} {} is also the {other} file; accepted: a different path",
                path.display()
            ));
        }
        written.push((flag, resolved));
    }
    Ok(())
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

    fn open(args: &BacktestArgs, pipeline: &str) -> anyhow::Result<ActionSink> {
        // Unbuffered: the writing thread renders a whole batch into one
        // buffer and writes it with one call, so a `BufWriter` would only
        // copy every byte once more.
        let output: Option<Box<dyn Write + Send>> = match &args.out {
            None => None,
            Some(path) if path.as_os_str() == "-" => Some(Box::new(io::stdout())),
            Some(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                Some(Box::new(file))
            }
        };
        let (queue, batches) = mpsc::sync_channel::<Vec<Decision>>(Self::QUEUED_BATCHES);
        let pipeline = pipeline.to_string();
        let all_decisions = args.all_decisions;
        let writer = thread::Builder::new()
            .name("kairos-write".into())
            .spawn(move || write_actions(batches, output, &pipeline, all_decisions))
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
        for decision in batch {
            if decision.is_sent() || all_decisions {
                decision.into_action(pipeline).write_json(&mut rendered);
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
