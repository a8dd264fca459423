//! Reading Segment JSON lines for backtests: from a file or stdin (`-`),
//! gzip or not, parsed on a second thread so that parsing and the engine use
//! both cores. Batches keep the channel cheap; the bounded channel keeps
//! memory flat however large the file. Events the engine is done with come
//! back to the parsing thread to be freed where they were allocated (see
//! `Engine::hand_back_events`).

use anyhow::Context;
use flate2::bufread::GzDecoder;
use kairos_model::{Event, InvalidEvent};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::thread::JoinHandle;

/// Bad lines of an events file, as `kairos backtest` and `kairos sweep`
/// report them on stderr: the first [`SkippedLines::SHOWN`] one by one,
/// then only their count.
pub struct SkippedLines {
    file: String,
    /// Lines skipped so far.
    pub count: u64,
}

impl SkippedLines {
    /// Lines shown one by one.
    pub const SHOWN: u64 = 100;

    pub fn new(file: String) -> SkippedLines {
        SkippedLines { file, count: 0 }
    }

    /// Counts a skipped line; the message to show for it, if it is among
    /// the first [`SkippedLines::SHOWN`].
    pub fn skip(&mut self, number: u64, reason: &InvalidEvent) -> Option<String> {
        self.count += 1;
        (self.count <= Self::SHOWN).then(|| format!("{}:{number}: skipped: {reason}", self.file))
    }

    /// The closing count, if more were skipped than shown; `where_all` says
    /// where every one can be found (`""` for nowhere).
    pub fn total(&self, where_all: &str) -> Option<String> {
        (self.count > Self::SHOWN).then(|| {
            format!(
                "{}: {} lines skipped in all ({} shown{where_all})",
                self.file,
                self.count,
                Self::SHOWN
            )
        })
    }
}

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

/// `path` (`-` = stdin) as bytes to read lines from: gzip (every member)
/// decompressed, and the formats kairos does not read refused by name;
/// with the input's length when it is a plain file.
pub fn open_input(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    let stdin = path == Path::new("-");
    let (input, total_bytes): (Box<dyn Read + Send>, Option<u64>) = if stdin {
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
        // Only a regular file's length is the input's: a pipe
        // (`<(zcat ...)`) or a device has none, and gets a spinner.
        (Box::new(file), metadata.is_file().then_some(metadata.len()))
    };
    // Gzip is recognised by its first bytes, not by the name, so that a
    // compressed file piped to stdin is read too; so are the formats kairos
    // does not read, which would otherwise be read as lines of garbage.
    let (head, input) = first_bytes(input, MAGIC_BYTES)
        .with_context(|| format!("cannot read events file {}", path.display()))?;
    if let Some(format) = unreadable_format(&head) {
        let name = if stdin { Path::new("stdin") } else { path };
        anyhow::bail!("{} is {format}", name.display());
    }
    let compressed = head.starts_with(&GZIP_MAGIC);
    let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(input));
    Ok(if compressed {
        // 32 KiB of compressed input at a time, as flate2's own readers.
        let input = BufReader::with_capacity(32 << 10, input);
        (Box::new(GzMembers::new(input)), None)
    } else {
        (input, total_bytes)
    })
}

/// One line of an events file.
pub struct CallLine<'a> {
    /// Its number, from 1.
    pub number: u64,
    /// Bytes read for it, the newline included.
    pub bytes: u64,
    /// The call: the line without its trailing spaces (empty for a blank
    /// line), or the length of a line longer than any event may be (only
    /// its start was kept).
    pub call: Result<&'a [u8], usize>,
}

/// The lines of an events file, one call each, as every reader of such
/// files takes them: a huge line costs no more memory than a long one, and
/// a byte order mark is not part of the first call.
pub struct CallLines<R> {
    input: R,
    buffer: Vec<u8>,
    number: u64,
}

impl<R: BufRead> CallLines<R> {
    pub fn new(input: R) -> CallLines<R> {
        CallLines {
            input,
            buffer: Vec::with_capacity(4096),
            number: 0,
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.number
    }

    /// The next line; `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<CallLine<'_>>> {
        self.buffer.clear();
        let read = read_line(&mut self.input, &mut self.buffer)?;
        if read.bytes == 0 {
            return Ok(None);
        }
        self.number += 1;
        let mut text = trim_line(&self.buffer);
        if self.number == 1 {
            // A byte order mark, as some Windows tools write: JSON parsers
            // may ignore one (RFC 8259, 8.1).
            text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
        }
        Ok(Some(CallLine {
            number: self.number,
            bytes: read.bytes,
            call: match read.line_bytes {
                Some(size) => Err(size),
                None => Ok(text),
            },
        }))
    }
}

/// Opens `path` (`-` = stdin) and starts parsing it.
pub fn open(path: &Path) -> anyhow::Result<EventsReader> {
    let (input, total_bytes) = open_input(path)?;
    let (sender, batches) = sync_channel(BATCHES_IN_FLIGHT);
    // Unbounded, but never holds more than the batches in flight: every
    // event in it was parsed here first.
    let (spent, returned) = channel::<Vec<Event>>();
    let reader = std::thread::Builder::new()
        .name("kairos-parse".into())
        .spawn(move || {
            let mut lines = CallLines::new(BufReader::with_capacity(1 << 20, input));
            let mut batch = Batch {
                lines: Vec::with_capacity(BATCH_LINES),
                bytes: 0,
            };
            loop {
                let line = match lines.next_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
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
                            format!("line {}: {error}", lines.lines_read() + 1),
                        ));
                    }
                };
                batch.bytes += line.bytes;
                let number = line.number;
                let parsed = match line.call {
                    Err(size) => Err(InvalidEvent::TooLarge {
                        size,
                        limit: Event::MAX_BYTES,
                    }),
                    Ok([]) => continue,
                    Ok(text) => Event::from_json(text),
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
/// event may have and skipping the rest of a longer line. A line's length
/// is that of the call on it: without the spaces, tabs and `\r` (CRLF
/// files) that end it, as [`trim_line`] takes them off.
fn read_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> io::Result<LineRead> {
    let most = Event::MAX_BYTES + 1;
    let (mut bytes, mut newline) = (0u64, false);
    // Bytes at the end of what was read so far that `trim_line` takes off.
    let mut trailing = 0u64;
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
        let text = &available[..used - usize::from(newline)];
        trailing = match text.iter().rposition(|byte| !is_trailing_space(*byte)) {
            Some(last) => (text.len() - last - 1) as u64,
            None => trailing + text.len() as u64,
        };
        let room = most.saturating_sub(buffer.len());
        buffer.extend_from_slice(&available[..used.min(room)]);
        input.consume(used);
        bytes += used as u64;
        if newline {
            break;
        }
    }
    let length = bytes - u64::from(newline) - trailing;
    Ok(LineRead {
        bytes,
        line_bytes: (length > Event::MAX_BYTES as u64).then_some(length as usize),
    })
}

/// A UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes read to recognise a format (the longest magic number below).
const MAGIC_BYTES: usize = 6;

/// The formats an events file may be mistaken for, by their magic
/// numbers: none of them starts a line of JSON, and every line of such a
/// file would be skipped as garbage.
const UNREADABLE: [(&[u8], &str); 8] = [
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x04\x22\x4d\x18", "lz4-compressed"),
    (b"\x5d\x00\x00", "lzma-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
];

/// What the file is, when its first bytes say it is neither JSON lines nor
/// gzip. Only magic numbers count: a text file whose first line is damaged
/// (zeroed by a crash, say) is still read, its good lines replayed.
fn unreadable_format(head: &[u8]) -> Option<&'static str> {
    // bzip2: `BZh` and the block size, 1 to 9.
    if head.starts_with(b"BZh") && head.get(3).is_some_and(|size| (b'1'..=b'9').contains(size)) {
        return Some("bzip2-compressed");
    }
    UNREADABLE
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, format)| *format)
}

/// The gzip members of `input`, one after the other, as `gzip -d` reads
/// them: zero bytes after the last member (padding, as tape and some
/// tools write) are ignored, anything else there is an error.
struct GzMembers<R: BufRead> {
    /// The member being read; `None` once the input is done.
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(input: R) -> Self {
        GzMembers {
            member: Some(GzDecoder::new(input)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let read = member.read(into)?;
            if read > 0 || into.is_empty() {
                return Ok(read);
            }
            // The member is done: another may follow, or padding.
            let mut input = self.member.take().expect("a member").into_inner();
            let next = loop {
                match input.fill_buf() {
                    Ok(next) => break next,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            };
            match next.first() {
                None => return Ok(0),
                Some(0) => {
                    skip_zeros(&mut input)?;
                    return Ok(0);
                }
                Some(&first) if first == GZIP_MAGIC[0] => {
                    self.member = Some(GzDecoder::new(input));
                }
                Some(_) => return Err(after_the_last_member()),
            }
        }
    }
}

fn after_the_last_member() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "bytes after the last gzip member that are neither another member nor zero padding",
    )
}

/// Reads `input` to its end, which must hold only zero bytes.
fn skip_zeros(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let zeros = match input.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(bytes) => bytes.iter().take_while(|byte| **byte == 0).count(),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if zeros == 0 {
            return Err(after_the_last_member());
        }
        input.consume(zeros);
    }
}

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
    while end > 0 && (line[end - 1] == b'\n' || is_trailing_space(line[end - 1])) {
        end -= 1;
    }
    &line[..end]
}

/// What may follow a call on its line: spaces, tabs, and the `\r` of CRLF.
fn is_trailing_space(byte: u8) -> bool {
    matches!(byte, b'\r' | b' ' | b'\t')
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

    #[cfg(unix)]
    #[test]
    fn only_a_regular_file_has_a_known_size() {
        let reader = open(Path::new("/dev/null")).expect("opens");
        assert_eq!(
            reader.total_bytes, None,
            "a device's length is not its input"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{}\n").expect("write");
        assert_eq!(open(&path).expect("opens").total_bytes, Some(3));
    }

    #[test]
    fn what_ends_a_line_is_not_counted_against_the_limit() {
        let most = Event::MAX_BYTES;
        let mut input = Vec::new();
        for (length, end) in [
            (most, &b"\r\n"[..]),
            (most, b" \t\r\n"),
            (most + 1, b"\r\n"),
            (most, b"\r"), // no final newline
        ] {
            input.extend(std::iter::repeat_n(b'x', length));
            input.extend_from_slice(end);
        }
        let read = lines(&input);
        assert_eq!(
            read,
            [
                (most as u64 + 2, None, most + 1),
                (most as u64 + 4, None, most + 1),
                (most as u64 + 3, Some(most + 1), most + 1),
                (most as u64 + 1, None, most + 1),
            ]
        );
        // The end of a line may come in a later read than its text.
        let mut input =
            BufReader::with_capacity(7, io::Cursor::new(b"{\"a\":1}   \t\r\n{}\r\n".to_vec()));
        let mut buffer = Vec::new();
        let line = read_line(&mut input, &mut buffer).expect("in memory");
        assert_eq!((line.bytes, trim_line(&buffer)), (13, &b"{\"a\":1}"[..]));
    }

    /// `text` gzipped, as `gzip` writes it.
    fn gzipped(text: &[u8]) -> Vec<u8> {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text).expect("compress");
        encoder.finish().expect("finish")
    }

    fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut text = Vec::new();
        // A small buffer, so that members and padding span reads.
        GzMembers::new(BufReader::with_capacity(5, bytes)).read_to_end(&mut text)?;
        Ok(text)
    }

    #[test]
    fn gzip_members_are_read_in_turn_and_zero_padding_after_them_ignored() {
        let mut bytes = gzipped(b"one\n");
        bytes.extend(gzipped(b"two\n"));
        assert_eq!(gunzip(&bytes).expect("two members"), b"one\ntwo\n");
        bytes.extend([0; 1000]);
        assert_eq!(gunzip(&bytes).expect("padded"), b"one\ntwo\n");
        for junk in [&b"x"[..], b"\0\0x", b"\x1f"] {
            let mut damaged = bytes.clone();
            damaged.extend_from_slice(junk);
            assert!(gunzip(&damaged).is_err(), "{junk:?}");
        }
        // Padding inside a member is damage, not padding.
        let whole = gzipped(b"one\n");
        let mut cut = whole[..whole.len() - 4].to_vec();
        cut.extend([0; 64]);
        assert!(gunzip(&cut).is_err());
    }

    #[test]
    fn formats_kairos_does_not_read_are_recognised_by_their_magic_numbers() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (b"\x28\xb5\x2f\xfd\x24\x00", Some("zstd-compressed")),
            (b"\xfd7zXZ\x00", Some("xz-compressed")),
            (b"BZh91AY", Some("bzip2-compressed")),
            (b"PK\x03\x04\x14\x00", Some("a zip archive")),
            (b"\xff\xfe{\x00", Some("UTF-16 text")),
            (b"BZh is not", None),
            (b"{\"type\"", None),
            (b"\x1f\x8b\x08\x00", None),
            // A damaged first line is skipped, not the whole file.
            (b"\x00\x00\x00\x00{\"", None),
        ];
        for (head, format) in cases {
            assert_eq!(unreadable_format(head), format, "{head:?}");
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
