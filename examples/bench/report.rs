//! What both benches share about the fleet they run and the table they print.

/// The benches' fleet: the simple game server with slow health pings; `REPLICAS` is replaced.
pub const FLEET: &str = "\
apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: bench
spec:
  replicas: REPLICAS
  template:
    spec:
      ports:
        - name: default
          containerPort: 7654
      health:
        initialDelaySeconds: 30
        periodSeconds: 10
      template:
        spec:
          containers:
            - name: game
              image: ghcr.io/stadion-dev/simple-game-server:0.1.0
              command: [\"stadion\", \"simple-game-server\"]
              args: [\"--health-interval-ms\", \"5000\"]
";

/// One row of the result table: a figure beside the limit measured in the same run.
pub struct Row {
    pub what: String,
    pub stadion: String,
    pub limit: String,
    pub limit_what: String,
}

/// Prints `rows` as a markdown table under `limit_header` ("physical limit", "limit").
pub fn print_table(limit_header: &str, rows: &[Row]) {
    println!("| measurement | stadion | {limit_header} | limit measured as |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} | {} |", row.what, row.stadion, row.limit, row.limit_what);
    }
}
