//! The backtests of a sweep: the events read into memory once, then one
//! engine per grid point, the points shared out among a thread per core.

use crate::backtest::run_out_clock;
use crate::events_file;
use indicatif::ProgressBar;
use kairos_engine::config::Pipeline;
use kairos_engine::{Engine, Stats};
use kairos_model::{Event, Timestamp};
use std::convert::Infallible;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// The events file, parsed once, as every grid point replays it.
pub struct History {
    /// The events before `--until`, in file order.
    pub events: Vec<Event>,
    /// Lines skipped as not being valid calls.
    pub rejected: u64,
    /// Events at or after `--until`, not replayed.
    pub beyond_until: u64,
    /// The I/O error that ended the input early (a damaged `.gz`), if any:
    /// the sweep covers everything read before it.
    pub read_error: Option<io::Error>,
}

/// Reads every event of `path` with the backtest's reader, reporting bad
/// lines on stderr as the backtest does. An error is the file not opening.
pub fn read_history(path: &Path, until: Timestamp) -> anyhow::Result<History> {
    let reader = events_file::open(path)?;
    let events_name = path.display().to_string();
    let mut skipped = events_file::SkippedLines::new(events_name.clone());
    let mut history = History {
        events: Vec::new(),
        rejected: 0,
        beyond_until: 0,
        read_error: None,
    };
    for batch in reader.batches.iter() {
        for line in batch.lines {
            match line.parsed {
                Ok(event) if event.time >= until => history.beyond_until += 1,
                Ok(event) => history.events.push(event),
                Err(reason) => {
                    if let Some(message) = skipped.skip(line.number, &reason) {
                        eprintln!("{message}");
                    }
                }
            }
        }
    }
    // Nothing is handed back to be freed on the parsing thread: these
    // events live until the sweep ends. Hanging up lets that thread finish.
    drop(reader.spent);
    history.read_error = match reader.reader.join() {
        Ok(result) => result.err(),
        Err(_) => anyhow::bail!("the parsing thread panicked"),
    };
    history.rejected = skipped.count;
    if let Some(total) = skipped.total("") {
        eprintln!("{total}");
    }
    if history.beyond_until > 0 {
        eprintln!(
            "{events_name}: {} events at or after --until not replayed",
            history.beyond_until
        );
    }
    Ok(history)
}

/// The threads a sweep of `points` grid points uses: one per core, and no
/// more than there are points.
pub fn workers_for(points: usize) -> usize {
    let cores = thread::available_parallelism().map_or(1, |cores| cores.get());
    cores.min(points).max(1)
}

/// Backtests every pipeline (one per grid point) over `events` on
/// `workers` threads, and returns each one's engine counters, in the
/// pipelines' order. Each thread takes the next point not yet taken, so a
/// slow point (a short timer fires more) holds up only its own thread.
pub fn replay_all(
    pipelines: &[Pipeline],
    events: &[Event],
    until: Timestamp,
    workers: usize,
    progress: &ProgressBar,
) -> Vec<Stats> {
    let next_point = AtomicUsize::new(0);
    let mut results: Vec<(usize, Stats)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let point = next_point.fetch_add(1, Ordering::Relaxed);
                        let Some(pipeline) = pipelines.get(point) else {
                            return done;
                        };
                        done.push((point, replay(pipeline.clone(), events, until)));
                        progress.inc(1);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            // A panicking worker has already printed why; with
            // `panic = "abort"` in release builds it never gets here.
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_by_key(|(point, _)| *point);
    results.into_iter().map(|(_, stats)| stats).collect()
}

/// One grid point's backtest, exactly as `kairos backtest` replays: each
/// event handed over in order, decisions taken as they come (and dropped:
/// only the counters matter here), then at the end of input the clock run
/// deadline by deadline to `until`.
fn replay(pipeline: Pipeline, events: &[Event], until: Timestamp) -> Stats {
    let mut engine = Engine::new(pipeline);
    let drain = |engine: &mut Engine| while engine.poll_decision().is_some() {};
    for event in events {
        engine.handle_event(event.clone());
        drain(&mut engine);
    }
    let ended: Result<(), Infallible> = run_out_clock(&mut engine, until, |engine| {
        drain(engine);
        Ok(())
    });
    let Ok(()) = ended;
    // Unlike the backtest, which leaves its one engine to the OS at exit,
    // every point's engine is freed here: a sweep runs many in turn.
    engine.stats().clone()
}
