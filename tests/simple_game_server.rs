//! The example game server against a real sidecar (`stadion sdk-server --local`), both as real
//! processes of the `stadion` binary: every text command reaches the SDK and the GameServer shows
//! it; `EXIT` and the shutdown delay end the process with 0.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{Guarded, Scratch, eventually, free_port, get_json, udp_request};

/// A local sidecar and a game talking to it.
struct Rig {
    http: reqwest::Client,
    rest: String,
    game_addr: SocketAddr,
    game: Guarded,
    _sidecar: Guarded,
    scratch: Scratch,
}

async fn start(test: &str, game_args: &[&str]) -> Rig {
    let scratch = Scratch::new(test);
    let (grpc, rest, game_port) = (free_port(), free_port(), free_port());
    let sidecar = Guarded::stadion(
        &scratch,
        "sdk-server",
        &["sdk-server", "--local", "--grpc-port", &grpc.to_string(), "--http-port", &rest.to_string()],
        &[],
    );
    let mut args = vec!["simple-game-server", "--tcp", "--health-interval-ms", "200", "--player-capacity", "4"];
    args.extend_from_slice(game_args);
    let game = Guarded::stadion(
        &scratch,
        "game",
        &args,
        &[("AGONES_SDK_GRPC_PORT", grpc.to_string()), ("STADION_PORT_DEFAULT", game_port.to_string())],
    );
    let rig = Rig {
        http: reqwest::Client::new(),
        rest: format!("http://127.0.0.1:{rest}"),
        game_addr: SocketAddr::from(([127, 0, 0, 1], game_port)),
        game,
        _sidecar: sidecar,
        scratch,
    };
    // Ready only follows binding the port, so once the log says so the game answers.
    let output = || rig.game.output();
    eventually(Duration::from_secs(30), "the game to call Ready", || {
        let ready = output().contains(": ready");
        async move { ready.then_some(()) }
    })
    .await;
    rig
}

impl Rig {
    async fn gameserver(&self) -> serde_json::Value {
        get_json(&self.http, &format!("{}/gameserver", self.rest)).await.expect("sidecar REST GET /gameserver")
    }

    async fn state(&self) -> String {
        self.gameserver().await["status"]["state"].as_str().unwrap_or_default().to_owned()
    }

    fn send(&self, message: &str) -> String {
        udp_request(self.game_addr, message)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_drive_the_sdk_and_exit_ends_the_process() {
    let mut rig = start("sgs-commands", &[]).await;

    assert_eq!(rig.send("hello"), "ECHO local: hello\n");
    assert_eq!(rig.send("hello again\n"), "ECHO local: hello again\n");

    assert_eq!(rig.send("LABEL mode ranked"), "ACK LABEL\n");
    assert_eq!(rig.send("ANNOTATION note two words"), "ACK ANNOTATION\n");
    let gs = rig.gameserver().await;
    assert_eq!(gs["object_meta"]["labels"]["agones.dev/sdk-mode"], "ranked", "{gs}");
    assert_eq!(gs["object_meta"]["annotations"]["agones.dev/sdk-note"], "two words", "{gs}");
    // An invalid label value is the sidecar's INVALID_ARGUMENT, reported to the client.
    let refused = rig.send("LABEL mode no/slashes");
    assert!(refused.starts_with("ERR LABEL "), "{refused}");

    assert_eq!(rig.send("RESERVE 30"), "ACK RESERVE\n");
    assert_eq!(rig.state().await, "Reserved");
    assert_eq!(rig.send("ALLOCATE"), "ACK ALLOCATE\n");
    assert_eq!(rig.state().await, "Allocated");
    let described: serde_json::Value = {
        let reply = rig.send("GAMESERVER");
        let json = reply.strip_prefix("ACK GAMESERVER ").unwrap_or_else(|| panic!("{reply}"));
        serde_json::from_str(json.trim()).expect("GAMESERVER replies JSON")
    };
    assert_eq!(described["state"], "Allocated");
    assert_eq!(described["labels"]["agones.dev/sdk-mode"], "ranked");

    assert_eq!(rig.send("PLAYER_CONNECT p1"), "ACK PLAYER_CONNECT connected\n");
    assert_eq!(rig.send("PLAYER_CONNECT p1"), "ACK PLAYER_CONNECT already-connected\n");
    assert_eq!(rig.send("PLAYERS"), "ACK PLAYERS 1\n");
    assert_eq!(rig.send("PLAYER_DISCONNECT p1"), "ACK PLAYER_DISCONNECT disconnected\n");
    assert_eq!(rig.send("PLAYERS"), "ACK PLAYERS 0\n");

    assert_eq!(
        rig.send("RESERVE soon"),
        "ERR RESERVE usage: RESERVE <seconds> (0 = until the next Ready/Allocate/Shutdown)\n"
    );

    // The same protocol over TCP, one reply line per line.
    {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let stream = tokio::net::TcpStream::connect(rig.game_addr).await.expect("tcp connect");
        let (reader, mut writer) = stream.into_split();
        let mut lines = BufReader::new(reader).lines();
        writer.write_all(b"over tcp\nPLAYERS\n").await.expect("tcp write");
        let first = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        assert_eq!(first.expect("tcp reply in time").expect("tcp read").as_deref(), Some("ECHO local: over tcp"));
        let second = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        assert_eq!(second.expect("tcp reply in time").expect("tcp read").as_deref(), Some("ACK PLAYERS 0"));
    }

    assert_eq!(rig.send("EXIT"), "ACK EXIT\n");
    let status = rig.game.wait_exit(Duration::from_secs(10)).expect("the game exits after EXIT");
    assert!(status.success(), "EXIT must end with 0, got {status}");
    assert_eq!(rig.state().await, "Shutdown");
    assert!(rig.game.output().contains("EXIT command"), "{}", rig.game.output());
    drop(rig.scratch);
}

#[tokio::test(flavor = "multi_thread")]
async fn allocated_server_shuts_itself_down_after_the_delay() {
    let mut rig = start("sgs-delay", &["--automatic-shutdown-delay-after-allocation", "1"]).await;
    assert_eq!(rig.send("ALLOCATE"), "ACK ALLOCATE\n");
    let status = rig.game.wait_exit(Duration::from_secs(15)).expect("the game exits after the delay");
    assert!(status.success(), "{status}");
    assert_eq!(rig.state().await, "Shutdown");
    let output = rig.game.output();
    assert!(output.contains("allocated: a match is coming"), "{output}");
    assert!(output.contains("shutdown delay after allocation"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_port_variable_is_a_startup_error() {
    let scratch = Scratch::new("sgs-badport");
    let grpc = free_port();
    let _sidecar = Guarded::stadion(
        &scratch,
        "sdk-server",
        &["sdk-server", "--local", "--grpc-port", &grpc.to_string(), "--http-port", &free_port().to_string()],
        &[],
    );
    let mut game = Guarded::stadion(
        &scratch,
        "game",
        &["simple-game-server"],
        &[("AGONES_SDK_GRPC_PORT", grpc.to_string()), ("STADION_PORT_DEFAULT", "not-a-port".to_owned())],
    );
    let status = game.wait_exit(Duration::from_secs(30)).expect("the game gives up");
    assert!(!status.success());
    assert!(game.output().contains("STADION_PORT_DEFAULT"), "{}", game.output());
}
