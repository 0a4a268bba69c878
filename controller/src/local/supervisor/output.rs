//! Game output, line by line, re-emitted with the GameServer's name so that a thousand
//! interleaved processes stay readable.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// `[<label>] <line>`.
pub fn prefixed(label: &str, line: &str) -> String {
    format!("[{label}] {line}")
}

/// Copies `reader` to `sink` one line at a time until end of file. Bytes that are not UTF-8 are
/// shown replaced rather than dropping the line.
pub(super) async fn pump(reader: impl AsyncRead + Unpin, label: String, stream: OutputStream, sink: OutputSink) {
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
                sink.emit(&label, stream, &String::from_utf8_lossy(&line));
            }
        }
    }
}
