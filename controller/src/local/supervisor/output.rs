//! Game output, line by line, re-emitted with the GameServer's name so that a thousand
//! interleaved processes stay readable.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where game output goes.
#[derive(Clone)]
pub enum OutputSink {
    /// Written as `[<gameserver>] <line>` to this writer (normally the runtime's stderr).
    Writer(Arc<Mutex<dyn Write + Send>>),
    /// Emitted as `tracing` events with `gameserver` and `stream` fields.
    Tracing,
    /// Dropped (`--quiet`, benchmarks).
    Discard,
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Writer(_) => "Writer",
            Self::Tracing => "Tracing",
            Self::Discard => "Discard",
        })
    }
}

impl OutputSink {
    /// Prefixed lines on the runtime's stderr.
    pub fn stderr() -> Self {
        Self::Writer(Arc::new(Mutex::new(std::io::stderr())))
    }

    fn emit(&self, label: &str, stream: OutputStream, line: &str) {
        match self {
            Self::Writer(writer) => {
                let mut writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                // Output is best effort: a closed stderr must not take the game down with it.
                let _ = writeln!(writer, "{}", prefixed(label, line));
            }
            Self::Tracing => tracing::info!(gameserver = %label, stream = ?stream, "{line}"),
            Self::Discard => {}
        }
    }
}

/// Output lines kept per process for the dashboard, newest last.
pub const TAIL_LINES: usize = 100;
/// Processes whose tails are kept; past this the tail first written is forgotten, so a long run
/// with many short-lived servers cannot grow without bound.
pub const TAILS_KEPT: usize = 2048;
/// Longest line kept in a tail, in bytes (longer ones are cut, marked with `…`).
pub const TAIL_LINE_BYTES: usize = 1024;

/// The last [`TAIL_LINES`] lines of each process's output (both streams), whatever the
/// [`OutputSink`]: the dashboard shows them even when output is discarded.
#[derive(Clone, Default)]
pub struct OutputTails {
    inner: Arc<Mutex<Tails>>,
}

#[derive(Default)]
struct Tails {
    by_key: HashMap<String, VecDeque<String>>,
    /// Keys in the order their tails began, to forget the oldest.
    order: VecDeque<String>,
}

impl fmt::Debug for OutputTails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputTails").finish_non_exhaustive()
    }
}

impl OutputTails {
    /// Adds `line` to the tail of the process started under `key`.
    pub fn push(&self, key: &str, line: &str) {
        let mut line = line.to_owned();
        if line.len() > TAIL_LINE_BYTES {
            let mut cut = TAIL_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        // Each critical section is one push: a panic elsewhere cannot leave it half done.
        let mut tails = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !tails.by_key.contains_key(key) {
            if tails.by_key.len() == TAILS_KEPT
                && let Some(oldest) = tails.order.pop_front()
            {
                tails.by_key.remove(&oldest);
            }
            tails.order.push_back(key.to_owned());
        }
        let tail = tails.by_key.entry(key.to_owned()).or_default();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// The kept lines of `key`, oldest first (empty when it printed nothing).
    pub fn tail(&self, key: &str) -> Vec<String> {
        let tails = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        tails.by_key.get(key).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }
}

/// `[<label>] <line>`.
pub fn prefixed(label: &str, line: &str) -> String {
    format!("[{label}] {line}")
}

/// Copies `reader` to `sink` one line at a time until end of file. Bytes that are not UTF-8 are
/// shown replaced rather than dropping the line.
/// Every line also joins `key`'s tail in `tails`.
pub(super) async fn pump(
    reader: impl AsyncRead + Unpin,
    label: String,
    stream: OutputStream,
    sink: OutputSink,
    (tails, key): (OutputTails, String),
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line);
                tails.push(&key, &text);
                sink.emit(&label, stream, &text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_lines_and_cuts_long_ones() {
        let tails = OutputTails::default();
        for n in 0..TAIL_LINES + 3 {
            tails.push("default/gs-1", &format!("line {n}"));
        }
        let tail = tails.tail("default/gs-1");
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 3");
        tails.push("default/gs-2", &"é".repeat(TAIL_LINE_BYTES));
        let long = &tails.tail("default/gs-2")[0];
        assert!(long.len() <= TAIL_LINE_BYTES + '…'.len_utf8() && long.ends_with('…'));
        assert!(tails.tail("default/none").is_empty());
    }

    #[test]
    fn the_oldest_tail_is_forgotten_past_the_bound() {
        let tails = OutputTails::default();
        for n in 0..=TAILS_KEPT {
            tails.push(&format!("default/gs-{n}"), "hello");
        }
        assert!(tails.tail("default/gs-0").is_empty());
        assert_eq!(tails.tail(&format!("default/gs-{TAILS_KEPT}")), ["hello"]);
    }

    #[tokio::test]
    async fn pumped_lines_join_the_tail_even_when_output_is_discarded() {
        let tails = OutputTails::default();
        let input: &[u8] = b"ready\nplayers 2\n";
        pump(input, "gs-1".into(), OutputStream::Stdout, OutputSink::Discard, (tails.clone(), "default/gs-1".into()))
            .await;
        assert_eq!(tails.tail("default/gs-1"), ["ready", "players 2"]);
    }
}
