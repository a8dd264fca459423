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
                let read = match read_line(&mut input, &mut buffer) {
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
                if read.bytes == 0 {
                    break;
                }
                number += 1;
                batch.bytes += read.bytes;
                let text = trim_line(&buffer);
                if text.is_empty() {
                    continue;
                }
                let parsed = match read.line_bytes {
                    Some(size) => Err(InvalidEvent::TooLarge {
                        size,
                        limit: Event::MAX_BYTES,
                    }),
                    None => Event::from_json(text),
                };
                batch.lines.push(Line { number, parsed });
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

/// What [`read_line`] read.
struct LineRead {
    /// Bytes consumed, the newline included; 0 at the end of input.
    bytes: u64,
    /// For a line longer than any event may be: its length. Only its first
    /// bytes were kept, so a huge line costs no more memory than a long one.
    line_bytes: Option<usize>,
}

/// Reads one line into `buffer`, keeping at most one byte more than an
/// event may have and skipping the rest of a longer line.
fn read_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> io::Result<LineRead> {
    let most = Event::MAX_BYTES + 1;
    let (mut bytes, mut newline) = (0u64, false);
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            break;
        }
        let used = match memchr::memchr(b'\n', available) {
            Some(end) => {
                newline = true;
                end + 1
            }
            None => available.len(),
        };
        let room = most.saturating_sub(buffer.len());
        buffer.extend_from_slice(&available[..used.min(room)]);
        input.consume(used);
        bytes += used as u64;
        if newline {
            break;
        }
    }
    let length = bytes - u64::from(newline);
    Ok(LineRead {
        bytes,
        line_bytes: (length > Event::MAX_BYTES as u64).then_some(length as usize),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (bytes consumed, length if too long, text kept) for each line.
    fn lines(input: &[u8]) -> Vec<(u64, Option<usize>, usize)> {
        let mut input = BufReader::with_capacity(4096, input);
        let mut buffer = Vec::new();
        let mut read = Vec::new();
        loop {
            buffer.clear();
            let line = read_line(&mut input, &mut buffer).expect("in memory");
            if line.bytes == 0 {
                return read;
            }
            read.push((line.bytes, line.line_bytes, buffer.len()));
        }
    }

    #[test]
    fn lines_longer_than_an_event_are_measured_not_kept() {
        let most = Event::MAX_BYTES;
        let mut input = Vec::new();
        for length in [most, most + 1, 3 * most, 5] {
            input.extend(std::iter::repeat_n(b'x', length));
            input.push(b'\n');
        }
        input.extend(std::iter::repeat_n(b'y', most + 7)); // no final newline
        let read = lines(&input);
        assert_eq!(
            read,
            [
                (most as u64 + 1, None, most + 1),
                (most as u64 + 2, Some(most + 1), most + 1),
                (3 * most as u64 + 1, Some(3 * most), most + 1),
                (6, None, 6),
                (most as u64 + 7, Some(most + 7), most + 1),
            ]
        );
    }
}
