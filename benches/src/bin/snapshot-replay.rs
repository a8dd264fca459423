//! Replays an events file twice through a pipeline, once straight through
//! and once restarting the engine from a snapshot every N events, and
//! compares the decisions: the check that a service recovering from its
//! snapshots decides exactly as one that never stopped.
//!
//! ```text
//! cargo run -p kairos-benches --release --bin gen-events -- \
//!     --workload retail --customers 20000 --events 200000 --hours 240 > events.jsonl
//! cargo run -p kairos-benches --release --bin snapshot-replay -- \
//!     --pipeline pipelines/retail.toml --events events.jsonl [--every 10000]
//! ```
//!
//! Each run ends as a backtest does (`kairos backtest`): input closed, the
//! clock run deadline by deadline to the end of time. Decisions are
//! compared as their action JSON lines, with the counters after them.
//! Exit code 0: identical; 1: they differ (the first difference is shown).

use kairos_engine::Engine;
use kairos_model::{Event, Span, Timestamp};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;

fn main() -> ExitCode {
    let (mut pipeline_path, mut events_path, mut every) = (None, None, 10_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--pipeline", Some(value)) => pipeline_path = Some(PathBuf::from(value)),
            ("--events", Some(value)) => events_path = Some(PathBuf::from(value)),
            ("--every", Some(value)) => every = value.replace('_', "").parse().expect("--every N"),
            _ => pipeline_path = None,
        }
    }
    let (Some(pipeline_path), Some(events_path)) = (pipeline_path, events_path) else {
        eprintln!("usage: snapshot-replay --pipeline FILE --events FILE [--every N]");
        return ExitCode::from(2);
    };
    let pipeline = kairos_pipeline::load(&pipeline_path, &[]).unwrap_or_else(|diagnostics| {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}");
        }
        std::process::exit(2)
    });
    let text = std::fs::read_to_string(&events_path).expect("the events file is read");
    let events: Vec<Event> = text
        .lines()
        .filter_map(|line| Event::from_json(line.as_bytes()).ok())
        .collect();
    drop(text);

    let straight = replay(Engine::new(pipeline.clone()), &events, None);
    let started = Instant::now();
    let restarted = replay(Engine::new(pipeline), &events, Some(every));
    let elapsed = started.elapsed();
    println!(
        "{}: {} events, {} decisions; restarted from a snapshot every {every} events ({} restarts, {:.1} s)",
        pipeline_path.display(),
        events.len(),
        straight.decisions,
        restarted.restarts,
        elapsed.as_secs_f64()
    );
    if straight.lines == restarted.lines {
        println!("decisions and counters byte-identical");
        return ExitCode::SUCCESS;
    }
    let at = straight
        .lines
        .iter()
        .zip(&restarted.lines)
        .position(|(a, b)| a != b)
        .unwrap_or(straight.lines.len().min(restarted.lines.len()));
    println!(
        "DIFFERENT from line {at} ({} lines straight, {} restarted):\n  straight:  {}\n  restarted: {}",
        straight.lines.len(),
        restarted.lines.len(),
        straight.lines.get(at).map_or("(none)", String::as_str),
        restarted.lines.get(at).map_or("(none)", String::as_str),
    );
    ExitCode::from(1)
}

struct Run {
    lines: Vec<String>,
    decisions: usize,
    restarts: usize,
}

fn replay(mut engine: Engine, events: &[Event], every: Option<usize>) -> Run {
    let mut run = Run {
        lines: Vec::new(),
        decisions: 0,
        restarts: 0,
    };
    let mut bytes = Vec::new();
    for (index, event) in events.iter().enumerate() {
        engine.handle_event(event.clone());
        drain(&mut engine, &mut run);
        if every.is_some_and(|every| (index + 1) % every.max(1) == 0) {
            engine.snapshot(&mut bytes).expect("decisions were polled");
            let pipeline = engine.pipeline().clone();
            drop(engine);
            engine = Engine::restore(pipeline, &bytes).expect("the snapshot restores");
            run.restarts += 1;
        }
    }
    engine.close_input();
    while let Some(due) = engine.poll_timeout().filter(|due| *due < Timestamp::MAX) {
        engine.advance_to(due + Span(1));
        drain(&mut engine, &mut run);
    }
    engine.advance_to(Timestamp::MAX);
    drain(&mut engine, &mut run);
    run.lines.push(format!("{:?}", engine.stats()));
    run
}

fn drain(engine: &mut Engine, run: &mut Run) {
    let name = engine.pipeline().name.clone();
    while let Some(decision) = engine.poll_decision() {
        let mut line = Vec::new();
        decision.into_action(&name).write_json(&mut line);
        run.lines.push(String::from_utf8_lossy(&line).into_owned());
        run.decisions += 1;
    }
}
