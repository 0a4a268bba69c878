//! The text protocol players (and tests) speak to the server: one command per datagram or per TCP
//! line. Anything that is not a command is echoed back, so `nc -u` shows the server working.

use std::fmt;
use std::time::Duration;

/// One message from a client, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A control command.
    Command(Command),
    /// Anything else: echoed back prefixed with the server's name.
    Echo(String),
}

/// A control command; each maps to one SDK call (or to stopping health pings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `EXIT`: SDK Shutdown, then the process exits 0.
    Exit,
    /// `UNHEALTHY`: stop pinging health, so the sidecar marks the server Unhealthy.
    Unhealthy,
    /// `ALLOCATE`: SDK Allocate (the game found its own players).
    Allocate,
    /// `READY`: SDK Ready (back from Reserved or Allocated).
    Ready,
    /// `RESERVE <seconds>`: SDK Reserve.
    Reserve(Duration),
    /// `LABEL <key> <value>`: SDK SetLabel (stored as `agones.dev/sdk-<key>`).
    Label {
        /// Label key without the `agones.dev/sdk-` prefix.
        key: String,
        /// Label value.
        value: String,
    },
    /// `ANNOTATION <key> <value>`: SDK SetAnnotation.
    Annotation {
        /// Annotation key without the `agones.dev/sdk-` prefix.
        key: String,
        /// Annotation value (may contain spaces).
        value: String,
    },
    /// `PLAYERS`: how many players are connected (alpha player tracking).
    Players,
    /// `PLAYER_CONNECT <id>`: records a player (alpha).
    PlayerConnect(String),
    /// `PLAYER_DISCONNECT <id>`: forgets a player (alpha).
    PlayerDisconnect(String),
    /// `GAMESERVER`: this server's name, state, labels and annotations as one JSON line.
    GameServer,
    /// `LIST <name>`: SDK GetList (beta): the list's capacity and values, e.g. `4 alice,bob`.
    List(String),
    /// `LIST_ADD <name> <value>`: SDK AddListValue (beta).
    ListAdd {
        /// The list.
        name: String,
        /// The value to add.
        value: String,
    },
}

/// A command keyword with the wrong arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    /// The keyword as sent.
    pub keyword: &'static str,
    /// The expected form.
    pub usage: &'static str,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usage: {}", self.usage)
    }
}

impl std::error::Error for UsageError {}

impl Command {
    /// The keyword that starts this command, as used in the `ACK` reply.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Exit => "EXIT",
            Self::Unhealthy => "UNHEALTHY",
            Self::Allocate => "ALLOCATE",
            Self::Ready => "READY",
            Self::Reserve(_) => "RESERVE",
            Self::Label { .. } => "LABEL",
            Self::Annotation { .. } => "ANNOTATION",
            Self::Players => "PLAYERS",
            Self::PlayerConnect(_) => "PLAYER_CONNECT",
            Self::PlayerDisconnect(_) => "PLAYER_DISCONNECT",
            Self::GameServer => "GAMESERVER",
            Self::List(_) => "LIST",
            Self::ListAdd { .. } => "LIST_ADD",
        }
    }
}

/// Parses one datagram or line. Keywords are upper case, as in Agones' own example server, so
/// ordinary chat like "exit the lobby" is echoed instead of shutting the server down.
pub fn parse(input: &str) -> Result<Message, UsageError> {
    // `nc` sends a trailing newline (and Windows clients \r\n); neither is part of the message.
    let text = input.trim_end_matches(['\r', '\n']);
    let trimmed = text.trim();
    let (keyword, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((keyword, rest)) => (keyword, rest.trim()),
        None => (trimmed, ""),
    };
    let usage = |keyword, usage| Err(UsageError { keyword, usage });
    let no_args = |command: Command, keyword: &'static str| {
        if rest.is_empty() { Ok(Message::Command(command)) } else { usage(keyword, keyword) }
    };
    match keyword {
        "EXIT" => no_args(Command::Exit, "EXIT"),
        "UNHEALTHY" => no_args(Command::Unhealthy, "UNHEALTHY"),
        "ALLOCATE" => no_args(Command::Allocate, "ALLOCATE"),
        "READY" => no_args(Command::Ready, "READY"),
        "PLAYERS" => no_args(Command::Players, "PLAYERS"),
        "GAMESERVER" => no_args(Command::GameServer, "GAMESERVER"),
        "RESERVE" => match rest.parse::<u64>() {
            Ok(seconds) => Ok(Message::Command(Command::Reserve(Duration::from_secs(seconds)))),
            Err(_) => usage("RESERVE", "RESERVE <seconds> (0 = until the next Ready/Allocate/Shutdown)"),
        },
        "LABEL" | "ANNOTATION" => {
            let parsed = rest.split_once(char::is_whitespace).map(|(k, v)| (k.to_owned(), v.trim().to_owned()));
            match (keyword, parsed) {
                ("LABEL", Some((key, value))) if !value.contains(char::is_whitespace) => {
                    Ok(Message::Command(Command::Label { key, value }))
                }
                ("LABEL", _) => usage("LABEL", "LABEL <key> <value>"),
                (_, Some((key, value))) => Ok(Message::Command(Command::Annotation { key, value })),
                (_, None) => usage("ANNOTATION", "ANNOTATION <key> <value>"),
            }
        }
        "PLAYER_CONNECT" | "PLAYER_DISCONNECT" if rest.is_empty() || rest.contains(char::is_whitespace) => {
            if keyword == "PLAYER_CONNECT" {
                usage("PLAYER_CONNECT", "PLAYER_CONNECT <player-id>")
            } else {
                usage("PLAYER_DISCONNECT", "PLAYER_DISCONNECT <player-id>")
            }
        }
        "PLAYER_CONNECT" => Ok(Message::Command(Command::PlayerConnect(rest.to_owned()))),
        "LIST" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(Message::Command(Command::List(rest.to_owned())))
        }
        "LIST" => usage("LIST", "LIST <name>"),
        "LIST_ADD" => match rest.split_once(char::is_whitespace).map(|(n, v)| (n, v.trim())) {
            Some((name, value)) if !value.is_empty() && !value.contains(char::is_whitespace) => {
                Ok(Message::Command(Command::ListAdd { name: name.to_owned(), value: value.to_owned() }))
            }
            _ => usage("LIST_ADD", "LIST_ADD <name> <value>"),
        },
        "PLAYER_DISCONNECT" => Ok(Message::Command(Command::PlayerDisconnect(rest.to_owned()))),
        _ => Ok(Message::Echo(text.to_owned())),
    }
}

/// `ACK <KEYWORD>[ <detail>]`: the reply to a command that worked.
pub fn ack(command: &Command, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("ACK {} {detail}\n", command.keyword()),
        None => format!("ACK {}\n", command.keyword()),
    }
}

/// `ERR <KEYWORD> <reason>`: the reply to a command that failed or was malformed.
pub fn error(keyword: &str, reason: &dyn fmt::Display) -> String {
    // One line per reply: a multi-line SDK error would otherwise look like several replies on TCP.
    let reason = reason.to_string().replace(['\r', '\n'], " ");
    format!("ERR {keyword} {reason}\n")
}

/// `ECHO <gameserver>: <payload>`: the reply to anything that is not a command.
pub fn echo(gameserver: &str, payload: &str) -> String {
    format!("ECHO {gameserver}: {payload}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(input: &str) -> Command {
        match parse(input) {
            Ok(Message::Command(command)) => command,
            other => panic!("{input:?} parsed as {other:?}, expected a command"),
        }
    }

    #[test]
    fn bare_commands_with_or_without_newline() {
        assert_eq!(command("EXIT"), Command::Exit);
        assert_eq!(command("EXIT\n"), Command::Exit);
        assert_eq!(command("UNHEALTHY\r\n"), Command::Unhealthy);
        assert_eq!(command("  ALLOCATE "), Command::Allocate);
        assert_eq!(command("READY"), Command::Ready);
        assert_eq!(command("PLAYERS\n"), Command::Players);
        assert_eq!(command("GAMESERVER"), Command::GameServer);
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(command("RESERVE 10\n"), Command::Reserve(Duration::from_secs(10)));
        assert_eq!(command("RESERVE 0"), Command::Reserve(Duration::ZERO));
        assert_eq!(command("LABEL mode  ranked\n"), Command::Label { key: "mode".into(), value: "ranked".into() });
        assert_eq!(
            command("ANNOTATION note two words\n"),
            Command::Annotation { key: "note".into(), value: "two words".into() }
        );
        assert_eq!(command("PLAYER_CONNECT p-1"), Command::PlayerConnect("p-1".into()));
        assert_eq!(command("PLAYER_DISCONNECT p-1\n"), Command::PlayerDisconnect("p-1".into()));
        assert_eq!(command("LIST players\n"), Command::List("players".into()));
        assert_eq!(
            command("LIST_ADD players bot-1"),
            Command::ListAdd { name: "players".into(), value: "bot-1".into() }
        );
    }

    #[test]
    fn malformed_commands_say_how_to_use_them() {
        for (input, keyword) in [
            ("RESERVE", "RESERVE"),
            ("RESERVE soon", "RESERVE"),
            ("RESERVE -1", "RESERVE"),
            ("LABEL onlykey", "LABEL"),
            ("LIST", "LIST"),
            ("LIST a b", "LIST"),
            ("LIST_ADD players", "LIST_ADD"),
            ("LABEL key has spaces", "LABEL"),
            ("ANNOTATION", "ANNOTATION"),
            ("EXIT now", "EXIT"),
            ("PLAYERS 3", "PLAYERS"),
            ("PLAYER_CONNECT", "PLAYER_CONNECT"),
            ("PLAYER_DISCONNECT a b", "PLAYER_DISCONNECT"),
        ] {
            let error = parse(input).expect_err(input);
            assert_eq!(error.keyword, keyword, "{input}");
            assert!(error.to_string().starts_with(&format!("usage: {keyword}")), "{input}: {error}");
        }
    }

    #[test]
    fn everything_else_is_echoed_without_its_newline() {
        assert_eq!(parse("hello\n"), Ok(Message::Echo("hello".into())));
        // Lower case is chat, not a command.
        assert_eq!(parse("exit"), Ok(Message::Echo("exit".into())));
        assert_eq!(parse("EXITING soon"), Ok(Message::Echo("EXITING soon".into())));
        assert_eq!(parse(""), Ok(Message::Echo(String::new())));
        assert_eq!(parse("  spaced  \n"), Ok(Message::Echo("  spaced  ".into())));
    }

    #[test]
    fn replies_are_single_lines() {
        assert_eq!(ack(&Command::Exit, None), "ACK EXIT\n");
        assert_eq!(ack(&Command::Players, Some("2")), "ACK PLAYERS 2\n");
        assert_eq!(echo("gs-1", "hi"), "ECHO gs-1: hi\n");
        assert_eq!(error("LABEL", &"bad\nkey"), "ERR LABEL bad key\n");
    }
}
