//! `stadion up --isolation network`: each game in its own network namespace, as in a pod. The
//! game listens on its container port (two servers share 7654), players reach it through its
//! host port, its SDK works, and no process on the host can reach its sidecar. The same scan
//! without isolation finds the sidecars, so the check can tell the two apart.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use support::{Scratch, Up, eventually, get_json, test_fleet, udp_request};

/// The Ready servers of the fleet once `count` are Ready: name → host port.
async fn ready_servers(up: &Up, count: usize) -> Vec<(String, u16)> {
    eventually(Duration::from_secs(60), "every server Ready", || async {
        let all = get_json(&up.http, &format!("{}/api/gameservers", up.admin)).await?;
        let ready: Vec<(String, u16)> = all
            .as_array()?
            .iter()
            .filter(|gs| gs["state"] == "Ready")
            .filter_map(|gs| {
                let port = gs["ports"].as_array()?.first()?["port"].as_u64()?;
                Some((gs["name"].as_str()?.to_owned(), u16::try_from(port).ok()?))
            })
            .collect();
        (ready.len() == count).then_some(ready)
    })
    .await
}

/// Every TCP port listening in this (the host's) network namespace on loopback or on all
/// interfaces, read from /proc/net/tcp as a local process scanning for sidecars would.
fn host_listeners() -> BTreeSet<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            let (address, port) = local.split_once(':')?;
            let reachable = address == "0100007F" || address == "00000000";
            (*state == "0A" && reachable).then(|| u16::from_str_radix(port, 16).ok()).flatten()
        })
        .collect()
}

/// What an SDK REST `GET /gameserver` on `port` answers, if anything answers it as HTTP.
fn sdk_get(port: u16) -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(300)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let request = format!("GET /gameserver HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// The host ports whose answer to the SDK's `GET /gameserver` names one of `servers`.
fn sidecars_found_by_scanning(servers: &[(String, u16)]) -> Vec<u16> {
    host_listeners()
        .into_iter()
        .filter(|&port| {
            sdk_get(port).is_some_and(|answer| servers.iter().any(|(name, _)| answer.contains(&format!("\"{name}\""))))
        })
        .collect()
}

/// The game processes this test started (not their sandboxes): network namespace, environment.
fn game_processes(scratch: &Scratch) -> Vec<(std::path::PathBuf, Vec<String>)> {
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    };
    scratch
        .marked_processes()
        .into_iter()
        .filter_map(|pid| {
            let args = split(std::fs::read(format!("/proc/{pid}/cmdline")).ok()?);
            let game = args.get(1).is_some_and(|a| a == "simple-game-server");
            let namespace = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            game.then(|| Some((namespace, split(std::fs::read(format!("/proc/{pid}/environ")).ok()?)))).flatten()
        })
        .collect()
}

fn up(scratch: &Scratch, port_range: &str, isolation: &str) -> Up {
    let fleet = test_fleet(scratch, 2);
    support::up_on_with(scratch, &[&fleet], port_range, &["--isolation", isolation])
}

/// One line sent over TCP to `port` on loopback, and the line it answers.
fn tcp_line(port: u16, line: &str) -> String {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).expect("a TCP connection");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    (&stream).write_all(format!("{line}\n").as_bytes()).expect("the line sent");
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).expect("a line back");
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn isolated_games_get_a_pods_network_and_no_host_process_reaches_their_sidecars() {
    let scratch = Scratch::new("up-isolation");
    let up = up(&scratch, "17600-17649", "network");
    // Ready means each game reached its sidecar (SDK Ready, health pings) from inside its
    // namespace, on the spec's 9357, through listeners `up` serves.
    let servers = ready_servers(&up, 2).await;
    for (name, port) in &servers {
        // Both games listen on container port 7654; the relay on each host port reaches the
        // right one.
        let reply = udp_request(SocketAddr::from(([127, 0, 0, 1], *port)), "hello");
        assert_eq!(reply.trim(), format!("ECHO {name}: hello"), "host port {port}");
    }
    // Each game has a network namespace of its own, and a pod's SDK address in its environment.
    let games = game_processes(&scratch);
    assert_eq!(games.len(), 2, "{games:?}");
    let host = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let namespaces: BTreeSet<_> = games.iter().map(|(namespace, _)| namespace.clone()).collect();
    assert_eq!(namespaces.len(), 2, "one namespace per game: {games:?}");
    assert!(!namespaces.contains(&host), "a game shares the host's network: {games:?}");
    for (_, environ) in &games {
        assert!(environ.contains(&"AGONES_SDK_GRPC_PORT=9357".to_owned()), "{environ:?}");
        assert!(environ.contains(&"AGONES_SDK_HTTP_PORT=9358".to_owned()), "{environ:?}");
    }
    let exposed = sidecars_found_by_scanning(&servers);
    assert!(exposed.is_empty(), "isolated sidecars answered on host ports {exposed:?}");
    // The SDK keeps working after the scan: a server still answers and stays Ready.
    let (name, port) = &servers[0];
    assert!(udp_request(SocketAddr::from(([127, 0, 0, 1], *port)), "hello").contains(name.as_str()));
    let state: Value = up.gameserver(name).await.expect("server listed")["state"].clone();
    assert_eq!(state, "Ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_isolation_the_same_scan_finds_every_sidecar() {
    let scratch = Scratch::new("up-no-isolation");
    let up = up(&scratch, "17650-17699", "none");
    let servers = ready_servers(&up, 2).await;
    let exposed = sidecars_found_by_scanning(&servers);
    assert_eq!(exposed.len(), 2, "one REST sidecar per server on host loopback, found {exposed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn isolated_games_are_reached_over_tcp_through_their_host_port() {
    let scratch = Scratch::new("up-isolation-tcp");
    // The same fleet with a TCPUDP port, its game serving TCP too on container port 7654.
    let fleet = test_fleet(&scratch, 2);
    let text = std::fs::read_to_string(&fleet)
        .expect("the fleet")
        .replace("protocol: UDP", "protocol: TCPUDP")
        .replace(r#"args: ["--health-interval-ms", "250"]"#, r#"args: ["--health-interval-ms", "250", "--tcp"]"#);
    assert!(text.contains("TCPUDP") && text.contains("--tcp"), "{text}");
    std::fs::write(&fleet, text).expect("the fleet rewritten");
    let up = support::up_on_with(&scratch, &[&fleet], "17700-17749", &["--isolation", "network"]);
    let servers = ready_servers(&up, 2).await;
    for (name, port) in &servers {
        // TCP and UDP share the host port, each relayed to the game in its own namespace.
        assert_eq!(tcp_line(*port, "hello").trim(), format!("ECHO {name}: hello"), "TCP on host port {port}");
        let reply = udp_request(SocketAddr::from(([127, 0, 0, 1], *port)), "hello");
        assert_eq!(reply.trim(), format!("ECHO {name}: hello"), "UDP on host port {port}");
    }
    // Connections are relayed one by one: several at once each reach the game and get answers.
    let (name, port) = servers[0].clone();
    let clients: Vec<_> = (0..8).map(|i| std::thread::spawn(move || tcp_line(port, &format!("client-{i}")))).collect();
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().expect("a client").trim(), format!("ECHO {name}: client-{i}"));
    }
}
