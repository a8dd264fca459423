//! Reading Segment JSON lines for backtests: from a file or stdin (`-`),
//! gzip or not, parsed on a second thread so that parsing and the engine use
//! both cores. Batches keep the channel cheap; the bounded channel keeps
//! memory flat however large the file. Events the engine is done with come
//! back to the parsing thread to be freed where they were allocated (see
//! `Engine::hand_back_events`).

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use kairos_model::{Event, InvalidEvent};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::thread::JoinHandle;

/// One parsed line.
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// The event, or why the line was rejected.
    pub parsed: Result<Event, InvalidEvent>,
}

/// Lines parsed together, and the input bytes they came from.
pub struct Batch {
    pub lines: Vec<Line>,
    pub bytes: u64,
}

/// The reading side: batches arrive on `batches`, and spent events go back
/// on `spent` (the parsing thread frees them; drop `spent` before joining
/// `reader`, which waits for it); `reader` ends with the first I/O error, if
/// any. `total_bytes` is known for plain files.
pub struct EventsReader {
    pub batches: Receiver<Batch>,
    pub spent: Sender<Vec<Event>>,
    pub reader: JoinHandle<io::Result<()>>,
    pub total_bytes: Option<u64>,
}

const BATCH_LINES: usize = 4096;
const BATCHES_IN_FLIGHT: usize = 16;

/// Opens `path` (`-` = stdin) and starts parsing it.
pub fn open(path: &Path) -> anyhow::Result<EventsReader> {
    let (input, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
        (Box::new(io::stdin()), None)
    } else {
        let file = File::open(path)
            .with_context(|| format!("cannot open events file {}", path.display()))?;
        let metadata = file
            .metadata()
            .with_context(|| format!("cannot read events file {}", path.display()))?;
        if metadata.is_dir() {
            anyhow::bail!("{} is a directory", path.display());
        }
        (Box::new(file), Some(metadata.len()))
    };
    // Gzip is recognised by its first two bytes, not by the name, so that a
    // compressed file piped to stdin is read too.
    let (head, input) = first_bytes(input, 2)
        .with_context(|| format!("cannot read events file {}", path.display()))?;
    let compressed = head == GZIP_MAGIC;
    let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(input));
    let (input, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if compressed {
        (Box::new(MultiGzDecoder::new(input)), None)
    } else {
        (input, total_bytes)
    };
    let (sender, batches) = sync_channel(BATCHES_IN_FLIGHT);
    // Unbounded, but never holds more than the batches in flight: every
    // event in it was parsed here first.
    let (spent, returned) = channel::<Vec<Event>>();
    let reader = std::thread::Builder::new()
        .name("kairos-parse".into())
        .spawn(move || {
            let mut input = BufReader::with_capacity(1 << 20, input);
            let mut buffer = Vec::with_capacity(4096);
            let mut number = 0u64;
            let mut batch = Batch {
                lines: Vec::with_capacity(BATCH_LINES),
                bytes: 0,
            };
            loop {
                buffer.clear();
                let read = match input.read_until(b'\n', &mut buffer) {
                    Ok(read) => read,
                    Err(error) => {
                        // A truncated or corrupt file (a damaged `.gz`):
                        // everything parsed before the damage still goes to
                        // the engine, and the error says where reading
                        // stopped.
                        let _ = sender.send(batch);
                        drop(sender);
                        returned.iter().for_each(drop);
                        return Err(io::Error::new(
                            error.kind(),
                            format!("line {}: {error}", number + 1),
                        ));
                    }
                };
                if read == 0 {
                    break;
                }
                number += 1;
                batch.bytes += read as u64;
                let text = trim_line(&buffer);
                if text.is_empty() {
                    continue;
                }
                batch.lines.push(Line {
                    number,
                    parsed: Event::from_json(text),
                });
                if batch.lines.len() == BATCH_LINES {
                    let full = std::mem::replace(
                        &mut batch,
                        Batch {
                            lines: Vec::with_capacity(BATCH_LINES),
                            bytes: 0,
                        },
                    );
                    returned.try_iter().for_each(drop);
                    if sender.send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            let _ = sender.send(batch);
            // The last batch is out: hang up, then free what comes back.
            drop(sender);
            returned.iter().for_each(drop);
            Ok(())
        })
        .context("cannot start the parsing thread")?;
    Ok(EventsReader {
        batches,
        spent,
        reader,
        total_bytes,
    })
}

/// The first bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads up to `count` bytes (fewer only at the end of input), however the
/// input delivers them (a pipe may hand over one byte at a time).
fn first_bytes<R: Read>(mut input: R, count: usize) -> io::Result<(Vec<u8>, R)> {
    let mut head = vec![0; count];
    let mut filled = 0;
    while filled < count {
        match input.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    head.truncate(filled);
    Ok((head, input))
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}
